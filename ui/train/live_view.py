"""The Train page's live view of a training job: progress bar, six figures, loss chart, reading and live samples,
drawn here as HTML (no Streamlit calls, so the web route below can draw it too).

The page draws the view once. While the job trains, a few lines of JavaScript in it fetch the view's parts again
every 2 s from `ROUTE` (served beside Streamlit: see `streamlit_app.py`) and swap in those that changed. So no
Streamlit script runs while a job trains: a fragment rerun every 2 s cost ~4% of a 2-core machine in the browser and
the server, which training paid about twice over in wall time (bench/README.md, "Speed, round six"). When the job
ends, the script clicks the panel's hidden button, and that rerun draws the results.

The chart arrives from the route as inline SVG, not as the <img> that Streamlit's first drawing needs (its sanitizer
drops inline SVG): the browser decodes an SVG image as a document of its own at every swap, which made the chart
half of the browser's work while a job trained (bench/README.md, "Speed, round eleven"). Inline, its points also
show their step and loss on hover.
"""

from __future__ import annotations

import html
import json
import re

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cutellm.views.curve import perplexity
from cutellm.lab.jobs import JobSnapshot, TrainingJob, find_job
from cutellm.views.live_chart import live_loss_svg

from ..text import duration, svg_img
from .run_reading import reading_html, samples_html

LIVE_REFRESH_S = 2.0
LIVE_CHART_POINTS = 300
ROUTE = "/api/live/{job_id}"
DONE_BUTTON_KEY = "live_done"     # the hidden button the script clicks when the job has ended
PARTS = ("stats", "chart", "reading", "samples")
DEFAULT_WIDTH = 900               # the chart's width until the browser says how wide the view is

# Streamlit marks the elements it may replace as stale while any script runs, with an opacity transition; the live
# view is redrawn by its own script, so nothing in the panel needs to animate (bench/README.md, "Speed, round five").
STYLE = """<style>
.st-key-live_panel .stElementContainer { opacity: 1 !important; }
.st-key-live_panel, .st-key-live_panel * { transition: none !important; animation: none !important; }
.st-key-live_done { display: none; }
.live-stats .bar { height: 0.5rem; border-radius: 0.25rem; background: rgba(128, 128, 128, 0.2);
                   margin: 0.3rem 0 1rem; overflow: hidden; }
.live-stats .bar > div { height: 100%; background: PRIMARY; }
.live-stats .cells { display: grid; grid-template-columns: repeat(6, minmax(0, 1fr)); gap: 1rem; }
@media (max-width: 640px) { .live-stats .cells { grid-template-columns: repeat(2, minmax(0, 1fr)); } }
.live-stat .label { font-size: 0.875rem; }
.live-stat .label[title], .live-help { text-decoration: underline dotted; cursor: help; }
.live-stat .value { font-size: 2.25rem; line-height: 1.3; white-space: nowrap; }
#live-view [data-part="chart"] { margin: 1rem 0 0.5rem; }
#live-view code { white-space: pre-wrap; font-size: 0.85em; padding: 0.1em 0.25em; border-radius: 0.25rem;
                  background: rgba(128, 128, 128, 0.12); }
.live-caption { font-size: 0.875rem; opacity: 0.7; }
.live-help { display: inline-block; width: 1.1em; height: 1.1em; line-height: 1.05em; margin-left: 0.2em;
             border: 1px solid currentColor; border-radius: 50%; font-size: 0.75em; text-align: center;
             vertical-align: 0.15em; opacity: 0.6; text-decoration: none; }
.live-warning { padding: 0.75rem 1rem; margin: 0.5rem 0 1rem; border-radius: 0.5rem;
                background: rgba(255, 189, 69, 0.2); }
.live-samples { max-height: 300px; overflow-y: auto; padding: 0.5rem 1rem; border-radius: 0.5rem;
                border: 1px solid rgba(128, 128, 128, 0.25); }
.live-samples .sample { margin: 0.2rem 0; }
</style>"""

# Fetches the view's parts every LIVE_REFRESH_S and swaps in those that changed (keeping the samples' scroll
# position); stops when the page has moved on or the server no longer has the job; clicks the hidden button once
# the job has ended. One loop per page: a view's script can run again while the loop before awaits its fetch, so
# each loop carries its number and ends when a newer one has started.
POLL_SCRIPT = """<script>(() => {
  const job = __JOB__, url = __URL__, every = __EVERY__;
  const me = window.cuteLiveRun = (window.cuteLiveRun || 0) + 1;
  const shown = {};
  const tick = async () => {
    const view = document.getElementById("live-view");
    if (window.cuteLiveRun !== me || !view || view.dataset.job !== job) return;
    let reply = null;
    try {
      const r = await fetch(`${url}?width=${Math.round(view.clientWidth)}`, {cache: "no-store"});
      if (r.status === 404) return;
      if (r.ok) reply = await r.json();
    } catch (e) {}
    if (reply) {
      for (const [name, body] of Object.entries(reply.parts)) {
        const part = view.querySelector(`[data-part="${name}"]`);
        if (!part || shown[name] === body) continue;
        const top = part.querySelector(".live-samples")?.scrollTop || 0;
        part.innerHTML = body;
        shown[name] = body;
        const box = part.querySelector(".live-samples");
        if (box) box.scrollTop = top;
      }
      if (!reply.running) { document.querySelector(".st-key-__DONE__ button")?.click(); return; }
    }
    setTimeout(tick, every);
  };
  tick();
})();</script>"""


