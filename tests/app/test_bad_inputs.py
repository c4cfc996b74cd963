"""Every bad input, through the pages: a clear st.error/st.warning/st.info, never an exception, never a changed model.

The core's exceptions for the same inputs are in tests/test_bad_inputs.py.
"""

from __future__ import annotations

import os

import pytest

from .conftest import button, no_exception, open_page, train_tiny_run


def messages(at) -> str:
    return " | ".join(e.value for e in [*at.error, *at.warning, *at.info])


def unchanged_model(at) -> None:
    assert at.session_state["active_model"].endswith("cute_llm.pth")


def open_with(at, page: str, **values) -> None:
    """Open `page` with these session values (widget keys) already set, as a learner's typing leaves them."""
    open_page(at, page)
    for key, value in values.items():
        at.session_state[key] = value
    at.run()


# --------------------------------------------------------------------------------------------------------------
# Generate: prompts

BAD_PROMPTS = [
    ("empty", "", "empty"),
    ("whitespace only", "   \n\t ", "empty"),
    ("only unknown words", "zebra quokka axolotl", "vocabulary"),
    ("100,000 characters", "the cat " * 12_500, "limit"),
    ("only emoji", "🐱🐶", "vocabulary"),
]


@pytest.mark.parametrize("case, prompt, message", BAD_PROMPTS, ids=[c[0] for c in BAD_PROMPTS])
def test_bad_prompts_show_an_error(app, case, prompt, message):
    open_with(app, "generate", gen_prompt=prompt)
    button(app, "Generate").click().run()
    no_exception(app)
    assert any(message in e.value for e in app.error), messages(app)
    assert app.session_state["gen_result"] is None
    unchanged_model(app)


ODD_PROMPTS = [
    ("emoji among words", "the cat 🐱 sat on the", "🐱"),
    ("non-Latin script", "the 猫 sat on the", "猫"),
    ("control characters", "the\x07 cat sat on the", "\x07"),
    ("HTML tags", "<b>bold</b> the cat sat on the", "<"),
    ("Markdown and LaTeX", "**the** $x$ cat :smile: sat on the", "$"),
]


@pytest.mark.parametrize("case, prompt, unknown", ODD_PROMPTS, ids=[c[0] for c in ODD_PROMPTS])
def test_odd_prompts_are_shown_literally(app, case, prompt, unknown):
    open_with(app, "generate", gen_prompt=prompt)
    no_exception(app)
    warning = app.warning[0].value
    assert "<unk>" in warning and f"`{unknown}`" in warning, warning  # unknown pieces shown as code, literally
    button(app, "Generate").click().run()
    no_exception(app)
    html = " ".join(h.proto.body for h in app.get("html"))
    assert "<b>bold" not in html and "<script" not in html  # user text is escaped, never markup
    assert app.session_state["gen_result"]["tokens"]


# --------------------------------------------------------------------------------------------------------------
# Generate: settings out of range (a stale or edited state) are capped, with a message

BAD_SETTINGS = [
    ("max tokens 0", "gen_max_tokens", 0, 1),
    ("max tokens negative", "gen_max_tokens", -5, 1),
    ("max tokens huge", "gen_max_tokens", 100_000, 200),
    ("temperature 0", "gen_temperature", 0.0, 0.05),
    ("temperature negative", "gen_temperature", -1.0, 0.05),
    ("top-k 0", "gen_top_k", 0, 1),
    ("top-k above vocabulary", "gen_top_k", 5000, 200),
    ("top-p 0", "gen_top_p", 0.0, 0.05),
    ("top-p above 1", "gen_top_p", 1.7, 1.0),
]


@pytest.mark.parametrize("case, key, value, capped", BAD_SETTINGS, ids=[c[0] for c in BAD_SETTINGS])
def test_out_of_range_settings_are_capped_and_said(app, case, key, value, capped):
    # Set before the page (and its widgets) first appear, as a stale or hand-edited session state would be.
    app.session_state["gen_mode"] = "Sampled"
    app.session_state[key] = value
    open_page(app, "generate")
    no_exception(app)
    assert any("must be between" in w.value for w in app.warning), messages(app)
    assert app.session_state[key] == pytest.approx(capped)
    button(app, "Generate").click().run()
    no_exception(app)
    assert app.session_state["gen_result"]["tokens"]


# --------------------------------------------------------------------------------------------------------------
# Fill the blanks

