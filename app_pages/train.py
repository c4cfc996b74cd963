"""Train: pick a corpus and a model size, see what it will be, train in the background while the chart, a reading of
the curve and live samples update, pause / resume / stop, then save."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from cutellm import ConfigError, CuteLLMError, ModelConfig, TrainConfig, load_settings
from cutellm.devices import available_devices, resolve_device, resolve_precision
from cutellm.errors import TrainingBusyError
from cutellm.lab.jobs import LEFT, QUEUE, TrainingJob
from cutellm.lab.runs import prepare_run
from cutellm.chat import SFT_RECIPE
from cutellm.lab.samples import CHAT_QUESTIONS, DEFAULT_BLANK, DEFAULT_PROMPT, SampleSpec
from cutellm.options import MAX_INTERACTIVE_STEPS
from cutellm.presets import presets
from cutellm.settings import Settings
from cutellm.tasks import TASKS, Task, for_task
from ui import share, state
from ui.text import glossary_link
from ui.train import settings_form as form
from ui.train.conversations import choose_conversations, show_conversations
from ui.train.corpus import TOY_TASK, bundled_corpora, choose_corpus, chosen_task, corpus_tokenizer, show_stats
from ui.train.preview import preview_panel
from ui.train.training_panel import live_panel, queued_panel, results


def _settings() -> Settings:
    """The CLI's defaults, `.env` included, so `make run` and the app agree."""
    try:
        return load_settings(state.ROOT / ".env")
    except ConfigError as err:
        st.warning(f"Ignoring .env: {err}")
        return load_settings(None, environ={})


SETTINGS = _settings()
PRESETS = presets(SETTINGS)

state.keep({"tr_preset": "default", **form.kept_defaults(SETTINGS, PRESETS["default"]), "tr_source": "Bundled",
            "tr_bundled": "training_data.txt", "tr_task": "copy", "tr_paste": "", "tr_upload_text": None,
            "tr_upload_name": None,
            "tr_save_name": "", "tr_overwrite": False, "tr_start": "A new model", "tr_noncausal": False,
            "tr_sample_prompt": DEFAULT_PROMPT, "tr_sample_blank": DEFAULT_BLANK, "tr_chat_source": "Bundled"})

START_CHOICES = ["A new model", "The active model (fine-tune)", "The active model (instruction-tune it)"]


