"""Models with every tokenizer in the app: Explore's Tokens tab (chips, BPE merges, the three-way comparison), and a
BPE model through Generate, Fill the blanks, every Explore tab and fine-tuning."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest

from cutellm import prepare_training, save_checkpoint, train
from cutellm.completion import WORD_RE

from conftest import TINY_MODEL, TINY_TEXT, TINY_TRAIN
from .conftest import button, no_exception, open_page, train_tiny_run
from .test_pages import EXPLORE_TABS


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """A tiny trained checkpoint per tokenizer kind."""
    folder = tmp_path_factory.mktemp("tiny_models")
    paths = {}
    for kind in ("word", "char", "bpe"):
        config = replace(TINY_TRAIN, max_steps=40)
        model, tok, ds = prepare_training(TINY_TEXT, replace(TINY_MODEL, vocab_size=300), config, tokenizer_kind=kind)
        result = train(model, ds, config)
        paths[kind] = save_checkpoint(folder / f"tiny_{kind}.pth", model, tok,
                                      {"corpus": "tiny", "tokenizer_kind": kind, **result.summary()})
    return paths


def use(app, models_dir, path):
    """Copy a checkpoint into models/ and make it the active model."""
    target = shutil.copy(path, models_dir / path.name)
    app.run()
    app.sidebar.selectbox[0].set_value(f"file:{models_dir.joinpath(path.name).resolve()}").run()
    no_exception(app)
    assert app.session_state["active_model"].endswith(path.name), target


def html(app) -> str:
    return " ".join(h.proto.body for h in app.get("html"))


@pytest.mark.parametrize("kind", ["word", "char", "bpe"])
def test_the_tokens_tab_shows_how_each_tokenizer_cuts_the_text(app, models_dir, tiny_models, kind):
    use(app, models_dir, tiny_models[kind])
    open_page(app, "explore")
    app.session_state["ex_text"] = "the cat sat on the astronaut"
    app.session_state["ex_tab"] = "Tokens"
    app.run()
    no_exception(app)
    assert not app.error, [e.value for e in app.error]
    chips = html(app)
    assert chips.count('title="id ') == {"word": 6, "char": 28}.get(kind, chips.count('title="id ')) > 0
    if kind == "word":
        assert "read as &lt;unk&gt;" in chips  # "astronaut" is not in the tiny corpus
    if kind == "bpe":
        assert "·" in chips and "&lt;unk&gt;" not in chips  # spaces ride on the next token; nothing unknown
    tables = [d.value for d in app.dataframe]
    comparison = tables[-1]
    assert list(comparison["tokenizer"]) == ["word", "char", "bpe"]
    assert comparison.set_index("tokenizer").loc["bpe", "unk_rate"] == 0.0
    merges = [t for t in tables if "rank" in t.columns]
    assert (len(merges) == 1 and len(merges[0]) == 41 and merges[0]["count"].is_monotonic_decreasing) \
        if kind == "bpe" else not merges  # 300 - 259 merges


def test_a_bpe_model_works_on_every_page(app, models_dir, tiny_models):
    use(app, models_dir, tiny_models["bpe"])
    open_page(app, "generate")
    app.session_state["gen_prompt"] = "The cat 🐱 sat on the"
    app.run()
    assert not app.warning, "BPE reads every character: nothing is <unk>"
    app.radio(key="gen_mode").set_value("Greedy").run()
    button(app, "Generate").click().run()
    no_exception(app)
    assert app.session_state["gen_result"]["tokens"]
    open_page(app, "fill_blanks")
    app.text_input(key="fill_phrase").set_value("the ___ sat on the mat").run()
    button(app, "Fill the blanks").click().run()
    no_exception(app)
    candidates = app.session_state["fill_result"]["completion"].blanks[0].candidates
    assert candidates and all(WORD_RE.fullmatch(c.word) for c in candidates)  # whole words, not subword pieces
    for tab in EXPLORE_TABS:
        open_page(app, "explore")
        app.session_state["ex_tab"] = tab
        app.run()
        no_exception(app)
        assert not app.error, (tab, [e.value for e in app.error])


def test_fine_tuning_a_bpe_model_spells_new_words_without_unk(app, models_dir, tiny_models):
    use(app, models_dir, tiny_models["bpe"])
    app.session_state["tr_source"] = "Paste"
    app.session_state["tr_paste"] = "the rocket flew to the moon. the astronaut saw the stars. " * 30
    open_page(app, "train")
    app.radio(key="tr_start").set_value("The active model (fine-tune)").run()
    no_exception(app)
    assert {m.label: m.value for m in app.metric}["<unk> rate"] == "0.0%"
    assert not any("outside" in w.value for w in app.warning)
    job = train_tiny_run(app, steps=30, tr_start="The active model (fine-tune)")
    assert job.snapshot().status == "finished" and job.tokenizer.kind == "bpe"
    assert job.run.metadata["base_model"] == "tiny_bpe"
