"""The sampling settings' widgets, shared by Generate and Chat: decoding greedy or sampled, and for sampling its
temperature, seed, top-k and top-p, under one key prefix per page (`gen_`, `chat_`), turned into one
SamplingSettings."""

from __future__ import annotations

from typing import Any

import streamlit as st

from cutellm.sampling import SamplingSettings

from . import state
from .text import glossary_link

TOP_K_MAX = 200


def decoding_radio(prefix: str, container: Any = st, same: str = "output") -> None:
    container.radio("Decoding", ["Greedy", "Sampled"], key=f"{prefix}_mode", horizontal=True,
                    help=f"Greedy always takes the most likely token (the same {same} every time). Sampled draws "
                         "tokens at random according to their probabilities. " + glossary_link("greedy"))


def sampling_widgets(prefix: str, vocab_size: int, container: Any = st, what: str = "text") -> None:
    """Temperature, seed, top-k and top-p in two columns of `container` when `{prefix}_mode` is Sampled, else a line
    saying greedy needs none. The page keeps the values (state.keep) under `{prefix}_temperature`, ... keys."""
    if st.session_state[f"{prefix}_mode"] != "Sampled":
        container.caption("Greedy decoding needs no other settings: it always picks the most likely next token.")
        return
    a, b = container.columns(2)
    top_k_max = min(TOP_K_MAX, vocab_size)
    state.clamp(f"{prefix}_temperature", 0.05, 2.0, "Temperature")
    state.clamp(f"{prefix}_top_k", 1, top_k_max, "Top-k")
    state.clamp(f"{prefix}_top_p", 0.05, 1.0, "Top-p")
    state.clamp(f"{prefix}_seed", 0, 2**31 - 1, "Seed")
    a.slider("Temperature", 0.05, 2.0, step=0.05, key=f"{prefix}_temperature",
             help="Below 1 sharpens the distribution (safer words), above 1 flattens it (more surprising). "
                  + glossary_link("temperature"))
    a.number_input("Seed", 0, 2**31 - 1, step=1, key=f"{prefix}_seed",
                   help=f"The same seed with the same settings gives the same {what}.")
    b.slider("Top-k", 1, top_k_max, key=f"{prefix}_top_k",
             help="Sample only among the k most likely tokens. " + glossary_link("top-k"))
    b.slider("Top-p", 0.05, 1.0, step=0.05, key=f"{prefix}_top_p",
             help="Sample only among the most likely tokens whose probabilities add up to p (1 = no limit). "
                  + glossary_link("top-p"))


def sampling_settings(prefix: str) -> SamplingSettings:
    """The widgets' values as one SamplingSettings (greedy unless Sampled); it goes as it is to every draw."""
    s = st.session_state
    if s[f"{prefix}_mode"] != "Sampled":
        return SamplingSettings()
    top_p = float(s[f"{prefix}_top_p"])
    return SamplingSettings(float(s[f"{prefix}_temperature"]), int(s[f"{prefix}_top_k"]),
                            top_p if top_p < 1 else None,   # top-p 1 keeps everything: the filter is off
                            seed=int(s[f"{prefix}_seed"]))
