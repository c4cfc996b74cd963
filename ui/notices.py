"""Notices several pages show about what the model reads and writes."""

from __future__ import annotations

from typing import Sequence

import streamlit as st

from cutellm.inference import repeating_tail, tokens_beyond_context
from cutellm.tokenizer import Tokenizer

from .text import code_span, words_list


def warn_unknown_words(tokenizer: Tokenizer, text: str) -> None:
    """Point out the pieces of `text` the model's vocabulary lacks (it reads each of them as <unk>)."""
    unknown = tokenizer.unknown_words(text)
    if unknown:
        st.warning(f"Not in the model's vocabulary, read as `<unk>`: {words_list(unknown)}", icon=":material/help:")


def note_beyond_context(ids: Sequence[int], block_size: int, what: str = "The text") -> None:
    """Say so when a text is longer than the model's context: only its last `block_size` tokens are read."""
    beyond = tokens_beyond_context(ids, block_size)
    if beyond:
        st.info(f"{what} has {len(ids):,} tokens, more than the model's context of {block_size}: it reads only the "
                f"last {block_size}, and the first {beyond:,} make no difference.", icon=":material/content_cut:")


def hint_repetition(tokenizer: Tokenizer, new_ids: Sequence[int], sampled: bool) -> None:
    """One line when the generated tokens end in a loop ("not not not"), pointing to sampling."""
    loop = repeating_tail(new_ids)
    if loop is None:
        return
    why = ("Greedy decoding always takes the most likely token, so once the text loops it stays in the loop: try "
           "**Sampled** (temperature around 0.8)." if not sampled else
           "Try a higher temperature or top-p, so that other tokens get a chance.")
    st.info(f"The text ends by repeating {code_span(tokenizer.decode(loop.tokens))} {loop.repeats} times. {why}",
            icon=":material/repeat:")
