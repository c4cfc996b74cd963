"""Links that share a setup (ui/share.py) through AppTest: a page's settings in the URL are applied, written back
as they change, and a bad or hand-edited one gets the default and a one-line notice, never a traceback."""

from __future__ import annotations

import pytest

from .conftest import no_exception, open_page


def open_link(app, page: str, **params):
    """Open `page` as a link with these query parameters would, in this (fresh) session."""
    for key, value in params.items():
        app.query_params[key] = value
    return open_page(app, page)


def notices(app) -> list[str]:
    return [i.value for i in app.info if i.value.startswith("The link")]


def test_a_generate_link_sets_every_sampling_setting_and_the_url_follows_the_page(app):
    open_link(app, "generate", prompt="the dog ran to the", mode="sampled", temperature="1.3", top_k="12",
              top_p="0.5", seed="7", tokens="9", view="step")
    no_exception(app)
    assert not notices(app)
    assert app.text_area(key="gen_prompt").value == "the dog ran to the"
    assert (app.slider(key="gen_temperature").value, app.slider(key="gen_top_k").value,
            app.slider(key="gen_top_p").value, app.number_input(key="gen_seed").value) == (1.3, 12, 0.5, 7)
    assert app.session_state["gen_max_tokens"] == 9 and app.radio(key="gen_view").value != "Generate"
    # The URL then follows the page: change a setting, and the link changes with it.
    app.slider(key="gen_temperature").set_value(0.5).run()
    assert app.query_params["temperature"] == "0.5" and app.query_params["model"] == "cute_llm"


@pytest.mark.parametrize("params, notice, key, kept", [
    (dict(temperature="abc"), "The link's temperature='abc' is not a number: kept 0.8 instead.", "gen_temperature",
     0.8),
    (dict(top_k="-3"), "The link's top_k='-3' is not between 1 and 200: kept 40 instead.", "gen_top_k", 40),
    (dict(mode="creative"), "The link's mode='creative' is not one of greedy, sampled", "gen_mode", "Sampled"),
    (dict(prompt="x" * 10_000), "is longer than 2,000 characters: kept 'once upon a time' instead.", "gen_prompt",
     "once upon a time"),
    (dict(nonsense="1"), "The link's `nonsense` is not a setting of this page: ignored.", None, None),
    (dict(model="no-such-model"), "The link names the model `no-such-model`, which this server does not have",
     None, None),
])
def test_a_bad_parameter_gets_the_default_and_a_notice(app, params, notice, key, kept):
    open_link(app, "generate", **params)
    no_exception(app)
    assert any(notice in n for n in notices(app)), notices(app)
    if key:
        assert app.session_state[key] == kept
    # The notice is said once: the next run has the page's own URL.
    app.run()
    assert not notices(app)


def test_a_link_names_the_model_and_makes_it_active(app):
    open_link(app, "generate", model="cute_bpe", prompt="Once upon a time")
    no_exception(app)
    assert app.session_state["active_model"].endswith("cute_bpe.pth")
    assert app.query_params["model"] == "cute_bpe"


def test_explore_and_fill_the_blanks_links(app):
    open_link(app, "explore", text="the dog ran to the park", tab="Attention", layer="2", head="3")
    no_exception(app)
    assert app.text_input(key="ex_text").value == "the dog ran to the park"
    assert (app.session_state["ex_tab"], app.session_state["ex_att_layer"], app.session_state["ex_att_head"]) == \
        ("Attention", 2, 3)
    assert app.query_params["head"] == "3" and app.query_params["tab"] == "Attention"
    open_link(app, "fill_blanks", phrase="the ___ ran to the park")
    no_exception(app)
    assert app.text_input(key="fill_phrase").value == "the ___ ran to the park"


def test_a_train_link_carries_the_corpus_and_the_settings_in_their_option_names(app):
    open_link(app, "train", source="task", task="add", d_model="96", n_layers="3", positions="rope",
              tie_weights="false", train_for="steps", max_steps="700", n_heads="0", device="cuda")
    no_exception(app)
    assert app.radio(key="tr_source").value == "Toy task" and app.selectbox(key="tr_task").value == "add"
    assert (app.number_input(key="tr_d_model").value, app.number_input(key="tr_layers").value,
            app.selectbox(key="tr_positions").value, app.checkbox(key="tr_tie").value,
            app.radio(key="tr_mode").value, app.number_input(key="tr_steps").value) == \
        (96, 3, "rope", False, "Steps", 700)
    assert any("n_heads='0' is not between 1 and 16" in n for n in notices(app))
    # Where to compute is the opening machine's choice: not a setting a link carries.
    assert any("`device` is not a setting of this page" in n for n in notices(app))
    assert "device" not in app.query_params and app.query_params["d_model"] == "96"


def test_a_rerun_that_carries_the_address_of_a_moment_ago_does_not_undo_a_change(app):
    """The browser may send a rerun before it has taken the URL the last run wrote (a loaded host): the link was
    read once, on the page's first run, so the stale address cannot put the old settings back."""
    open_link(app, "generate", prompt="the dog ran to the", mode="greedy")
    link = {k: app.query_params[k] for k in app.query_params}
    app.text_area(key="gen_prompt").set_value("the cat sat on the").run()
    for key, value in link.items():   # the address from before the change comes back with the next rerun
        app.query_params[key] = value
    app.run()
    no_exception(app)
    assert app.text_area(key="gen_prompt").value == "the cat sat on the"
    assert app.query_params["prompt"] == "the cat sat on the"
