"""The Train page's data step when instruction-tuning: the bundled conversations or an uploaded .jsonl, checked line
by line, and one conversation as the model will read it, the tokens it learns (the loss mask) underlined."""

from __future__ import annotations

import hashlib

import streamlit as st

from cutellm import CuteLLMError
from cutellm.chat import bundled_conversations, chat_dataset, messages_text, parse_conversations, template
from cutellm.data import decode_corpus_bytes

from .. import state
from ..text import conversation_chips_html, glossary_link

DATA_DIR = state.ROOT / "data"


def remember_upload() -> None:
    """Read the uploaded file once, in a callback (uploads vanish when the page changes)."""
    uploaded = st.session_state.get("tr_chat_upload")
    st.session_state.tr_chat_text, st.session_state.tr_chat_name, st.session_state.tr_chat_error = None, None, None
    if uploaded is None:
        return
    try:
        limit = int(st.get_option("server.maxUploadSize")) * 1024 * 1024
        st.session_state.tr_chat_text = decode_corpus_bytes(uploaded.getvalue(), uploaded.name, limit)
        st.session_state.tr_chat_name = uploaded.name
    except CuteLLMError as err:
        st.session_state.tr_chat_error = str(err)


def choose_conversations() -> tuple[str | None, str]:
    """The conversations file's text (None when there is none yet) and its name."""
    st.radio("Conversations", ["Bundled", "Upload"], key="tr_chat_source", horizontal=True,
             help="Bundled: conversations written for CuteGPT's corpus. Upload: a .jsonl file of your own, one "
                  'conversation per line: {"messages": [{"role": "user", "content": "..."}, '
                  '{"role": "assistant", "content": "..."}]}.')
    if st.session_state.tr_chat_source == "Bundled":
        names = bundled_conversations(DATA_DIR)
        if st.session_state.get("tr_chat_bundled") not in names:
            st.session_state.tr_chat_bundled = names[0]
        st.selectbox("Bundled conversations", names, key="tr_chat_bundled", help="The .jsonl files in data/.")
        return (DATA_DIR / st.session_state.tr_chat_bundled).read_text(encoding="utf-8"), st.session_state.tr_chat_bundled
    st.file_uploader("Upload a .jsonl file", type=["jsonl"], key="tr_chat_upload", on_change=remember_upload)
    if st.session_state.get("tr_chat_error"):
        st.error(st.session_state.tr_chat_error, icon=":material/error:")
    return st.session_state.get("tr_chat_text"), st.session_state.get("tr_chat_name") or "uploaded file"


@st.cache_data(show_spinner=False, max_entries=8)
def _checked(digest: str, text: str, name: str, model_key: str, _tokenizer, block_size: int):
    """(conversations, training windows, <unk> rate): the whole file checked as the run will read it."""
    conversations = parse_conversations(text, name)
    dataset = chat_dataset(conversations, _tokenizer, block_size, name=name)
    return len(conversations), dataset.train.size(0), _tokenizer.unk_rate(messages_text(text))


def show_conversations(text: str, name: str, base: state.LoadedModel) -> int | None:
    """The file's numbers and one example under the base model's tokenizer (with the chat tokens); returns the number
    of training windows, or None (with the reason shown) when the file cannot be used."""
    tokenizer = base.tokenizer.with_chat_tokens()
    block = base.model.config.block_size
    try:
        n, windows, unk = _checked(hashlib.sha1(text.encode()).hexdigest(), text, name, base.key, tokenizer, block)
    except CuteLLMError as err:
        st.error(str(err), icon=":material/error:")
        return None
    a, b, c = st.columns(3)
    a.metric("Conversations", f"{n:,}", help="One training window each; the last tenth validates.")
    b.metric("Context", f"{block} tokens", help=f"{base.name} reads at most this many tokens: every conversation, "
             "templated, must fit.")
    c.metric("<unk> rate", f"{unk:.1%}", help=f"Share of the messages' words outside {base.name}'s vocabulary.")
    example = parse_conversations(text, name)[0]
    t = template(tokenizer, example.messages)
    st.markdown(f"**Line {example.line}, as the model reads it.** Underlined tokens are the targets the loss counts "
                "(the answer and its `<|end|>`); the question is read, never learned. "
                f"{glossary_link('loss mask')}")
    st.html(conversation_chips_html(tokenizer, t.ids, t.roles, t.learned))
    if not base.tokenizer.has_chat_tokens:
        st.caption(f"{base.name} has never seen `<|user|>`, `<|assistant|>` or `<|end|>`: tuning adds them to its "
                   "vocabulary, three new rows of its embedding table.")
    if unk > 0.1:
        st.warning(f"{unk:.0%} of the messages' words are outside {base.name}'s vocabulary; they become <unk>.",
                   icon=":material/warning:")
    return windows
