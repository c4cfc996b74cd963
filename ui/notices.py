"""Notices several pages show about what the model reads."""

from __future__ import annotations

import streamlit as st

from cutellm.tokenizer import Tokenizer

from .text import words_list


def warn_unknown_words(tokenizer: Tokenizer, text: str) -> None:
    """Point out the pieces of `text` the model's vocabulary lacks (it reads each of them as <unk>)."""
    unknown = tokenizer.unknown_words(text)
    if unknown:
        st.warning(f"Not in the model's vocabulary, read as `<unk>`: {words_list(unknown)}", icon=":material/help:")
