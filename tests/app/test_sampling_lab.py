"""The Generate page's step-by-step mode and streamed text, through AppTest."""

from __future__ import annotations

import pytest

from cutellm.inference import describe_token, next_token_logits
from cutellm.sampling import SamplingSettings, sampling_steps
from cutellm.tokenizer import BPETokenizer

from ui.text import tint_class, tinted_html, token_pieces

from .conftest import no_exception, open_page


def step_mode(app, prompt: str = "the cat sat on the", mode: str = "Greedy"):
    open_page(app, "generate")
    app.radio(key="gen_mode").set_value(mode).run()
    app.text_area(key="gen_prompt").set_value(prompt).run()
    app.radio(key="gen_view").set_value("Step by step").run()
    no_exception(app)
    return app


def chosen(app) -> list[str]:
    return [t.text for t in app.session_state["gen_lab"].chosen]


def test_step_mode_renders_the_stages(app):
    step_mode(app)
    assert app.button(key="gen_lab_next") and app.button(key="gen_lab_undo").disabled
    assert app.button(key="gen_lab_take").disabled  # nothing picked yet
    assert len(app.get("plotly_chart")) == 1
    captions = " ".join(c.value for c in app.caption)
    assert "Temperature." in captions and "Top-p." in captions and "how sure" in captions
    assert "`mat`" in captions  # what Next token would add (greedy: the model's favourite)
    html = " ".join(h.proto.body for h in app.get("html"))
    assert '<span class="prompt">the cat sat on the</span>' in html


def test_next_token_take_this_one_and_undo(app):
    step_mode(app)
    app.button(key="gen_lab_next").click().run()
    no_exception(app)
    assert chosen(app) == ["mat"]
    html = " ".join(h.proto.body for h in app.get("html"))
    assert ">mat</span>" in html or "> mat</span>" in html
    # Branch: take the model's third choice instead of what it would draw.
    lab = app.session_state["gen_lab"]
    model, tok = app.session_state["active_loaded"].model, app.session_state["active_loaded"].tokenizer
    third = int(sampling_steps(next_token_logits(model, tok, lab.ids), SamplingSettings(1.0)).ranking[2])
    app.button_group(key="gen_lab_pick").set_value(third).run()
    assert not app.button(key="gen_lab_take").disabled
    app.button(key="gen_lab_take").click().run()
    no_exception(app)
    assert chosen(app) == ["mat", tok.token(third)]
    assert app.session_state["gen_lab_pick"] is None
    app.button(key="gen_lab_undo").click().run()
    assert chosen(app) == ["mat"]
    app.button(key="gen_lab_undo").click().run()
    assert chosen(app) == [] and app.button(key="gen_lab_undo").disabled


def test_sliders_redraw_without_running_the_model_again(app, monkeypatch):
    step_mode(app, mode="Sampled")
    logits = app.session_state["gen_lab"].logits
    calls = []
    import cutellm.inference as inference
    monkeypatch.setattr(inference.CuteLLM, "forward", lambda *a, **k: calls.append(1))
    app.slider(key="gen_top_k").set_value(3).run()
    app.slider(key="gen_temperature").set_value(1.5).run()
    no_exception(app)
    assert calls == [] and app.session_state["gen_lab"].logits is logits
    monkeypatch.undo()  # the next text needs the model again
    app.button(key="gen_lab_next").click().run()
    no_exception(app)
    top3 = {tok for tok, _ in app.session_state["gen_lab"].chosen[0].alternatives[:3]}
    assert chosen(app)[0] in top3  # drawn from what top-k 3 kept


def test_leaving_step_mode_keeps_the_grown_text_as_the_prompt(app):
    step_mode(app)
    for _ in range(2):
        app.button(key="gen_lab_next").click().run()
    assert chosen(app)[0] == "mat" and len(chosen(app)) == 2
    grown = app.session_state["gen_lab"].text(app.session_state["active_loaded"].tokenizer)
    assert grown.startswith("the cat sat on the mat") and grown != "the cat sat on the mat"
    app.radio(key="gen_view").set_value("Generate").run()
    no_exception(app)
    assert app.text_area(key="gen_prompt").value == grown


