"""Explore's Tokens tab: the text as the model's tokens, a BPE model's first merges, and word / char / BPE side by
side on the same text."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from cutellm.views import inspection
from cutellm.data import load_corpus

from .. import state
from ..text import chips_html

# The corpus the comparison table builds its three tokenizers from.
COMPARISON_CORPUS = state.ROOT / "data" / "training_data.txt"


@st.cache_data(show_spinner="Building the three tokenizers…", max_entries=32)
def _comparison(text: str, vocab_size: int) -> pd.DataFrame:
    return inspection.tokenizer_comparison(text, load_corpus(COMPARISON_CORPUS), vocab_size)


def tokens_tab(tokenizer, text: str) -> None:
    pieces = inspection.token_pieces(tokenizer, text)
    st.caption(f"The model never sees letters: it reads **{len(pieces)} tokens**, each a number (its id). Hover a "
               "token for its id." + (" A `·` is a space: BPE keeps the space in front of a word as part of its "
                                      "token." if tokenizer.kind == "bpe" else ""))
    st.html(chips_html(pieces))
    if tokenizer.kind == "bpe":
        st.markdown("**How this BPE vocabulary was made: its first 50 merges**")
        st.caption("BPE starts from the 256 byte values and repeatedly glues together the pair of tokens that "
                   "occurs most often in the corpus. The first merges are the most common pairs; later ones build "
                   "whole words out of them.")
        merges = inspection.bpe_merges(tokenizer, 50)
        st.dataframe(merges, hide_index=True, width="stretch", height=280, column_config={
            "count": st.column_config.ProgressColumn("times the pair occurred", format="%d", min_value=0,
                                                     max_value=int(merges["count"].max() or 1))})
    st.markdown("**The same text under three tokenizers**")
    vocab = max(tokenizer.vocab_size, 300) if tokenizer.kind != "char" else 1000
    table = _comparison(text, vocab)
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "unk_rate": st.column_config.NumberColumn("<unk> rate", format="percent"),
        "chars_per_token": st.column_config.NumberColumn("characters per token", format="%.2f")})
    st.caption(f"Each tokenizer was built from the bundled corpus ({COMPARISON_CORPUS.name}) with a vocabulary of "
               f"{vocab:,} (char: every character it contains). Words make short sequences but cannot read a word "
               "they never saw (`<unk>`); characters read anything but make long sequences; BPE sits between: "
               "frequent words are one token, rare ones are spelled from pieces, nothing is unknown.")
