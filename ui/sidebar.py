"""The sidebar every page shares: which model is active, what it is, and whether a training run is going on."""

from __future__ import annotations

import streamlit as st

from cutellm import resolve_device
from cutellm.lab.jobs import training_in_progress

from . import state
from .models_panel import models_panel


def _fmt_loss(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def render_sidebar() -> state.LoadedModel:
    active = state.resolve_active_model()
    choices = state.model_choices()
    with st.sidebar:
        st.selectbox("Active model", options=list(choices), format_func=choices.__getitem__, key="active_model",
                     help="The model that Generate, Fill the blanks and Explore use. Models you save appear here; "
                          "models trained in this tab appear as '(this session)', files you upload as "
                          "'(uploaded)'.")
        if st.session_state.get("model_error"):
            st.error(st.session_state.pop("model_error"), icon=":material/error:")
        meta = active.meta
        cfg = active.model.config
        st.caption(
            f"**{active.model.num_parameters():,}** parameters · {_plural(cfg.n_layers, 'layer')} · "
            f"{_plural(cfg.n_heads, 'head')} · "
            f"d_model {cfg.d_model} · context {cfg.block_size} · {active.tokenizer.kind} vocabulary of "
            f"{active.tokenizer.vocab_size:,}" + ("" if cfg.block_design == "GPT-2 block" else f" · {cfg.block_design}"))
        corpus = meta.get("corpus") or "unknown corpus"
        st.caption(f"Trained on `{corpus}` · val loss **{_fmt_loss(meta.get('final_val_loss'))}** · "
                   f"{meta.get('steps', '?')} steps")
        job = state.current_job()
        if job is not None and job.queued:
            place = job.snapshot().place
            st.info(f"**{job.name}** waits for a training slot (number {place} in the queue); the Train page shows "
                    "it.", icon=":material/hourglass_top:")
        elif job is not None and job.running:
            job.snapshot()  # tells the job someone is still around (see TrainingJob.idle_timeout_s)
            doing = "is paused" if job.paused else "is training in the background"
            st.info(f"**{job.name}** {doing}; its progress is on the Train page.", icon=":material/model_training:")
        elif training_in_progress():
            st.caption(":material/hourglass_top: Another session is training on this server.")
        notice = st.session_state.pop(state.MEMORY_NOTICE, None)
        if notice:
            st.warning(notice, icon=":material/memory:")
        models_panel()
        st.caption(f"Device: `{resolve_device('auto')}` · [Glossary: every term in one line](learn?term=)")
    return active
