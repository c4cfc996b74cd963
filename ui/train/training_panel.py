"""The Train page's run panel: live progress while a job trains (chart, reading, samples, pause / resume / stop),
then its results (use, download, save)."""

from __future__ import annotations

import streamlit as st

from cutellm import CuteLLMError
from cutellm.checkpoint import checkpoint_bytes, save_checkpoint
from cutellm.lab.jobs import LEFT, TrainingJob
from cutellm.lab.model_files import save_path

from .. import state
from ..text import duration
from .live_view import DONE_BUTTON_KEY, STYLE, live_url, view_html

QUEUE_POLL_S = 1.0   # how often a queued run's panel looks whether it has started


def live_panel(job: TrainingJob) -> None:
    """The job's live view (ui/live_view.py: it keeps itself up to date) under Pause / Resume and Stop."""
    st.html(STYLE.replace("PRIMARY", st.get_option("theme.primaryColor") or "#ff4b4b"))
    with st.container(key="live_panel"):
        if job.running:
            controls(job)
        st.html(view_html(job, live_url(job, st.get_option("server.baseUrlPath"))),
                unsafe_allow_javascript=job.running)
    if job.running:
        # Clicked by the view's script when the job ends: a plain rerun of the page, which then shows the results.
        st.button("Show the results", key=DONE_BUTTON_KEY)


@st.fragment
def controls(job: TrainingJob) -> None:
    """A fragment: a click reruns just the buttons, not the page."""
    a, b, _ = st.columns([1, 1, 5])
    if job.paused:
        a.button("Resume", icon=":material/play_arrow:", on_click=job.resume, key="resume_training",
                 type="primary", help="Continues the same run exactly where it was.")
    else:
        a.button("Pause", icon=":material/pause:", on_click=job.pause, key="pause_training",
                 help="Holds the run between two steps; nothing is lost (weights, optimizer, schedule, batch "
                      "order). Look around, then resume.")
    b.button("Stop", icon=":material/stop:", on_click=job.stop, key="stop_training",
             help="Ends the run at the next step and keeps the weights trained so far.")


def queued_panel(job: TrainingJob) -> None:
    """A run waiting for a training slot: its place, the estimated start, and a way out. The fragment looks again
    every second and reruns the page once the run has started. The button is outside it: inside, it was redrawn by
    every one of those reruns, and a click that met one was once lost (a CI run of tests/e2e/test_classroom.py)."""
    @st.fragment(run_every=QUEUE_POLL_S)
    def waiting() -> None:
        snap = job.snapshot()
        if not snap.queued:
            st.rerun()
        wait = (f"in about {duration(snap.starts_in_s)}" if snap.starts_in_s is not None else
                "once the runs ahead have been measured")
        st.info(f"**{job.name}** waits for a training slot: **number {snap.place}** in the queue, estimated start "
                f"{wait} (from the runs ahead). It starts by itself; keep this tab open, or it leaves the queue.",
                icon=":material/hourglass_top:")

    waiting()
    st.button("Leave the queue", icon=":material/logout:", on_click=job.leave, key="tr_leave_queue")


def results(job: TrainingJob) -> None:
    snap = job.snapshot()
    if snap.status == LEFT:
        st.info(f"{job.name} {job.stop_reason}; nothing was trained.", icon=":material/logout:")
        return
    if snap.status == "failed":
        st.error(f"Training failed: {snap.error}", icon=":material/error:")
        if not job.usable:
            return
    elif snap.status == "diverged":
        st.error(f"{snap.error}", icon=":material/warning:")
    elif snap.status == "stopped":
        st.info(f"Stopped after {job.result.steps:,} of {job.result.total_steps:,} steps "
                f"({job.stop_reason}); the weights trained so far are kept.", icon=":material/stop_circle:")
        if job.can_continue and st.button("Continue training", icon=":material/play_arrow:", key="tr_continue",
                                          help="Go on from this step to the end, exactly as if the run had never "
                                               "stopped. This stopped model stays usable meanwhile."):
            continue_run(job)
    else:
        st.success(f"Finished {job.result.steps:,} steps in {duration(job.result.wall_time_s)} on "
                   f"{job.result.device} ({job.result.precision}).", icon=":material/check_circle:")
    if not job.usable:
        return
    if not job.model.config.causal:
        st.warning("**Experiment: this model trained without the causal mask.** Each position could see the word "
                   "it had to predict, so the training loss fell very low — it was copying, not predicting. "
                   "Use it in Generate: with no future to peek at, its text falls apart. Real language models "
                   "are always causal.", icon=":material/science:")
    meta = job.run.metadata
    if meta.get("base_model"):
        st.caption(f"Fine-tuned from **{meta['base_model']}** on {meta.get('corpus')}.")
    r = job.result
    if r and r.final_val_loss is not None:
        st.caption(f"Final loss: train **{r.final_train_loss:.3f}**, validation **{r.final_val_loss:.3f}**.")
    saved = st.session_state.get("tr_saved", {}).get(job.name)
    if saved:
        st.caption(f"Saved as `models/{saved}`.")
    else:
        st.warning("**Not saved yet.** This model lives in this browser tab only: closing or reloading the tab "
                   "loses it. Save it to models/ or download the .pth below.", icon=":material/save:")
    key = state.session_key(job.name)
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


def continue_run(job: TrainingJob) -> None:
    try:
        st.session_state.train_job = job.continued(owner=st.session_state.session_owner).start()
    except CuteLLMError as err:   # another run is training on this server, or nothing is left to continue
        st.warning(str(err), icon=":material/hourglass_top:")
        return
    st.rerun()


def save_form(job: TrainingJob) -> None:
    with st.popover("Save to models/", icon=":material/save:"):
        st.text_input("Name", key="tr_save_name", max_chars=64,
                      help="Letters, digits, - and _ only. Saved as models/<name>.pth.")
        name = st.session_state.tr_save_name.strip()
        target = None
        try:
            target = save_path(state.models_dir(), name)
        except CuteLLMError as err:
            if name:
                st.error(str(err))
        exists = target is not None and target.exists()
        if exists:
            st.checkbox(f"Replace the existing {name}.pth", key="tr_overwrite")
        can_save = target is not None and (not exists or st.session_state.tr_overwrite)
        if st.button("Save", disabled=not can_save, key="save_model"):
            try:
                save_checkpoint(target, job.model, job.tokenizer, job.checkpoint_metadata())
            except (CuteLLMError, OSError) as err:
                st.error(f"Could not save: {err}")
            else:
                st.session_state.tr_overwrite = False
                st.session_state.setdefault("tr_saved", {})[job.name] = target.name
                st.success(f"Saved as {target.name}; it is now in the sidebar's model list.")
