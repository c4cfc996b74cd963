"""The Train page's corpus step: where the text comes from (bundled, uploaded, pasted, or a generated toy task) and
what it looks like under the chosen tokenizer (words, tokens, vocabulary, <unk> rate, windows)."""

from __future__ import annotations

import hashlib

import streamlit as st

from cutellm import CuteLLMError
from cutellm.data import bundled_corpora as corpora_in, clean_corpus, corpus_stats, decode_corpus_bytes
from cutellm.presets import task_preset
from cutellm.tasks import TASKS, Task, held_out_problems, task_corpus
from cutellm.tokenizer import build_tokenizer

from .. import state
from . import settings_form as form

DATA_DIR = state.ROOT / "data"


def bundled_corpora() -> list[str]:
    return corpora_in(DATA_DIR)


def remember_upload() -> None:
    """Read the uploaded file once, in a callback, into non-widget state (uploads vanish when the page changes)."""
    uploaded = st.session_state.get("tr_upload")
    st.session_state.tr_upload_text, st.session_state.tr_upload_name = None, None
    st.session_state.tr_upload_error = None
    if uploaded is None:
        return
    try:
        limit = int(st.get_option("server.maxUploadSize")) * 1024 * 1024
        st.session_state.tr_upload_text = decode_corpus_bytes(uploaded.getvalue(), f"'{uploaded.name}'", limit)
        st.session_state.tr_upload_name = uploaded.name
    except CuteLLMError as err:
        st.session_state.tr_upload_error = str(err)


TOY_TASK = "Toy task"   # the source radio's choice for a generated task


def chosen_task() -> Task | None:
    """The toy task the corpus step has chosen, or None for text."""
    s = st.session_state
    return TASKS[s.tr_task] if s.tr_source == TOY_TASK and s.get("tr_task") in TASKS else None


def apply_task_preset() -> None:
    """on_change of the source and the task: a task fills in its preset (characters as tokens, its model and steps),
    as the Preset box does; a text source leaves the settings as they are."""
    task = chosen_task()
    if task is not None:
        form.apply_values(task_preset(task))


@st.cache_data(show_spinner=False, max_entries=8)
def _task_text(name: str) -> str:
    return task_corpus(TASKS[name])


def choose_task() -> tuple[str, str]:
    st.selectbox("Task", list(TASKS), key="tr_task", on_change=apply_task_preset,
                 format_func=lambda name: f"{name} — {TASKS[name].description}",
                 help="Generated problems with exact answers, one per line: question=answer. The model has found "
                      "the rule when it answers problems it never saw.")
    task = TASKS[st.session_state.tr_task]
    text = _task_text(task.name)
    held_out = held_out_problems(task)
    st.code("".join(text.splitlines(keepends=True)[:4]) + "…", language=None)
    st.caption(f"{text.count(chr(10)):,} training problems like these; {len(held_out)} others are held out (never "
               "in the training text) and scored at each evaluation: the live view shows the share answered "
               "exactly. A task model trains with characters as tokens.")
    return text, f"task:{task.name}"


def choose_corpus() -> tuple[str | None, str]:
    """The cleaned corpus text (None when there is none yet) and its name."""
    st.radio("Corpus", ["Bundled", "Upload", "Paste", TOY_TASK], key="tr_source", horizontal=True,
             on_change=apply_task_preset,
             help="Bundled: the text that ships with CuteGPT. Upload: a .txt file of your own. Paste: type or paste. "
                  "Toy task: generated problems with exact answers (copy, reverse, sort, add, brackets).")
    source = st.session_state.tr_source
    if source == TOY_TASK:
        return choose_task()
    if source == "Bundled":
        names = bundled_corpora()
        if st.session_state.tr_bundled not in names:
            st.session_state.tr_bundled = names[0]
        st.selectbox("Bundled corpus", names, key="tr_bundled", help="Files in the data/ folder.")
        raw = (DATA_DIR / st.session_state.tr_bundled).read_text(encoding="utf-8")
        name = st.session_state.tr_bundled
    elif source == "Upload":
        st.file_uploader("Upload a UTF-8 .txt file", type=["txt"], key="tr_upload", on_change=remember_upload,
                         help="Plain text. Lines starting with # and blank lines are ignored.")
        if st.session_state.get("tr_upload_error"):
            st.error(st.session_state.tr_upload_error, icon=":material/error:")
        raw, name = st.session_state.tr_upload_text, st.session_state.tr_upload_name
        if raw is not None:
            st.caption(f"Using {name}")
    else:
        st.text_area("Paste your text", key="tr_paste", height=160, max_chars=2_000_000,
                     help="A few paragraphs at least: the model learns only from this text.")
        raw, name = st.session_state.tr_paste, "pasted text"
    if raw is None:
        return None, name
    text = clean_corpus(raw)
    if not text.strip():
        st.warning("The corpus is empty (comment lines starting with # and blank lines don't count): add some "
                   "text to train on.", icon=":material/warning:")
        return None, name
    return text, name