# ---------------------------------------------------------------------------------------------------------------
# Settings (each widget's label, range and help come from cutellm.options, through ui.train.settings_form)
# ---------------------------------------------------------------------------------------------------------------
def choose_settings(base: state.LoadedModel | None, task: Task | None, chat: bool = False) -> None:
    if chat:
        st.caption("The training settings start from the instruction-tuning recipe, the one `python -m cutellm sft` "
                   "uses; change any of them.")
    elif task is None:
        st.selectbox("Preset", list(PRESETS), key="tr_preset", on_change=form.apply_preset, args=(PRESETS,),
                     format_func=lambda p: f"{p} — {PRESETS[p].help}",
                     help="Fills in every setting below; change any of them afterwards.")
    else:
        st.caption(f"The settings start from the {task.name} task's preset, the one `python -m cutellm train --task "
                   f"{task.name}` uses; change any of them.")
    a, b, c = st.columns(3)
    if base is not None:
        cfg = base.model.config
        with a:
            st.markdown("**Tokens** :material/lock:")
            st.caption(f"{base.tokenizer.kind} tokenizer, {base.tokenizer.vocab_size:,} tokens, context "
                       f"{cfg.block_size}")
        with b:
            st.markdown("**Model** :material/lock:")
            st.caption(f"{cfg.n_layers} layers × {cfg.n_heads} heads, d_model {cfg.d_model}, dropout {cfg.dropout}; "
                       f"{cfg.block_design}")
        st.info(f"{'Instruction tuning' if chat else 'Fine-tuning'} continues training **{base.name}**, so its "
                "tokenizer and shape stay as they are: the learned weights only fit that exact vocabulary and size"
                + (" (tuning adds the three chat tokens)." if chat else "."), icon=":material/lock:")
    else:
        with a:
            st.markdown("**Tokens**")
            form.draw("tokenizer", disabled=task is not None,
                      help_suffix=" A toy task's problems are read one character at a time." if task else "")
            form.draw("vocab_size", disabled=task is not None or st.session_state.tr_tokenizer == "char")
            form.draw("block_size")
        with b:
            st.markdown("**Model**")
            for name in ("d_model", "n_heads", "n_layers", "dropout"):
                form.draw(name)
            with st.popover("Block design", icon=":material/view_agenda:", width="stretch",
                            help="GPT-2's block by default; the Llama-style preset switches all three parts."):
                for name in ("positions", "norm", "mlp", "tie_weights"):
                    form.draw(name)
            st.checkbox("Experiment: no causal mask", key="tr_noncausal",
                        help="Lets every position see the words after it while training. The loss falls very low "
                             "— because the model reads the answer — and generation gets poor, since at generation "
                             "time there is no future to read. Off for every real model.")
    with c:
        st.markdown("**Training**")
        form.draw("batch_size")
        st.radio("Train for", list(form.TRAIN_FOR.values()), key="tr_mode", horizontal=True,
                 help="Epochs: passes over the whole corpus. Steps: an exact number of optimisation steps.")
        form.draw("epochs" if st.session_state.tr_mode == "Epochs" else "max_steps")
        form.draw("learning_rate")
        form.draw("seed")
    choose_hardware()
    if chat:
        st.caption("**Live samples**: at each evaluation the model answers two questions "
                   f"({', '.join(repr(q) for q in CHAT_QUESTIONS)}), so you watch it learn to answer and to stop.")
    else:
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
    form.draw("device", d, options=devices,
              format_func=lambda name: f"auto ({resolve_device('auto')})" if name == "auto" else name)
    try:   # what auto means on this machine, for the device chosen
        auto = f"auto ({resolve_precision('auto', resolve_device(st.session_state.tr_device))})"
    except ConfigError:   # a device gone since the list was read: Train says so
        auto = "auto"
    form.draw("precision", p, format_func=lambda name: auto if name == "auto" else name)
    form.draw("grad_accum_steps", a)
    form.draw("compile", c)


def tokenizer_kind(task: Task | None) -> str:
    return "char" if task is not None else st.session_state.tr_tokenizer


def start_training(text: str, corpus_name: str, model_cfg: ModelConfig, train_cfg: TrainConfig,
                   base: state.LoadedModel | None, task: Task | None, chat: bool = False) -> None:
    sessions = st.session_state.session_models
    try:
        # Refuse a device or precision this machine cannot run now, not from inside the worker thread.
        resolve_precision(train_cfg.precision, resolve_device(train_cfg.device))
        kind = tokenizer_kind(task)
        # The tokenizer the corpus statistics built (cached): the corpus is not tokenized afresh for the run.
        tokenizer = None if base else corpus_tokenizer(text, kind, model_cfg.vocab_size)
        if chat:   # the recipe's settings that have no widget (its warmup) as the CLI's sft has them
            train_cfg = replace(train_cfg, **form.without_widgets(SFT_RECIPE))
        run = prepare_run(text, corpus_name, model_cfg, train_cfg, name=sessions.next_run_name(),
                          tokenizer_kind=kind, tokenizer=tokenizer, base=base.as_base() if base else None,
                          max_steps=MAX_INTERACTIVE_STEPS, task=task.name if task else None, chat=chat)
        job = TrainingJob(run, owner=st.session_state.session_owner, samples=sample_spec(),
                          worker=state.training_worker()).start()
    except TrainingBusyError as err:
        st.warning(f"Not now: {err}.", icon=":material/hourglass_top:")
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
share.sync([share.choice("source", "tr_source", {"bundled": "Bundled", "upload": "Upload", "paste": "Paste",
                                                 "task": TOY_TASK}),
            share.choice("corpus", "tr_bundled", {name: name for name in bundled_corpora()}),
            share.choice("task", "tr_task", {name: name for name in TASKS}),
            share.choice("preset", "tr_preset", {name: name for name in PRESETS}),
            share.choice("train_for", "tr_mode", {"epochs": "Epochs", "steps": "Steps"}),
            *share.option_params(form.page_options("settings") + form.page_options("model")
                                 + form.page_options("train"))])