def stats_html(heading: str, progress: float, stats: list[tuple[str, str, str | None]]) -> str:
    """The progress bar under `heading`, then one cell per (label, value, tooltip or None)."""
    def cell(label: str, value: str, tip: str | None) -> str:
        title = f' title="{html.escape(tip)}"' if tip else ""
        return (f'<div class="live-stat" data-label="{html.escape(label)}"><div class="label"{title}>'
                f'{html.escape(label)}</div><div class="value">{html.escape(value)}</div></div>')

    cells = "".join(cell(*stat) for stat in stats)
    return (f'<div class="live-stats"><div class="heading">{html.escape(heading)}</div>'
            f'<div class="bar" role="progressbar" aria-valuenow="{100 * progress:.0f}" aria-valuemin="0" '
            f'aria-valuemax="100"><div style="width: {100 * progress:.1f}%"></div></div>'
            f'<div class="cells">{cells}</div></div>')


def _stats(job: TrainingJob, snap: JobSnapshot) -> str:
    last, val = snap.latest, snap.last_val_loss
    where = ("paused" if snap.paused else f"about {duration(snap.eta_s)} left") if snap.running else ""
    heading = (f"{job.name}: step {last.step if last else 0:,} of {snap.total_steps:,}"
               + (f" · {where}" if where else ""))
    if job.task is None:
        fourth = ("Val perplexity", f"{perplexity(val):,.1f}" if val is not None else "–",
                  "e^loss: as unsure as choosing among this many equally likely tokens.")
    else:   # a toy task: what counts is whether the answers are right
        accuracy = snap.last_accuracy
        fourth = ("Held-out accuracy", f"{accuracy:.0%}" if accuracy is not None else "–",
                  "Exact answers to problems the model never trained on, at the last evaluation.")
    return stats_html(heading, snap.progress, [
        ("Step", f"{last.step:,}" if last else "0", None),
        ("Train loss", f"{last.train_loss:.3f}" if last else "–", None),
        ("Val loss", f"{val:.3f}" if val is not None else "–", None),
        fourth,
        ("Tokens/s", f"{last.tokens_per_s:,.0f}" if last else "–", None),
        ("Elapsed", duration(snap.elapsed_s), "Training time; pauses are not counted.")])


def chart_img(svg: str) -> str:
    """The live chart as an image (ui/text.svg_img), for the view's first drawing: as inline SVG it would show only
    once the script had swapped it in, and never in a finished run's view."""
    return svg_img(svg, "training and validation loss by step", "live-chart")


def view_parts(job: TrainingJob, width: int = DEFAULT_WIDTH) -> tuple[JobSnapshot, dict[str, str]]:
    """The job's snapshot now, and the view's parts drawn from it as the script swaps them in (the chart as inline
    SVG, `width` pixels wide)."""
    snap = job.snapshot()
    return snap, {"stats": _stats(job, snap),
                  "chart": live_loss_svg(snap.history, job.baselines, width=width, max_points=LIVE_CHART_POINTS,
                                         accuracy=snap.accuracy or None),
                  "reading": reading_html(snap, job.baselines),
                  "samples": samples_html(snap)}


def _js(text: str) -> str:
    """A JavaScript string literal that cannot end the script element."""
    return json.dumps(text).replace("<", "\\u003c")


def view_html(job: TrainingJob, url: str) -> str:
    """The whole view as it is now; while the job runs, with the script that keeps it up to date from `url`."""
    snap, parts = view_parts(job)
    parts["chart"] = chart_img(parts["chart"])   # this drawing goes through Streamlit's sanitizer
    body = "".join(f'<div data-part="{name}">{parts[name]}</div>' for name in PARTS)
    values = {"JOB": _js(job.id), "URL": _js(url), "EVERY": str(int(LIVE_REFRESH_S * 1000)),
              "DONE": DONE_BUTTON_KEY}
    # One pass, so that nothing filled in is read as a placeholder again.
    script = re.sub(r"__([A-Z]+)__", lambda m: values[m.group(1)], POLL_SCRIPT) if snap.running else ""
    return f'<div id="live-view" data-job="{html.escape(job.id)}">{body}</div>{script}'


def base_path(base_url_path: str | None) -> str:
    """Streamlit's `server.baseUrlPath` as a prefix for the route ("" or "/some/path")."""
    stripped = (base_url_path or "").strip("/")
    return f"/{stripped}" if stripped else ""


def live_url(job: TrainingJob, base_url_path: str | None = None) -> str:
    return base_path(base_url_path) + ROUTE.format(job_id=job.id)


def live_endpoint(request: Request) -> JSONResponse:
    """GET the view's parts of the job in the path: {"running": bool, "parts": {name: html}}; 404 when no session
    holds that job any more. `?width=` is the view's width in pixels."""
    job = find_job(request.path_params["job_id"])
    if job is None:
        return JSONResponse({"error": "no such training job"}, status_code=404)
    try:
        width = int(request.query_params.get("width", DEFAULT_WIDTH))
    except ValueError:
        width = DEFAULT_WIDTH
    snap, parts = view_parts(job, width)
    return JSONResponse({"running": snap.running, "parts": parts}, headers={"Cache-Control": "no-store"})


def live_route(base_url_path: str | None = None) -> Route:
    """The route the view's script fetches (a plain function: Starlette runs it in its thread pool)."""
    return Route(base_path(base_url_path) + ROUTE, live_endpoint, methods=["GET"])
