"""Every page renders on the shipped model without an exception, and the basic flows work through AppTest."""

from __future__ import annotations

import re

import pytest

from cutellm.views import ablation_charts
from cutellm.views.charts import VIEWS

from .conftest import button, no_exception, open_page

PAGES = ["home", "learn", "train", "generate", "chat", "fill_blanks", "explore"]


@pytest.mark.parametrize("name", PAGES)
def test_every_page_renders(app, name):
    open_page(app, name)
    no_exception(app)
    assert not app.error, [e.value for e in app.error]
    assert app.title[0].value


def test_sidebar_shows_the_shipped_model(app):
    assert app.sidebar.selectbox[0].value.endswith("cute_llm.pth")
    captions = " ".join(c.value for c in app.sidebar.caption)
    assert "524,416" in captions and "training_data.txt" in captions and "3.104" in captions


# Explore tab -> the start of the "what am I looking at" note the tab shows (charts.VIEWS for the figures).
EXPLORE_TABS = {"Tokens": "The model never sees letters", "Architecture": VIEWS["architecture"].explanation,
                "Next-token probabilities": VIEWS["logits"].explanation,
                "Prediction heatmap": VIEWS["heatmap"].explanation, "Word embeddings": VIEWS["embeddings"].explanation,
                "Attention": VIEWS["attention"].explanation, "Logit lens": VIEWS["logit_lens"].explanation,
                "Switch parts off": ablation_charts.VIEWS["ablation"].explanation}


def explains(at, note: str) -> bool:
    return any(c.value.startswith(note) for c in at.caption)


@pytest.mark.parametrize("tab", EXPLORE_TABS)
def test_every_explore_tab_renders(app, tab):
    open_page(app, "explore")
    app.session_state["ex_tab"] = tab
    app.run()
    no_exception(app)
    assert not app.error, [e.value for e in app.error]
    assert explains(app, EXPLORE_TABS[tab]), "the open tab explains its picture"
    assert not any(explains(app, note) for name, note in EXPLORE_TABS.items() if name != tab), \
        "only the open tab is computed"


def test_explore_options(app):
    open_page(app, "explore")
    app.session_state["ex_tab"] = "Word embeddings"
    app.session_state["ex_emb_dims"] = "3D"
    app.session_state["ex_emb_highlight"] = "notaword"
    app.run()
    no_exception(app)
    assert any("not in the vocabulary" in i.value for i in app.info)
    app.session_state["ex_tab"] = "Attention"
    app.session_state["ex_att_layer"] = 2
    app.session_state["ex_att_head"] = 3
    app.run()
    no_exception(app)
    app.session_state["ex_tab"] = "Next-token probabilities"
    app.session_state["ex_position"] = 3
    app.run()
    no_exception(app)
    app.text_input(key="ex_text").set_value("").run()
    assert any("empty" in e.value for e in app.error)


def test_attention_is_derived_step_by_step_for_the_chosen_token(app):
    open_page(app, "explore")
    app.session_state["ex_tab"] = "Attention"
    app.session_state["ex_att_layer"] = 2
    app.session_state["ex_att_head"] = 3
    app.run()
    no_exception(app)
    app.select_slider(key="ex_att_pos").set_value(4).run()
    no_exception(app)
    frame = app.dataframe[0].value
    tokens = "the cat sat on the mat and the dog ran to the park".split()
    assert list(frame["token"]) == tokens and frame["weight"][:5].sum() == pytest.approx(1)
    assert (frame["weight"][5:] == 0).all()                         # the future: masked
    check = next(c.value for c in app.caption if c.value.startswith("These weights are row 4 of the map above"))
    assert float(re.search(r"largest difference ([0-9.e+-]+)", check).group(1)) < 1e-6
    assert any(m.value.startswith("**Query** of “the” (32 numbers)") for m in app.markdown)


def test_switch_parts_off_shows_the_loss_before_and_after_and_leaves_the_model_intact(app):
    open_page(app, "explore")
    app.session_state["ex_tab"] = "Switch parts off"
    app.run()
    no_exception(app)
    assert not app.error, [e.value for e in app.error]
    intact, off, guess = app.metric[:3]
    assert intact.label == "Loss on the text, intact" and off.label == "Loss with layer 1 head 1 off"
    assert float(off.delta) == pytest.approx(float(off.value) - float(intact.value), abs=2e-3)
    assert guess.delta.startswith("intact: ")
    assert len(app.get("plotly_chart")) == 2, "the before / after bars and the head heatmap"
    assert len(app.dataframe[-1].value) == 2 * (4 + 2), "every head, each layer's attention and MLP"

    app.radio(key="ex_abl_kind").set_value("a layer's MLP").run()
    app.selectbox(key="ex_abl_layer").set_value(1).run()
    app.select_slider(key="ex_abl_position").set_value(3).run()
    no_exception(app)
    assert app.metric[1].label == "Loss with layer 1 MLP off" and float(app.metric[1].delta) > 0.5
    assert app.metric[2].label.startswith("Top guess at position 3")
    app.radio(key="ex_abl_on").set_value("validation sample").run()   # the shipped model's corpus is in data/
    no_exception(app)
    assert app.session_state["ex_abl_table"][1].attrs["measured_on"] == "windows"

    # Every other page sees the intact model: greedy generation writes what it always does.
    open_page(app, "generate")
    app.radio(key="gen_mode").set_value("Greedy").run()
    app.text_area(key="gen_prompt").set_value("the cat sat on the").run()
    button(app, "Generate").click().run()
    assert app.session_state["gen_result"]["tokens"][0].text == "mat"


