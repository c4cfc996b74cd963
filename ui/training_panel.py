"""The Train page's run panel: live progress while a job trains (chart, reading, samples, pause / resume / stop),
then its results (use, download, save)."""

from __future__ import annotations

import html

import streamlit as st

from cutellm import CuteLLMError
from cutellm.charts import live_loss_chart
from cutellm.curve import perplexity
from cutellm.checkpoint import checkpoint_bytes, save_checkpoint
from cutellm.jobs import TrainingJob
from cutellm.model_files import save_path

from . import state
from .run_reading import live_samples, reading
from .text import duration

LIVE_REFRESH_S = 2.0
LIVE_CHART_POINTS = 300
# The panel redraws itself every 2 s, so nothing in it needs to animate, and CSS animations cost the browser more
# than the redraw itself (bench/README.md, "Speed, round five"): while any script runs, Streamlit marks the elements
# it may replace as stale and gives each an opacity transition (423 compositor animations in 20 s of training), and
# its progress bar animates at every update. The progress bar and the six figures are one HTML element, not seven
# Streamlit elements: st.progress and st.metric cost the browser ~3x the CPU of the same figures as plain HTML at
# each refresh (React and emotion styles for each).
LIVE_PANEL_STYLE = """<style>
.st-key-live_panel .stElementContainer { opacity: 1 !important; }
.st-key-live_panel, .st-key-live_panel * { transition: none !important; animation: none !important; }
.live-stats .bar { height: 0.5rem; border-radius: 0.25rem; background: rgba(128, 128, 128, 0.2);
                   margin: 0.3rem 0 1rem; overflow: hidden; }
.live-stats .bar > div { height: 100%; background: PRIMARY; }
.live-stats .cells { display: grid; grid-template-columns: repeat(6, minmax(0, 1fr)); gap: 1rem; }
@media (max-width: 640px) { .live-stats .cells { grid-template-columns: repeat(2, minmax(0, 1fr)); } }
.live-stat .label { font-size: 0.875rem; }
.live-stat .label[title] { text-decoration: underline dotted; cursor: help; }
.live-stat .value { font-size: 2.25rem; line-height: 1.3; white-space: nowrap; }
</style>"""


def stats_html(heading: str, progress: float, stats: list[tuple[str, str, str | None]]) -> str:
    """The live panel's progress bar under `heading`, then one cell per (label, value, tooltip or None)."""
    def cell(label: str, value: str, tip: str | None) -> str:
        title = f' title="{html.escape(tip)}"' if tip else ""
        return (f'<div class="live-stat" data-label="{html.escape(label)}"><div class="label"{title}>'
                f'{html.escape(label)}</div><div class="value">{html.escape(value)}</div></div>')

    cells = "".join(cell(*stat) for stat in stats)
    return (f'<div class="live-stats"><div class="heading">{html.escape(heading)}</div>'
            f'<div class="bar" role="progressbar" aria-valuenow="{100 * progress:.0f}" aria-valuemin="0" '
            f'aria-valuemax="100"><div style="width: {100 * progress:.1f}%"></div></div>'
            f'<div class="cells">{cells}</div></div>')


def live_panel(job: TrainingJob) -> None:
    was_running = job.running

    # Every 2 s, at most 300 chart points: each refresh costs the server and the browser ~0.1-0.2 s of CPU that
    # training, using every core, has to give up (bench/README.md, "Training in the app": on 2 cores +22% wall time
    # at 1 s, +9% to +13% at 2 s). The chart is Vega-Lite with a constant spec, so a refresh updates it in place
    # (a Plotly chart would be mounted anew each time: see charts.live_loss_chart).
    @st.fragment(run_every=LIVE_REFRESH_S if was_running else None)
    def panel() -> None:
        with st.container(key="live_panel"):
            contents()

    def contents() -> None:
        snap = job.snapshot()
        last = snap.latest
        where = ("paused" if snap.paused else f"about {duration(snap.eta_s)} left") if snap.running else ""
        heading = (f"{job.name}: step {last.step if last else 0:,} of {snap.total_steps:,}"
                   + (f" · {where}" if where else ""))
        if snap.running:
            controls(snap.paused)
        val = snap.last_val_loss
        st.html(stats_html(heading, snap.progress, [
            ("Step", f"{last.step:,}" if last else "0", None),
            ("Train loss", f"{last.train_loss:.3f}" if last else "–", None),
            ("Val loss", f"{val:.3f}" if val is not None else "–", None),
            ("Val perplexity", f"{perplexity(val):,.1f}" if val is not None else "–",
             "e^loss: as unsure as choosing among this many equally likely tokens."),
            ("Tokens/s", f"{last.tokens_per_s:,.0f}" if last else "–", None),
            ("Elapsed", duration(snap.elapsed_s), "Training time; pauses are not counted.")]))
        spec, rows = live_loss_chart(snap.history, job.baselines, max_points=LIVE_CHART_POINTS)
        st.vega_lite_chart(rows, spec, width="stretch")
        reading(snap, job.baselines)
        live_samples(snap)
        if not snap.running and was_running:
            st.rerun()  # the run just ended: redraw the whole page (results, save, sidebar)

    def controls(paused: bool) -> None:
        a, b, _ = st.columns([1, 1, 5])
        if paused:
            a.button("Resume", icon=":material/play_arrow:", on_click=job.resume, key="resume_training",
                     type="primary", help="Continues the same run exactly where it was.")
        else:
            a.button("Pause", icon=":material/pause:", on_click=job.pause, key="pause_training",
                     help="Holds the run between two steps; nothing is lost (weights, optimizer, schedule, batch "
                          "order). Look around, then resume.")
        b.button("Stop", icon=":material/stop:", on_click=job.stop, key="stop_training",
                 help="Ends the run at the next step and keeps the weights trained so far.")

    st.html(LIVE_PANEL_STYLE.replace("PRIMARY", st.get_option("theme.primaryColor") or "#ff4b4b"))
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
                st.success(f"Saved as {target.name}; it is now in the sidebar's model list.")