job = state.current_job()
running = job is not None and (job.running or job.queued)   # a queued run counts: one run per tab
active = state.active_model()

if st.session_state.tr_start not in START_CHOICES:
    st.session_state.tr_start = START_CHOICES[0]
st.radio("Start from", START_CHOICES, key="tr_start", horizontal=True, on_change=form.apply_sft_recipe,
         args=(START_CHOICES[2],),
         help=f"A new model learns from scratch. Fine-tuning continues training the active model ({active.name}) "
              "on your text, keeping its tokenizer and shape. Instruction tuning teaches it to answer: it learns "
              f"from conversations, only the answers counted. {glossary_link('instruction tuning')}")
base = active if st.session_state.tr_start.startswith("The active") else None
chat = st.session_state.tr_start == START_CHOICES[2]

if chat:
    with st.expander("1 · Conversations", expanded=not running, icon=":material/forum:"):
        text, corpus_name = choose_conversations()
        windows = show_conversations(text, corpus_name, base) if text else 0
        task, vocab_size = None, active.tokenizer.vocab_size
        if windows is None:
            text, windows = None, 0
else:
    with st.expander("1 · Corpus", expanded=not running, icon=":material/description:"):
        text, corpus_name = choose_corpus()
        task = chosen_task()
        if task is not None and base is not None:
            st.warning("A toy task trains a new model: its tokens are the task's characters, which the active "
                       "model's vocabulary does not hold. Choose **A new model** above.", icon=":material/lock:")
            text = None
        ss = st.session_state
        corpus = show_stats(text, base, kind=tokenizer_kind(task), vocab=int(ss.tr_vocab), block=int(ss.tr_block),
                            batch=int(ss.tr_batch), accum=int(ss.tr_accum)) if text else None
        windows, vocab_size = corpus or (0, 0)
with st.expander("2 · Model and training settings", expanded=not running, icon=":material/tune:"):
    choose_settings(base, task, chat)

config_error = None
try:
    model_cfg, train_cfg = form.configs()
    if task is not None:
        model_cfg, train_cfg = for_task(task, model_cfg, train_cfg)
except ConfigError as err:
    config_error = str(err)
    st.error(f"Fix this setting first: {err}", icon=":material/error:")

if config_error is None and windows and not running:
    with st.expander("What you are about to train", expanded=True, icon=":material/visibility:"):
        shape = base.model.config if base is not None else replace(model_cfg, vocab_size=vocab_size)
        preview_panel(shape, train_cfg, windows)

if QUEUE.running_count() >= QUEUE.slots and not running:
    st.info(f"Every training slot of this server is in use ({QUEUE.slots} at a time): press Train to join the "
            "queue; your run starts by itself when a slot frees up.", icon=":material/hourglass_top:")
if st.button("Train", type="primary", icon=":material/play_arrow:",
             disabled=running or text is None or config_error is not None or not windows):
    start_training(text, corpus_name, model_cfg, train_cfg, base, task, chat)

if job is not None:
    st.subheader(f"3 · {job.name}")
    if job.queued:
        queued_panel(job)
    else:
        if job.snapshot().status != LEFT:   # a run that left the queue has no progress to show
            live_panel(job)
        if not job.running:
            results(job)