def test_long_text_says_only_its_last_tokens_are_read(app):
    step_mode(app, "the dog ran to the park . " * 5)
    infos = " ".join(i.value for i in app.info)
    assert "more than the model's context of 20" in infos and "last 20" in infos
    open_page(app, "explore")
    app.text_input(key="ex_text").set_value("the dog ran to the park . " * 5).run()
    no_exception(app)
    assert any("reads only the last 20" in i.value for i in app.info)


def test_greedy_repetition_points_to_sampling(app):
    step_mode(app, "the the the")
    active = app.session_state["active_loaded"]
    tok, lab = active.tokenizer, app.session_state["gen_lab"]
    for _ in range(3):  # branch on "not" three times (it need not be among the offered tokens)
        lab.logits = next_token_logits(active.model, tok, lab.ids)
        lab.chosen.append(describe_token(tok, lab.logits, tok.token_to_id["not"]))
    app.run()
    no_exception(app)
    assert any("repeating `not` 3 times" in i.value and "Sampled" in i.value for i in app.info)


def test_generate_streams_into_one_text_and_shows_the_table(app):
    open_page(app, "generate")
    app.radio(key="gen_mode").set_value("Greedy").run()
    app.text_area(key="gen_prompt").set_value("the cat sat on the").run()
    app.slider(key="gen_max_tokens").set_value(5).run()
    [b for b in app.button if b.label == "Generate"][0].click().run()
    no_exception(app)
    html = [h.proto.body for h in app.get("html") if h.proto.body.startswith('<div class="cute-text"')]
    assert len(html) == 1, "the streamed text and the final text share one slot"
    table = app.dataframe[0].value
    assert len(app.dataframe) == 1 and len(table) == 5 and table["token"][0] == "mat"
    # each token tinted by its probability (the shipped model gives "mat" about 0.66: the 0.5-0.8 tint)
    assert f'class="tok {tint_class(float(table["probability"][0]))}" title="mat: probability' in html[0]


def test_the_pages_settings_object_reaches_the_draw_unchanged(app, monkeypatch):
    import cutellm.inference as inference
    from ui.generate import sampling_lab, streaming

    def spy(module, name, seen, position):
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a: seen.append(a[position]) or real(*a))

    handed, drawn_with, panel, staged = [], [], [], []
    spy(streaming, "stream_into", handed, 3)          # what the page hands over
    spy(inference, "pick_token", drawn_with, 1)       # what each draw reads
    spy(sampling_lab, "step_panel", panel, 2)
    spy(sampling_lab, "sampling_steps", staged, 1)
    open_page(app, "generate")
    app.radio(key="gen_mode").set_value("Sampled").run()
    app.slider(key="gen_max_tokens").set_value(4).run()
    [b for b in app.button if b.label == "Generate"][0].click().run()
    no_exception(app)
    ss = app.session_state
    assert handed == [SamplingSettings(float(ss["gen_temperature"]), int(ss["gen_top_k"]), float(ss["gen_top_p"]),
                                       seed=int(ss["gen_seed"]))]
    assert len(drawn_with) == 4 and all(s is handed[0] for s in drawn_with)
    # Step by step: the same holds for the stages picture.
    app.radio(key="gen_view").set_value("Step by step").run()
    no_exception(app)
    assert panel and staged and staged[-1] is panel[-1] and panel[-1] == handed[0]


@pytest.mark.parametrize("text", ["héllo wörld ☃", "the cat"])
def test_token_pieces_join_to_the_text(text):
    tok = BPETokenizer.from_text("héllo wörld ☃ the cat sat " * 20, 270)
    ids = tok.encode(text)
    head, pieces = token_pieces(tok, "", ids)
    assert head + "".join(pieces) == tok.continue_text("", ids) == text
    assert '<span class="prompt">&lt;b&gt;</span>' in tinted_html(tok, "<b>", [])
