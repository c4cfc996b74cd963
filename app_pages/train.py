"""Train: pick a corpus and a model size, see what it will be, train in the background while the chart, a reading of
the curve and live samples update, pause / resume / stop, then save."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from cutellm import ConfigError, CuteLLMError, ModelConfig, TrainConfig, load_settings
from cutellm.config import LIMITS
from cutellm.devices import PRECISIONS, available_devices, resolve_device, resolve_precision
from cutellm.errors import TrainingBusyError
from cutellm.lab.jobs import TrainingJob, training_in_progress
from cutellm.lab.runs import MAX_INTERACTIVE_STEPS, prepare_run
from cutellm.lab.samples import DEFAULT_BLANK, DEFAULT_PROMPT, SampleSpec
from cutellm.settings import Settings
from cutellm.tokenizer import TOKENIZER_KINDS
from ui import state
from ui.train.corpus import choose_corpus, show_stats
from ui.train.preview import preview_panel
from ui.train.training_panel import live_panel, results

TOKENIZER_LABELS = {"word": "word", "char": "char", "bpe": "BPE (subwords)"}
TOKENIZER_HELP = ("**word**: one token per word or punctuation mark, lower-cased; a word outside the vocabulary "
                  "becomes `<unk>`, so the model can never say it. **char**: one token per character: tiny "
                  "vocabulary, long sequences. **BPE** (byte-pair encoding, what real language models use): starts "
                  "from the 256 byte values and merges the most frequent pairs into subwords (`·the`, `ing`) until "
                  "the vocabulary is full. Any text is made of bytes, so BPE has no `<unk>`: a new word is spelled "
                  "from pieces.")
TIMELINE_SNAPSHOTS = 8  # weight copies kept per run for Explore's training timeline (capped at 64 MB)


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
    return dict(tr_tokenizer=SETTINGS.tokenizer, tr_vocab=m.vocab_size, tr_d_model=m.d_model, tr_heads=m.n_heads,
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
               "default": "the shipped model's recipe: about 25 seconds on 2 CPU cores",
               "bigger": "4 layers, wider, longer context: several minutes"}


def apply_preset() -> None:
    for key, value in PRESETS[st.session_state.tr_preset].items():
        st.session_state[key] = value


state.keep({"tr_preset": "default", **PRESETS["default"], "tr_source": "Bundled", "tr_bundled": "training_data.txt",
            "tr_paste": "", "tr_upload_text": None, "tr_upload_name": None, "tr_save_name": "", "tr_overwrite": False,
            "tr_start": "A new model", "tr_noncausal": False,
            "tr_sample_prompt": DEFAULT_PROMPT, "tr_sample_blank": DEFAULT_BLANK,
            # Where and how to compute: not part of the presets (they describe the model, not the machine).
            "tr_device": SETTINGS.train.device if SETTINGS.train.device in available_devices() else "auto",
            "tr_precision": SETTINGS.train.precision, "tr_compile": SETTINGS.train.compile,
            "tr_accum": SETTINGS.train.grad_accum_steps})


# ---------------------------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------------------------
# widget key -> (label, the setting it fills, the playground's top value or None for the core's, step, help). The
# valid range comes from cutellm.config.LIMITS; a top caps the open-ended ones for a 2-core playground.
NUMBERS = {
    "tr_vocab": ("Vocabulary size", "vocab_size", 20_000, 100,
                 "Word: keep the most frequent words; the rest become <unk>. BPE: the 256 byte values plus merges "
                 "learned from the corpus, so at least 260."),
    "tr_block": ("Block size (context)", "block_size", 256, 4, "How many tokens the model reads at once."),
    "tr_d_model": ("d_model (width)", "d_model", 512, 16,
                   "Size of each token's vector. Must be divisible by the number of heads."),
    "tr_heads": ("Attention heads", "n_heads", 16, 1, "Parallel attention patterns per layer."),
    "tr_layers": ("Layers", "n_layers", 12, 1, "Transformer blocks stacked."),
    "tr_dropout": ("Dropout", "dropout", None, 0.05,
                   "Randomly zeroes activations while training, against overfitting."),
    "tr_batch": ("Batch size", "batch_size", 512, 4, "Windows per batch; one optimisation step reads batch size × "
                 "gradient accumulation windows."),
    "tr_epochs": ("Epochs", "epochs", 200, 1, "Passes over the whole corpus."),
    "tr_steps": ("Steps", "max_steps", MAX_INTERACTIVE_STEPS, 100, "Optimisation steps."),
    "tr_lr": ("Learning rate", "learning_rate", None, 1e-3,
              "Peak step size (AdamW, warmup then cosine decay). 1e-3 to 5e-3 suits small models; far higher "
              "values make training diverge."),
    "tr_seed": ("Seed", "seed", None, 1, "Same seed + same settings = same model."),
    "tr_accum": ("Gradient accumulation", "grad_accum_steps", 64, 1,
                 "Add up the gradients of this many batches before each optimisation step: the step sees "
                 "batch size × this many windows, with the memory of one batch."),
}


def number(key: str, container=st, **kwargs) -> None:
    label, setting, top, step, help_text = NUMBERS[key]
    low, high = LIMITS[setting]
    high = top if high is None else high if top is None else min(top, high)
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
            st.radio("Tokenizer", list(TOKENIZER_KINDS), key="tr_tokenizer", horizontal=True,
                     format_func=TOKENIZER_LABELS.__getitem__, help=TOKENIZER_HELP)
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
    choose_samples()


def choose_samples() -> None:
    """What the model is asked at each evaluation while it trains (shown under the chart)."""
    st.markdown("**Live samples**")
    p, b = st.columns(2)
    p.text_input("Prompt to continue", key="tr_sample_prompt", max_chars=200,
                 help="At each evaluation the model continues this prompt greedily (12 tokens), so you watch it go "
                      "from noise to sentences.")
    b.text_input("Phrase with a blank", key="tr_sample_blank", max_chars=200,
                 help="At each evaluation the model fills the ___ with the word it finds most likely.")


def sample_spec() -> SampleSpec:
    s = st.session_state
    return SampleSpec(prompt=s.tr_sample_prompt.strip() or DEFAULT_PROMPT,
                      blank=s.tr_sample_blank.strip() or DEFAULT_BLANK)


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
                        learning_rate=float(s.tr_lr), seed=int(s.tr_seed),
                        snapshots=TIMELINE_SNAPSHOTS, device=s.tr_device, precision=s.tr_precision,
                        compile=bool(s.tr_compile), grad_accum_steps=int(s.tr_accum))
    return model, train


def start_training(text: str, corpus_name: str, model_cfg: ModelConfig, train_cfg: TrainConfig,
                   base: state.LoadedModel | None) -> None:
    sessions = st.session_state.session_models
    try:
        # Refuse a device or precision this machine cannot run now, not from inside the worker thread.
        resolve_precision(train_cfg.precision, resolve_device(train_cfg.device))
        run = prepare_run(text, corpus_name, model_cfg, train_cfg, name=sessions.next_run_name(),
                          tokenizer_kind=st.session_state.tr_tokenizer, base=base.as_base() if base else None,
                          max_steps=MAX_INTERACTIVE_STEPS)
        job = TrainingJob(run, owner=st.session_state.session_owner, samples=sample_spec()).start()
    except TrainingBusyError as err:
        st.warning(f"Training is busy: {err}.", icon=":material/hourglass_top:")
        return
    except CuteLLMError as err:
        st.error(str(err), icon=":material/error:")
        return
    st.session_state.train_job = job
    st.rerun()


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
    ss = st.session_state
    corpus = show_stats(text, base, kind=ss.tr_tokenizer, vocab=int(ss.tr_vocab), block=int(ss.tr_block),
                        batch=int(ss.tr_batch), accum=int(ss.tr_accum)) if text else None
    windows, vocab_size = corpus or (0, 0)
with st.expander("2 · Model and training settings", expanded=not running, icon=":material/tune:"):
    choose_settings(base)

config_error = None
try:
    model_cfg, train_cfg = configs()
except ConfigError as err:
    config_error = str(err)
    st.error(f"Fix this setting first: {err}", icon=":material/error:")

if config_error is None and windows and not running:
    with st.expander("What you are about to train", expanded=True, icon=":material/visibility:"):
        shape = base.model.config if base is not None else replace(model_cfg, vocab_size=vocab_size)
        preview_panel(shape, train_cfg, windows)

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