@pytest.mark.parametrize("case, phrase, kind, message", [
    ("no blank", "the cat sat on the mat", "info", "___"),
    ("only a blank", "___", "error", "only blanks"),
    ("only blanks", "___ ___", "error", "only blanks"),
    ("eleven blanks", " ".join(["the ___"] * 11), "error", "at most 10"),
    ("glued blank", "the cat sat on the___", "error", "write 'the ___'"),
], ids=["no blank", "only a blank", "only blanks", "eleven blanks", "glued blank"])
def test_bad_phrases(app, case, phrase, kind, message):
    open_with(app, "fill_blanks", fill_phrase=phrase)
    if kind == "error":
        button(app, "Fill the blanks").click().run()
    no_exception(app)
    assert any(message in e.value for e in getattr(app, kind)), messages(app)


@pytest.mark.parametrize("phrase, blanks", [(" ".join(["the ___ sat on the ___."] * 5), 10),
                                            ("the cat sat on the ___.", 1)], ids=["ten blanks", "glued to ."])
def test_edge_phrases_work(app, phrase, blanks):
    open_with(app, "fill_blanks", fill_phrase=phrase)
    button(app, "Fill the blanks").click().run()
    no_exception(app)
    assert len(app.session_state["fill_result"]["completion"].blanks) == blanks


# --------------------------------------------------------------------------------------------------------------
# Train: corpora and hyperparameters

def paste(app, text: str, **settings):
    """Open Train with pasted text and settings already in the session (as a learner's earlier visit left them)."""
    app.session_state["tr_source"] = "Paste"
    app.session_state["tr_paste"] = text
    for key, value in settings.items():
        app.session_state[key] = value
    open_page(app, "train")
    no_exception(app)


GOOD_TEXT = "the cat sat on the mat. the dog ran to the park. the bird sang in the tree. " * 30


@pytest.mark.parametrize("case, text, settings, kind, message", [
    ("empty corpus", "", {}, "warning", "empty"),
    ("only comments", "# a comment\n\n# another\n", {}, "warning", "empty"),
    ("shorter than one window", "the cat sat.", {}, "error", "too short"),
    ("block size larger than the corpus", GOOD_TEXT[:200], {"tr_block": 200}, "error", "too short"),
    ("every word unknown to a small vocabulary", "zebra quokka axolotl yak emu gnu " * 30, {"tr_vocab": 4},
     "warning", "outside the vocabulary"),
    ("batch larger than the windows", GOOD_TEXT[:400], {"tr_batch": 512}, "warning", "are more than the"),
    ("d_model not divisible by heads", GOOD_TEXT, {"tr_d_model": 130}, "error", "divisible"),
    ("vocabulary size below the minimum", GOOD_TEXT, {"tr_vocab": 2}, "warning", "must be between"),
    ("zero layers", GOOD_TEXT, {"tr_layers": 0}, "warning", "must be between"),
    ("learning rate 0", GOOD_TEXT, {"tr_lr": 0.0}, "warning", "must be between"),
], ids=["empty corpus", "only comments", "shorter than one window", "block size larger than the corpus",
        "every word unknown to a small vocabulary", "batch larger than the windows", "d_model not divisible by heads",
        "vocabulary size below the minimum", "zero layers", "learning rate 0"])
def test_bad_corpora_and_settings(app, case, text, settings, kind, message):
    paste(app, text, **settings)
    assert any(message in e.value for e in getattr(app, kind)), messages(app)
    unchanged_model(app)


def test_a_diverging_run_says_so_and_keeps_a_usable_model(app):
    paste(app, GOOD_TEXT)
    train_tiny_run(app, steps=300, tr_lr=10.0)
    assert any("loss exploded" in e.value or "became NaN" in e.value for e in app.error), messages(app)
    assert "run-1" in app.session_state["session_models"].models  # the last good weights are kept and usable
    unchanged_model(app)


# --------------------------------------------------------------------------------------------------------------
# Checkpoints

@pytest.mark.parametrize("name, content", [("truncated", b"PK\x03\x04" + os.urandom(300)),
                                           ("random", os.urandom(2048)), ("empty", b"")],
                         ids=["truncated", "random bytes", "empty file"])
def test_a_broken_checkpoint_in_models_falls_back_to_the_shipped_model(app, models_dir, name, content):
    (models_dir / f"{name}.pth").write_bytes(content)
    app.run()
    app.sidebar.selectbox[0].set_value(f"file:{(models_dir / f'{name}.pth').resolve()}").run()
    no_exception(app)
    assert any(f"{name}.pth" in e.value and "shipped model is active again" in e.value for e in app.sidebar.error)
    unchanged_model(app)
