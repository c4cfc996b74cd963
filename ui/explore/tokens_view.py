"""Explore's Tokens tab: the text as the model's tokens, a BPE model's first merges, and word / char / BPE side by
side on the same text."""

from __future__ import annotations

import html

import pandas as pd
import streamlit as st

from cutellm.views import inspection
from cutellm.data import load_corpus

from .. import state

# Soft colours that tell neighbouring tokens apart (token i gets colour i mod len).
CHIP_COLOURS = ("#E6E1FF", "#D5F5EA", "#FFE8CC", "#DCEBFF", "#FFE1EC", "#EEF2C4")
CHIP_STYLE = """<style>
.cute-chips { line-height: 2.3; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 0.98rem; }
.cute-chips span { padding: 0.15rem 0.3rem; margin: 0 0.12rem; border-radius: 0.3rem; white-space: pre; }
.cute-chips span.unk { outline: 2px dashed #f59e0b; }
</style>"""
# The corpus the comparison table builds its three tokenizers from.
COMPARISON_CORPUS = state.ROOT / "data" / "training_data.txt"


def chips_html(pieces: pd.DataFrame) -> str:
    """`inspection.token_pieces` as coloured chips; hovering one shows its id and readable form."""
    spans = []
    for row in pieces.itertuples():
        shown = row.piece.replace(" ", "␣").replace("\n", "↵") if row.piece.strip() != row.piece else row.piece
        title = f"id {row.id} · {row.token}" + (" (not in the vocabulary: read as <unk>)" if row.unknown else "")
        spans.append(f'<span class="{"unk" if row.unknown else ""}" title="{html.escape(title)}" '
                     f'style="background:{CHIP_COLOURS[row.position % len(CHIP_COLOURS)]}">{html.escape(shown)}</span>')
    return f'{CHIP_STYLE}<div class="cute-chips">{"".join(spans)}</div>'


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