def test_generate_greedy_is_deterministic(app):
    open_page(app, "generate")
    app.radio(key="gen_mode").set_value("Greedy").run()
    app.text_area(key="gen_prompt").set_value("the cat sat on the").run()
    button(app, "Generate").click().run()
    no_exception(app)
    first = app.session_state["gen_result"]["tokens"]
    assert first[0].text == "mat"
    button(app, "Generate").click().run()
    assert [t.token_id for t in app.session_state["gen_result"]["tokens"]] == [t.token_id for t in first]
    assert app.dataframe, "the per-token probability table is shown"


def test_sampling_with_a_seed_is_reproducible(app):
    open_page(app, "generate")
    app.radio(key="gen_mode").set_value("Sampled").run()
    app.number_input(key="gen_seed").set_value(42).run()
    button(app, "Generate").click().run()
    a = [t.token_id for t in app.session_state["gen_result"]["tokens"]]
    app.number_input(key="gen_seed").set_value(43).run()
    button(app, "Generate").click().run()
    b = [t.token_id for t in app.session_state["gen_result"]["tokens"]]
    app.number_input(key="gen_seed").set_value(42).run()
    button(app, "Generate").click().run()
    c = [t.token_id for t in app.session_state["gen_result"]["tokens"]]
    assert a == c and a != b


def test_generate_shows_user_text_literally(app):
    open_page(app, "generate")
    app.text_area(key="gen_prompt").set_value("<script>alert(1)</script> the $x$ cat :smile:").run()
    button(app, "Generate").click().run()
    no_exception(app)
    html = " ".join(h.proto.body for h in app.get("html"))
    assert "<script" not in html and "&lt; script &gt;" in html  # shown as the model reads it, escaped
    warning = app.warning[0].value
    assert "`<`" in warning and "`script`" in warning  # unknown pieces shown as code, not markup


def fill(app, phrase: str):
    """Fill the blanks of `phrase` on its page; the page's completion."""
    open_page(app, "fill_blanks")
    app.text_input(key="fill_phrase").set_value(phrase).run()
    button(app, "Fill the blanks").click().run()
    no_exception(app)
    return app.session_state["fill_result"]["completion"]


def test_fill_the_blanks(app):
    completion = fill(app, "the ___ sat on the mat")
    assert completion.blanks[0].best.word == "cat"
    assert len(app.dataframe) == 1


def test_several_blanks_show_the_best_sentences(app):
    completion = fill(app, "the ___ ___ on the mat")
    assert completion.filled_text == "the cat sat on the mat"
    sentences, *blanks = [d.value for d in app.dataframe]
    assert list(sentences["sentence"])[0] == "the cat sat on the mat" and len(sentences) == 3
    assert len(blanks) == 2 and list(blanks[0]["word"])[0] == "cat" and list(blanks[1]["word"])[0] == "sat"
    html = " ".join(h.proto.body for h in app.get("html"))
    assert '<span class="new">cat</span>' in html and '<span class="new">sat</span>' in html


def test_a_result_is_marked_when_its_input_changed(app):
    fill(app, "the ___ sat on the mat")
    assert not app.info
    app.text_input(key="fill_phrase").set_value("the dog ran to the ___").run()
    assert any("previous phrase" in i.value and "the ___ sat on the mat" in i.value for i in app.info)
    button(app, "Fill the blanks").click().run()
    assert not app.info and app.session_state["fill_result"]["completion"].text == "the dog ran to the ___"
    app.slider(key="fill_top_k").set_value(3).run()
    assert any("5 candidates per blank" in i.value for i in app.info)


def test_fill_example_chips_and_hint(app):
    open_page(app, "fill_blanks")
    app.button_group(key="fill_example").set_value("the cow eats ___").run()
    assert app.text_input(key="fill_phrase").value == "the cow eats ___"
    app.text_input(key="fill_phrase").set_value("no blank here").run()
    assert button(app, "Fill the blanks").disabled
