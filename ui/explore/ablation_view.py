"""Explore's "Switch parts off" tab: one head, a layer's attention or a layer's MLP off, before / after on the text,
and the head importance table (on the text or on a validation sample of the model's corpus)."""

from __future__ import annotations

import hashlib

import numpy as np
import streamlit as st

from cutellm import CuteLLM
from cutellm.data import load_corpus, prepare_dataset
from cutellm.inference import encode_context
from cutellm.lab.runs import corpus_fingerprint
from cutellm.tokenizer import Tokenizer
from cutellm.views import ablation
from cutellm.views.ablation_charts import VIEWS, ablation_figure, head_importance_figure

from .. import state

KINDS = {"one head": "head", "a layer's attention": "attention", "a layer's MLP": "mlp"}
ON_TEXT, ON_VALIDATION = "this text", "validation sample"
DEFAULTS = {"ex_abl_kind": "one head", "ex_abl_layer": 1, "ex_abl_head": 1, "ex_abl_position": None,
            "ex_abl_on": ON_TEXT}
DATA = state.ROOT / "data"


def _vocabulary_key(tokenizer: Tokenizer) -> str:
    return hashlib.sha1("\n".join(tokenizer.token(i) for i in range(tokenizer.vocab_size)).encode()).hexdigest()


@st.cache_data(show_spinner="Cutting the corpus into windows…", max_entries=8)
def _validation(path: str, sha1: str, block_size: int, stride: int | None, val_fraction: float, vocabulary: str,
                _tokenizer: Tokenizer) -> np.ndarray | None:
    """A sample of the validation windows of the corpus at `path` (None if it is no longer the text the model
    learned from). `vocabulary` stands for the unhashed tokenizer in the cache key."""
    text = load_corpus(path)
    if corpus_fingerprint(text) != sha1:
        return None
    val = prepare_dataset(text, _tokenizer, block_size, stride=stride, val_fraction=val_fraction).val
    return ablation.sample_windows(val).numpy() if val.size(0) else None


def validation_windows(active: state.LoadedModel) -> tuple[np.ndarray | None, str]:
    """(a sample of the validation windows the model was measured on, or None; the corpus's name)."""
    meta = active.meta
    name, sha1 = meta.get("corpus"), meta.get("corpus_sha1")
    if not name or not sha1 or not (DATA / str(name)).is_file():
        return None, str(name or "unknown")
    recipe = meta.get("train_config") or {}
    windows = _validation(str(DATA / name), sha1, active.model.config.block_size, recipe.get("stride"),
                          recipe.get("val_fraction", 0.1), _vocabulary_key(active.tokenizer), active.tokenizer)
    return windows, str(name)


def _head_table(model: CuteLLM, active: state.LoadedModel, text: str, windows: np.ndarray | None):
    """The head importance table, kept in the session while the model, the text and the measure stay the same:
    changing the switch or the position above does not recompute it."""
    key = (active.key, id(model), text if windows is None else "validation")
    kept = st.session_state.get("ex_abl_table")
    if kept is None or kept[0] != key:
        table = (ablation.head_importance(model, active.tokenizer, text) if windows is None else
                 ablation.head_importance(model, active.tokenizer, windows=windows))
        st.session_state.ex_abl_table = kept = (key, table)
    return kept[1]


def _controls(model: CuteLLM, tokens: list[str]) -> tuple[ablation.Part, int]:
    cfg = model.config
    a, b, c = st.columns([2.2, 1, 1])
    a.radio("Switch off", list(KINDS), key="ex_abl_kind", horizontal=True)
    kind = KINDS[st.session_state.ex_abl_kind]
    st.session_state.ex_abl_layer = min(max(int(st.session_state.ex_abl_layer), 1), cfg.n_layers)
    b.selectbox("Layer", list(range(1, cfg.n_layers + 1)), key="ex_abl_layer")
    head = None
    if kind == "head":
        st.session_state.ex_abl_head = min(max(int(st.session_state.ex_abl_head), 1), cfg.n_heads)
        c.selectbox("Head", list(range(1, cfg.n_heads + 1)), key="ex_abl_head")
        head = st.session_state.ex_abl_head - 1
    positions = list(range(len(tokens)))
    if st.session_state.ex_abl_position not in positions:
        st.session_state.ex_abl_position = positions[-1]
    st.select_slider("Position", options=positions, key="ex_abl_position",
                     format_func=lambda p: f"{p}: {tokens[p]}",
                     help="Where to compare the guesses for the next word. The last position guesses the word "
                          "after your text.")
    return ablation.Part(kind, st.session_state.ex_abl_layer - 1, head), int(st.session_state.ex_abl_position)


def ablation_tab(model: CuteLLM, active: state.LoadedModel, text: str) -> None:
    tokenizer = active.tokenizer
    st.caption(VIEWS["ablation"].explanation)
    ids = encode_context(model, tokenizer, text)
    if len(ids) < 2:
        st.info("Type at least two words: the loss compares each guess with the word that follows it.",
                icon=":material/info:")
        return
    part, position = _controls(model, [tokenizer.token(i) for i in ids])
    effect = ablation.ablation_effect(model, tokenizer, text, part, position)
    a, b, c = st.columns(3)
    a.metric("Loss on the text, intact", f"{effect.loss_before:.3f}",
             help="Mean cross-entropy of guessing each next token of the text (nats per token; lower is better).")
    b.metric(f"Loss with {part.label} off", f"{effect.loss_after:.3f}", delta=f"{effect.loss_increase:+.3f}",
             delta_color="inverse", help="Red: the text got harder to predict without the part.")
    c.metric(f"Top guess at position {position}, {part.label} off", effect.predicted_after,
             delta=f"intact: {effect.predicted_before}", delta_color="off", delta_arrow="off",
             help="The most likely next token after the chosen position, without the part (and intact).")
    st.plotly_chart(ablation_figure(effect), key="ex_abl_bars", config={"displaylogo": False})

    st.markdown("**Head importance: which heads does this text need?**")
    windows, corpus = validation_windows(active)
    if windows is None:
        st.session_state.ex_abl_on = ON_TEXT
        st.caption(f"Measured on this text (no validation sample: the corpus `{corpus}` is not in data/).")
    else:
        st.radio("Measured on", [ON_TEXT, ON_VALIDATION], key="ex_abl_on", horizontal=True,
                 format_func=lambda o: o if o == ON_TEXT else f"{len(windows)} validation windows of {corpus}",
                 help="The validation windows are text the model did not train on, spread over the held-out "
                      "part of its corpus.")
    on_windows = windows is not None and st.session_state.ex_abl_on == ON_VALIDATION
    table = _head_table(model, active, text, windows if on_windows else None)
    st.caption(VIEWS["head_importance"].explanation)
    st.plotly_chart(head_importance_figure(table), key="ex_abl_heads", config={"displaylogo": False})
    st.caption("Every part switched off alone, most harmful first. A negative increase: the model did better "
               "without it on this sample.")
    shown = table.sort_values("increase", ascending=False)[["part", "loss_after", "increase"]]
    st.dataframe(shown, hide_index=True, width="stretch", column_config={
        "part": "switched off", "loss_after": st.column_config.NumberColumn("loss without it", format="%.3f"),
        "increase": st.column_config.NumberColumn("loss increase", format="%+.3f")})
