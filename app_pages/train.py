"""Train: pick a corpus and a model size, train in the background while the loss chart updates live, then save."""

from __future__ import annotations

import hashlib

import streamlit as st

from cutellm import (ConfigError, CuteLLMError, ModelConfig, TrainConfig, load_settings, prepare_finetuning,
                     prepare_training)
from cutellm.config import PRECISIONS, Settings, available_devices, resolve_device, resolve_precision
from cutellm.charts import loss_figure
from cutellm.checkpoint import checkpoint_bytes, checkpoint_path, save_checkpoint
from cutellm.data import clean_corpus, corpus_stats, decode_corpus_bytes
from cutellm.jobs import TrainingBusyError, TrainingJob, training_in_progress
from cutellm.runs import lineage
from cutellm.tokenizer import build_tokenizer
from cutellm.training import batch_plan
from ui import state

DATA_DIR = state.ROOT / "data"
MAX_STEPS = 50_000
TIMELINE_SNAPSHOTS = 8  # weight copies kept per run for Explore's training timeline (capped at 64 MB)
LIVE_REFRESH_S = 2.0
LIVE_CHART_POINTS = 300


def _settings() -> Settings:
    """The CLI's defaults, `.env` included, so `make run` and the app agree."""
    try:
        return load_settings(state.ROOT / ".env")
    except ConfigError as err:
        st.warning(f"Ignoring .env: {err}")
        return load_settings(None, environ={})


SETTINGS = _settings()


def _default_preset() -> dict:
    """The 'default' preset: the CLI's default model and recipe."""
    m, t = SETTINGS.model, SETTINGS.train
    return dict(tr_tokenizer="word", tr_vocab=m.vocab_size, tr_d_model=m.d_model, tr_heads=m.n_heads,
                tr_layers=m.n_layers, tr_block=m.block_size, tr_dropout=m.dropout, tr_batch=t.batch_size,
                tr_mode="Epochs", tr_epochs=t.epochs, tr_steps=1000, tr_lr=t.learning_rate, tr_seed=t.seed)


PRESETS = {
    "tiny & fast": dict(tr_tokenizer="word", tr_vocab=500, tr_d_model=64, tr_heads=4, tr_layers=1, tr_block=16,
                        tr_dropout=0.0, tr_batch=16, tr_mode="Steps", tr_epochs=1, tr_steps=300, tr_lr=5e-3,
                        tr_seed=1337),
    "default": _default_preset(),
    "bigger": dict(tr_tokenizer="word", tr_vocab=2000, tr_d_model=192, tr_heads=6, tr_layers=4, tr_block=32,
                   tr_dropout=0.1, tr_batch=16, tr_mode="Epochs", tr_epochs=10, tr_steps=5000, tr_lr=2e-3,
                   tr_seed=1337),
}
PRESET_HELP = {"tiny & fast": "a 1-layer model, 300 steps: about 5 seconds",
               "default": "the shipped model's recipe: about a minute on 2 CPU cores",
               "bigger": "4 layers, wider, longer context: several minutes"}


def apply_preset() -> None:
    for key, value in PRESETS[st.session_state.tr_preset].items():
        st.session_state[key] = value


state.keep({"tr_preset": "default", **PRESETS["default"], "tr_source": "Bundled", "tr_bundled": "training_data.txt",
            "tr_paste": "", "tr_upload_text": None, "tr_upload_name": None, "tr_save_name": "", "tr_overwrite": False,
            "tr_start": "A new model", "tr_noncausal": False,
            # Where and how to compute: not part of the presets (they describe the model, not the machine).
            "tr_device": SETTINGS.train.device if SETTINGS.train.device in available_devices() else "auto",
            "tr_precision": SETTINGS.train.precision, "tr_compile": SETTINGS.train.compile,
            "tr_accum": SETTINGS.train.grad_accum_steps})


# ---------------------------------------------------------------------------------------------------------------
# Corpus
# ---------------------------------------------------------------------------------------------------------------
def bundled_corpora() -> list[str]:
    return sorted(p.name for p in DATA_DIR.glob("*.txt"))


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


def choose_corpus() -> tuple[str | None, str]:
    """The cleaned corpus text (None when there is none yet) and its name."""
    st.radio("Corpus", ["Bundled", "Upload", "Paste"], key="tr_source", horizontal=True,
             help="Bundled: the text that ships with CuteGPT. Upload: a .txt file of your own. Paste: type or paste.")
    source = st.session_state.tr_source
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


