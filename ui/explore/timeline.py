"""Explore's training timeline: for a model trained in this tab, the model as it was at a chosen step of its run."""

from __future__ import annotations

import streamlit as st

from cutellm import CuteLLM, CuteLLMError, generate_ids
from cutellm.inference import encode_context

from .. import state
from ..text import generated_html


def timeline_model(active: state.LoadedModel, text: str) -> CuteLLM:
    """Draw the timeline slider (and what the model writes after `text` at that step); return the model at the
    chosen step: the active model itself when it has no timeline."""
    if not active.snapshots:
        return active.model
    steps = [snap.step for snap in active.snapshots]
    if st.session_state.get("ex_step_model") != active.key or st.session_state.get("ex_step") not in steps:
        st.session_state.ex_step, st.session_state.ex_step_model = steps[-1], active.key
    with st.container(border=True):
        st.select_slider("Training timeline: step", options=steps, key="ex_step",
                         format_func=lambda step: f"{step:,}" + (" (untrained)" if step == 0 else ""),
                         help="Weights saved along this run. Every picture below (and the sample here) shows the "
                              "model as it was after that many steps; the embedding map keeps the final run's "
                              "axes so you can watch words move into place.")
        snap = next(s for s in active.snapshots if s.step == st.session_state.ex_step)
        model = snap.to_model(active.model.config)
        try:
            ids = encode_context(model, active.tokenizer, text)
            st.html(generated_html(active.tokenizer, text, generate_ids(model, ids, 12)))
            st.caption(f"What the model writes after your text at step {snap.step:,} (greedy).")
        except CuteLLMError as err:
            st.caption(f"No sample: {err}")
    return model
