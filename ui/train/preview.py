"""The Train page's "what you are about to train" panel: size, work, memory and a time measured on this machine."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from cutellm import ConfigError, ModelConfig, TrainConfig
from cutellm.views.charts import architecture_figure
from cutellm.lab.estimates import RunPreview, StepTimer, run_preview
from cutellm.lab.jobs import training_in_progress

from ..text import duration

MEASURE_POLL_S = 1.0   # how often the panel looks for the background measurement while it runs


@st.cache_resource(show_spinner=False)
def step_timer() -> StepTimer:
    """One timer per server: a step time measured here holds for every session (it is this machine's)."""
    return StepTimer()


@st.cache_data(show_spinner=False, max_entries=64)
def _preview(model_cfg: ModelConfig, train_cfg: TrainConfig, windows: int) -> RunPreview:
    return run_preview(model_cfg, train_cfg, windows)


def _fmt_bytes(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def _time_text(preview: RunPreview, model_cfg: ModelConfig, train_cfg: TrainConfig) -> tuple[str, str, bool]:
    """(metric value, caption, still measuring)."""
    if training_in_progress():
        return "–", "A run is training on this server; the time is measured once it ends (timing now would be " \
                    "wrong and slow the run down).", True
    timer = step_timer()
    micro = preview.plan.micro_batch
    step_s = timer.seconds(model_cfg, train_cfg, micro)
    if step_s is None:
        error = timer.error(model_cfg, train_cfg, micro)
        if error:
            return "–", f"Could not time a step of this model here: {error}", False
        return "measuring…", "Training a few real steps of this model in the background to time them.", True
    total = preview.seconds(step_s, train_cfg.eval_batches)
    return (duration(max(1.0, total)),
            f"Measured here: {step_s * 1000:,.1f} ms per step × {preview.steps:,} steps, plus the evaluations.",
            False)


def preview_panel(model_cfg: ModelConfig, train_cfg: TrainConfig, windows: int) -> None:
    """Draw the panel for these settings on a corpus with `windows` training windows."""
    try:
        preview = _preview(model_cfg, replace(train_cfg, snapshots=0), windows)
    except ConfigError as err:
        st.error(str(err), icon=":material/error:")
        return

    # While the step time is being measured, the panel alone reruns every second; once it is known, one full rerun
    # stops the polling. Only a run of the fragment on its own may do that: a full run may be a click on Train.
    polling = (not training_in_progress() and step_timer().seconds(model_cfg, train_cfg, preview.plan.micro_batch)
               is None and step_timer().error(model_cfg, train_cfg, preview.plan.micro_batch) is None)

    @st.fragment(run_every=MEASURE_POLL_S if polling else None)
    def panel() -> None:
        value, caption, measuring = _time_text(preview, model_cfg, train_cfg)
        c = st.columns(5)
        c[0].metric("Parameters", f"{preview.total_params:,}",
                    help=f"Numbers the model learns, in a {model_cfg.block_design}. " +
                         ("The LM head reuses the token embedding, so it adds none." if model_cfg.tie_weights else
                          "The LM head has a matrix of its own (untied)."))
        c[1].metric("Tokens per step", f"{preview.tokens_per_step:,}",
                    help=f"{preview.plan.global_batch} windows × {model_cfg.block_size} tokens read by one "
                         "optimisation step.")
        c[2].metric("Steps", f"{preview.steps:,}",
                    help=f"{preview.plan.steps_per_epoch:,} per epoch; a validation loss every "
                         f"{preview.plan.eval_interval:,}.")
        c[3].metric("Memory (about)", _fmt_bytes(preview.memory_bytes),
                    help="Weights, gradients and AdamW's two moments (16 bytes per parameter), plus the activations "
                         "of one batch kept for the backward pass.")
        c[4].metric("Time (about)", value, help="Timed on this machine, not guessed: a few real training steps "
                                                  "of this exact model, remembered per shape.")
        total = max(1, preview.total_params)
        parts = [("embeddings", preview.embedding_params), ("attention", preview.attention_params),
                 ("MLP", preview.mlp_params)]
        if preview.other_params:
            parts.append(("final norm" if model_cfg.tie_weights else "final norm + LM head", preview.other_params))
        st.caption(f"{model_cfg.block_design}: " + " · ".join(f"{name} **{n:,}** ({n / total:.0%})" for name, n in parts)
                   + f" — {caption}")
        if polling and not measuring and not st.session_state.get("preview_full_run"):
            st.rerun()   # the measurement arrived: redraw the page without polling

    st.session_state.preview_full_run = True
    try:
        panel()
    finally:
        st.session_state.preview_full_run = False
    # Drawn only while open: a closed expander still renders its content, and this chart was redrawn, unseen, at
    # every change of a setting (a third of what the page allocated in the browser while being set up).
    picture = st.expander("Architecture picture", icon=":material/account_tree:", key="tr_architecture_open",
                          on_change="rerun")
    if picture.open:
        with picture:
            st.plotly_chart(architecture_figure(preview.architecture), key="preview_architecture",
                            config={"displayModeBar": False})