@st.cache_data(show_spinner=False, max_entries=16)
def _stats(text_hash: str, text: str, kind: str, vocab: int, block: int):
    tokenizer = build_tokenizer(kind, text, vocab)
    return corpus_stats(text, tokenizer, block), tokenizer.vocab_size


@st.cache_data(show_spinner=False, max_entries=16)
def _stats_under(text_hash: str, text: str, model_key: str, block: int, _tokenizer):
    return corpus_stats(text, _tokenizer, block), _tokenizer.vocab_size


def show_stats(text: str, base: state.LoadedModel | None) -> int | None:
    """Corpus numbers under the chosen tokenizer (the base model's when fine-tuning); returns the number of
    training windows."""
    digest = hashlib.sha1(text.encode()).hexdigest()
    try:
        if base is None:
            kind, vocab, block = st.session_state.tr_tokenizer, st.session_state.tr_vocab, st.session_state.tr_block
            stats, vocab_size = _stats(digest, text, kind, int(vocab), int(block))
        else:
            block = base.model.config.block_size
            stats, vocab_size = _stats_under(digest, text, base.key, block, base.tokenizer)
    except CuteLLMError as err:
        st.error(str(err), icon=":material/error:")
        return None
    c = st.columns(5)
    c[0].metric("Words", f"{stats.words:,}")
    c[1].metric("Tokens", f"{stats.tokens:,}")
    c[2].metric("Vocabulary", f"{vocab_size:,}", help=f"{stats.distinct_tokens:,} distinct tokens in the text; "
                "the model keeps the most frequent ones (plus <pad>, <unk>, <mask>)")
    c[3].metric("<unk> rate", f"{stats.unk_rate:.1%}", help="Share of the text that falls outside the vocabulary"
                + (f" of {base.name}" if base is not None else ""))
    c[4].metric("Windows", f"{stats.train_windows:,} / {stats.val_windows:,}",
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
    batch, accum = int(st.session_state.tr_batch), int(st.session_state.tr_accum)
    if 0 < stats.train_windows < batch * accum:
        reads = f" (batch size {batch} × {accum} accumulated batches)" if accum > 1 else ""
        st.warning(f"One step's {batch * accum} windows{reads} are more than the {stats.train_windows} training "
                   "windows; the batch will be cut down to fit.", icon=":material/warning:")
    return stats.train_windows


# ---------------------------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------------------------
# key -> (label, min, max, step, help): one table for the widgets and for clamping stale values into range.
NUMBERS = {
    "tr_vocab": ("Vocabulary size", 4, 20_000, 100,
                 "Word tokenizer: keep the most frequent words; the rest become <unk>."),
    "tr_block": ("Block size (context)", 2, 256, 4, "How many tokens the model reads at once."),
    "tr_d_model": ("d_model (width)", 8, 512, 16,
                   "Size of each token's vector. Must be divisible by the number of heads."),
    "tr_heads": ("Attention heads", 1, 16, 1, "Parallel attention patterns per layer."),
    "tr_layers": ("Layers", 1, 12, 1, "Transformer blocks stacked."),
    "tr_dropout": ("Dropout", 0.0, 0.9, 0.05, "Randomly zeroes activations while training, against overfitting."),
    "tr_batch": ("Batch size", 1, 512, 4, "Windows per batch; one optimisation step reads batch size × "
                 "gradient accumulation windows."),
    "tr_epochs": ("Epochs", 1, 200, 1, "Passes over the whole corpus."),
    "tr_steps": ("Steps", 1, MAX_STEPS, 100, "Optimisation steps."),
    "tr_lr": ("Learning rate", 1e-5, 10.0, 1e-3,
              "Peak step size (AdamW, warmup then cosine decay). 1e-3 to 5e-3 suits small models; far higher "
              "values make training diverge."),
    "tr_seed": ("Seed", 0, 2**31 - 1, 1, "Same seed + same settings = same model."),
    "tr_accum": ("Gradient accumulation", 1, 64, 1,
                 "Add up the gradients of this many batches before each optimisation step: the step sees "
                 "batch size × this many windows, with the memory of one batch."),
}


def number(key: str, container=st, **kwargs) -> None:
    label, low, high, step, help_text = NUMBERS[key]
    state.clamp(key, low, high, label)
    container.number_input(label, low, high, step=step, key=key, help=help_text,
                           format="%.4f" if key == "tr_lr" else None, **kwargs)


def choose_settings(base: state.LoadedModel | None) -> None:
    st.selectbox("Preset", list(PRESETS), key="tr_preset", on_change=apply_preset,
                 format_func=lambda p: f"{p} — {PRESET_HELP[p]}",
                 help="Fills in every setting below; change any of them afterwards.")
    a, b, c = st.columns(3)
    if base is not None:
        cfg = base.model.config
        with a:
            st.markdown("**Tokens** :material/lock:")
            st.caption(f"{base.tokenizer.kind} tokenizer, {base.tokenizer.vocab_size:,} tokens, context "
                       f"{cfg.block_size}")
        with b:
            st.markdown("**Model** :material/lock:")
            st.caption(f"{cfg.n_layers} layers × {cfg.n_heads} heads, d_model {cfg.d_model}, dropout {cfg.dropout}")
        st.info(f"Fine-tuning continues training **{base.name}**, so its tokenizer and shape stay as they are: the "
                "learned weights only fit that exact vocabulary and size.", icon=":material/lock:")
    else:
        with a:
            st.markdown("**Tokens**")
            st.radio("Tokenizer", ["word", "char"], key="tr_tokenizer", horizontal=True,
                     help="word: one token per word or punctuation mark. char: one token per character.")
            number("tr_vocab", disabled=st.session_state.tr_tokenizer == "char")
            number("tr_block")
        with b:
            st.markdown("**Model**")
            for key in ("tr_d_model", "tr_heads", "tr_layers", "tr_dropout"):
                number(key)
            st.checkbox("Experiment: no causal mask", key="tr_noncausal",
                        help="Lets every position see the words after it while training. The loss falls very low "
                             "— because the model reads the answer — and generation gets poor, since at generation "
                             "time there is no future to read. Off for every real model.")
    with c:
        st.markdown("**Training**")
        number("tr_batch")
        st.radio("Train for", ["Epochs", "Steps"], key="tr_mode", horizontal=True,
                 help="Epochs: passes over the whole corpus. Steps: an exact number of optimisation steps.")
        number("tr_epochs" if st.session_state.tr_mode == "Epochs" else "tr_steps")
        number("tr_lr")
        number("tr_seed")
    choose_hardware()


def choose_hardware() -> None:
    """Where and how to compute: the same choices as the CLI's --device, --precision, --compile, --grad-accum."""
    st.markdown("**Hardware**")
    devices = available_devices()
    if st.session_state.tr_device not in devices:  # e.g. a GPU that is gone since the value was kept
        st.session_state.tr_device = "auto"
    d, p, a, c = st.columns(4, vertical_alignment="bottom")
    d.selectbox("Device", devices, key="tr_device",
                format_func=lambda name: f"auto ({resolve_device('auto')})" if name == "auto" else name,
                help="auto picks a CUDA GPU when there is one, else the CPU. Only devices this machine has are "
                     "listed.")
    p.selectbox("Precision", PRECISIONS, key="tr_precision",
                help="auto: bf16 mixed precision on a GPU that supports it (about twice as fast), fp32 elsewhere. "
                     "bf16 on a CPU works but is usually slower. The weights always stay fp32.")
    number("tr_accum", container=a)
    c.checkbox("Compile (torch.compile)", key="tr_compile",
               help="Compiles the model before the first step. Pays off on a GPU over long runs; on a small CPU "
                    "it costs about half a minute and trains no faster.")


def configs() -> tuple[ModelConfig, TrainConfig]:
    s = st.session_state
    model = ModelConfig(vocab_size=int(s.tr_vocab), d_model=int(s.tr_d_model), n_heads=int(s.tr_heads),
                        n_layers=int(s.tr_layers), block_size=int(s.tr_block), dropout=float(s.tr_dropout),
                        causal=not s.tr_noncausal)
    steps = int(s.tr_steps) if s.tr_mode == "Steps" else None
    train = TrainConfig(batch_size=int(s.tr_batch), epochs=int(s.tr_epochs), max_steps=steps,
                        learning_rate=float(s.tr_lr), seed=int(s.tr_seed), eval_interval=25,
                        snapshots=TIMELINE_SNAPSHOTS, device=s.tr_device, precision=s.tr_precision,
                        compile=bool(s.tr_compile), grad_accum_steps=int(s.tr_accum))
    return model, train


def start_training(text: str, corpus_name: str, model_cfg: ModelConfig, train_cfg: TrainConfig,
                   base: state.LoadedModel | None) -> None:
    sessions = st.session_state.session_models
    metadata = {"corpus": corpus_name}
    try:
        # Refuse a device or precision this machine cannot run now, not from inside the worker thread.
        resolve_precision(train_cfg.precision, resolve_device(train_cfg.device))
        if base is None:
            model, tokenizer, dataset = prepare_training(text, model_cfg, train_cfg,
                                                         tokenizer_kind=st.session_state.tr_tokenizer)
        else:
            model, tokenizer, dataset = prepare_finetuning(text, base.model, base.tokenizer, train_cfg)
            metadata.update(base_model=base.name, previous_runs=lineage(base.meta))
        total = batch_plan(dataset.train.size(0), train_cfg).total_steps
        if total > MAX_STEPS:
            raise ConfigError(f"that is {total:,} steps; the playground trains at most {MAX_STEPS:,}. "
                              "Use fewer epochs or a larger batch.")
        # Evaluate ~40 times per run: enough points for the chart, little time spent evaluating.
        train_cfg = TrainConfig(**{**train_cfg.to_dict(), "eval_interval": max(10, total // 40)})
        job = TrainingJob(model, tokenizer, dataset, train_cfg, name=f"run-{sessions.runs + 1}",
                          metadata=metadata, owner=st.session_state.session_owner)
        job.start()
    except TrainingBusyError as err:
        st.warning(f"Training is busy: {err}.", icon=":material/hourglass_top:")
        return
    except CuteLLMError as err:
        st.error(str(err), icon=":material/error:")
        return
    sessions.next_run_name()
    st.session_state.train_job = job
    st.rerun()


# ---------------------------------------------------------------------------------------------------------------
# Live progress and results
# ---------------------------------------------------------------------------------------------------------------
def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def live_panel(job: TrainingJob) -> None:
    was_running = job.running

    # Every 2 s, at most 300 chart points: each refresh costs the server and the browser ~0.1-0.2 s of CPU that
    # training, using every core, has to give up (bench/README.md, "Training in the app": on 2 cores +22% wall time
    # at 1 s, +9% to +13% at 2 s).
    @st.fragment(run_every=LIVE_REFRESH_S if was_running else None)
    def panel() -> None:
        snap = job.snapshot()
        last = snap.latest
        st.progress(snap.progress, text=f"{job.name}: step {last.step if last else 0:,} of {snap.total_steps:,}"
                                        + (f" · about {_fmt_time(snap.eta_s)} left" if snap.running else ""))
        c = st.columns(5)
        c[0].metric("Step", f"{last.step:,}" if last else "0")
        c[1].metric("Train loss", f"{last.train_loss:.3f}" if last else "–")
        c[2].metric("Val loss", f"{snap.last_val_loss:.3f}" if snap.last_val_loss is not None else "–")
        c[3].metric("Tokens/s", f"{last.tokens_per_s:,.0f}" if last else "–")
        c[4].metric("Elapsed", _fmt_time(snap.elapsed_s))
        st.plotly_chart(loss_figure(snap.history, max_points=LIVE_CHART_POINTS), key="live_loss_chart",
                        config={"displayModeBar": False})
        if snap.running:
            st.button("Stop", icon=":material/stop:", on_click=job.stop, key="stop_training",
                      help="Stops at the next step and keeps the weights trained so far.")
        elif was_running:
            st.rerun()  # the run just ended: redraw the whole page (results, save, sidebar)

    panel()


def results(job: TrainingJob) -> None:
    snap = job.snapshot()
    if snap.status == "failed":
        st.error(f"Training failed: {snap.error}", icon=":material/error:")
        return
    if snap.status == "diverged":
        st.error(f"{snap.error}", icon=":material/warning:")
    elif snap.status == "stopped":
        st.info(f"Stopped after {job.result.steps:,} of {job.result.total_steps:,} steps "
                f"({job.stop_reason}); the weights trained so far are kept.", icon=":material/stop_circle:")
    else:
        st.success(f"Finished {job.result.steps:,} steps in {_fmt_time(job.result.wall_time_s)} on "
                   f"{job.result.device} ({job.result.precision}).", icon=":material/check_circle:")
    if not job.usable:
        return
    if not job.model.config.causal:
        st.warning("**Experiment: this model trained without the causal mask.** Each position could see the word "
                   "it had to predict, so the training loss fell very low — it was copying, not predicting. "
                   "Use it in Generate: with no future to peek at, its text falls apart. Real language models "
                   "are always causal.", icon=":material/science:")
    if job.metadata.get("base_model"):
        st.caption(f"Fine-tuned from **{job.metadata['base_model']}** on {job.metadata.get('corpus')}.")
    r = job.result
    if r and r.final_val_loss is not None:
        st.caption(f"Final loss: train **{r.final_train_loss:.3f}**, validation **{r.final_val_loss:.3f}**.")
    key = f"session:{job.name}"
    a, b, c = st.columns([1.2, 1, 1.6])
    with a:
        active = st.session_state.get("active_model") == key
        st.button("Use this model" if not active else "This model is active", type="primary",
                  icon=":material/check:", disabled=active, on_click=state.set_active, args=(key,),
                  help="Make it the active model for Generate, Fill the blanks and Explore.")
    with b:
        meta = job.checkpoint_metadata()
        st.download_button("Download .pth", data=checkpoint_bytes(job.model, job.tokenizer, meta),
                           file_name=f"{job.name}.pth", mime="application/octet-stream",
                           icon=":material/download:")
    with c:
        save_form(job)


def save_form(job: TrainingJob) -> None:
    with st.popover("Save to models/", icon=":material/save:"):
        st.text_input("Name", key="tr_save_name", max_chars=64,
                      help="Letters, digits, - and _ only. Saved as models/<name>.pth.")
        name = st.session_state.tr_save_name.strip()
        try:
            target, valid = checkpoint_path(state.models_dir(), name), True
        except CuteLLMError as err:
            target, valid = None, False
            if name:
                st.error(str(err))
        # The shipped model's name is reserved wherever models are saved: it can never be overwritten or shadowed.
        protected = valid and (name == state.SHIPPED_MODEL.stem or target.resolve() == state.SHIPPED_MODEL.resolve())
        if protected:
            st.error("That is the shipped model's name; it cannot be overwritten. Choose another name.")
        exists = valid and not protected and target.exists()
        if exists:
            st.checkbox(f"Replace the existing {name}.pth", key="tr_overwrite")
        can_save = valid and not protected and (not exists or st.session_state.tr_overwrite)
        if st.button("Save", disabled=not can_save, key="save_model"):
            try:
                save_checkpoint(target, job.model, job.tokenizer, job.checkpoint_metadata())
            except (CuteLLMError, OSError) as err:
                st.error(f"Could not save: {err}")
            else:
                st.session_state.tr_overwrite = False
                st.success(f"Saved as {target.name}; it is now in the sidebar's model list.")


# ---------------------------------------------------------------------------------------------------------------
# Page
# ---------------------------------------------------------------------------------------------------------------
st.title("Train")
st.caption("Choose a text and a model size, press Train, and watch the loss fall: the model is learning to predict "
           "each next token of your text.")

job = state.current_job()
running = job is not None and job.running
active = state.active_model()

st.radio("Start from", ["A new model", "The active model (fine-tune)"], key="tr_start", horizontal=True,
         help=f"A new model learns from scratch. Fine-tuning continues training the active model ({active.name}) "
              "on your text, keeping its tokenizer and shape.")
base = active if st.session_state.tr_start.startswith("The active") else None

with st.expander("1 · Corpus", expanded=not running, icon=":material/description:"):
    text, corpus_name = choose_corpus()
    windows = show_stats(text, base) if text else None
with st.expander("2 · Model and training settings", expanded=not running, icon=":material/tune:"):
    choose_settings(base)

config_error = None
try:
    model_cfg, train_cfg = configs()
except ConfigError as err:
    config_error = str(err)
    st.error(f"Fix this setting first: {err}", icon=":material/error:")

if training_in_progress() and not running:
    st.info("Another session is training on this server right now; you can train when it finishes.",
            icon=":material/hourglass_top:")
if st.button("Train", type="primary", icon=":material/play_arrow:",
             disabled=running or text is None or config_error is not None or not windows):
    start_training(text, corpus_name, model_cfg, train_cfg, base)

if job is not None:
    st.subheader(f"3 · {job.name}")
    live_panel(job)
    if not job.running:
        results(job)
