"""The Generate page's normal mode: the text streamed token by token, then the per-token table."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
import streamlit as st

from cutellm.inference import GeneratedToken, stream_generate
from cutellm.sampling import SamplingSettings

from ..notices import hint_repetition
from ..state import LoadedModel
from ..text import tinted_html

# The shipped model writes a token in about a millisecond: paced, the text visibly grows (at most ~2 s in all).
PACE_S, MAX_PACED_S = 0.05, 2.0


def stream_into(slot, active: LoadedModel, prompt: str, settings: SamplingSettings, max_new_tokens: int
                ) -> dict[str, Any]:
    """Generate into `slot` (an st.empty) with the page's `settings` as they are, redrawing the tinted text after
    every token; the kept result."""
    pace = min(PACE_S, MAX_PACED_S / max_new_tokens)
    tokens: list[GeneratedToken] = []
    for token in stream_generate(active.model, active.tokenizer, prompt, max_new_tokens, sampling=settings):
        tokens.append(token)
        slot.html(tinted_html(active.tokenizer, prompt, tokens))
        time.sleep(pace)
    return {"prompt": prompt, "tokens": tokens, "sampled": not settings.greedy}


def show_result(slot, active: LoadedModel, result: dict[str, Any]) -> None:
    """The finished text (in `slot`), the repetition hint, and each token's probability and alternatives."""
    tokens = result["tokens"]
    slot.html(tinted_html(active.tokenizer, result["prompt"], tokens))
    st.caption("Grey: your prompt (as the model reads it) · tinted: generated, the deeper the more probable the "
               "model found that token. Hover a token for its probability and the alternatives.")
    hint_repetition(active.tokenizer, [t.token_id for t in tokens], result["sampled"])
    table = pd.DataFrame({
        "#": range(1, len(tokens) + 1),
        "token": [t.text for t in tokens],
        "probability": [t.prob for t in tokens],
        "top alternatives": ["  ".join(f"{w} {p:.0%}" for w, p in t.alternatives) for t in tokens],
    })
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "probability": st.column_config.ProgressColumn("probability", min_value=0.0, max_value=1.0, format="%.3f",
                                                       help="The model's probability for the chosen token"),
        "top alternatives": st.column_config.TextColumn(help="The model's 5 most likely tokens at that step")})