# cache_data, not cache_resource: each caller gets its own copy (unpickled), so a tokenizer one session trains with is
# never an object another session holds too. Keyed by the text's digest: the text itself need not be hashed again.
@st.cache_data(show_spinner=False, max_entries=16)
def _tokenizer(text_hash: str, _text: str, kind: str, vocab: int):
    return build_tokenizer(kind, _text, vocab)


def corpus_tokenizer(text: str, kind: str, vocab: int):
    """The tokenizer a new model gets for this text and these settings: built once (BPE merges take seconds on a big
    corpus) when the statistics are shown, then a copy from the cache for the run
    (`prepare_run(..., tokenizer=...)`)."""
    return _tokenizer(hashlib.sha1(text.encode()).hexdigest(), text, kind, vocab)


@st.cache_data(show_spinner=False, max_entries=16)
def _stats_under(text_hash: str, text: str, tokenizer_key: str, block: int, _tokenizer):
    return corpus_stats(text, _tokenizer, block), _tokenizer.vocab_size


def show_stats(text: str, base: state.LoadedModel | None, *, kind: str, vocab: int, block: int, batch: int,
               accum: int) -> tuple[int, int] | None:
    """Corpus numbers under the chosen tokenizer (the base model's when fine-tuning); returns the number of
    training windows and the vocabulary size the model will have (None when the text cannot be tokenized)."""
    digest = hashlib.sha1(text.encode()).hexdigest()
    try:
        if base is None:
            tokenizer = corpus_tokenizer(text, kind, vocab)
            stats, vocab_size = _stats_under(digest, text, f"{kind}:{vocab}", block, tokenizer)
        else:
            block = base.model.config.block_size
            stats, vocab_size = _stats_under(digest, text, base.key, block, base.tokenizer)
    except CuteLLMError as err:
        st.error(str(err), icon=":material/error:")
        return None
    # Two rows of three: six metrics side by side cut off their values ("5,709 /...") at the page's default width.
    c = st.columns(3) + st.columns(3)
    c[0].metric("Words", f"{stats.words:,}")
    c[1].metric("Tokens", f"{stats.tokens:,}")
    c[2].metric("Characters per token", f"{stats.chars_per_token:.2f}",
                help="How much text one token stands for: 1 for characters, more for BPE subwords and words. Longer "
                     "tokens let the same context reach further back.")
    c[3].metric("Vocabulary", f"{vocab_size:,}", help=f"{stats.distinct_tokens:,} distinct tokens in the text; "
                "the vocabulary holds them (the most frequent, for words) plus <pad>, <unk>, <mask>")
    c[4].metric("<unk> rate", f"{stats.unk_rate:.1%}", help="Share of the text that falls outside the vocabulary"
                + (f" of {base.name}" if base is not None else "")
                + ". Always 0 for BPE: it spells any word from subword pieces, down to single bytes.")
    c[5].metric("Windows", f"{stats.train_windows:,} / {stats.val_windows:,}",
                help=f"Training / validation windows of {block} + 1 tokens (90/10 split by position)")
    if stats.train_windows == 0:
        st.error(f"This text is too short for one training window of {block} + 1 tokens "
                 f"({stats.tokens} tokens in all). Add text or lower the block size.", icon=":material/error:")
    elif base is not None and stats.unk_rate > 0.1:
        st.warning(f"{stats.unk_rate:.0%} of this text is outside {base.name}'s vocabulary. Fine-tuning keeps "
                   "that vocabulary, so those words become <unk>: the model can learn new patterns of the words it "
                   "knows, not new words.", icon=":material/warning:")
    elif stats.unk_rate > 0.2:
        st.warning(f"{stats.unk_rate:.0%} of the text is outside the vocabulary, so the model would mostly learn "
                   "to predict <unk>: raise the vocabulary size.", icon=":material/warning:")
    if 0 < stats.train_windows < batch * accum:
        reads = f" (batch size {batch} × {accum} accumulated batches)" if accum > 1 else ""
        st.warning(f"One step's {batch * accum} windows{reads} are more than the {stats.train_windows} training "
                   "windows; the batch will be cut down to fit.", icon=":material/warning:")
    return stats.train_windows, vocab_size
