"""The Train page's live view and the route its script fetches: what it serves, for which job, and when it stops."""

from __future__ import annotations

import base64
import gc
import json
import re
from dataclasses import replace

from starlette.requests import Request

from cutellm.lab.jobs import TrainingJob, find_job
from cutellm.lab.runs import prepare_run
from cutellm.lab.samples import SampleSpec
from cutellm.views.live_chart import live_loss_svg
from ui.train.live_view import PARTS, ROUTE, live_endpoint, live_route, live_url, view_html

from conftest import TINY_MODEL, TINY_TEXT, TINY_TRAIN


def make_job(steps: int, **kwargs) -> TrainingJob:
    run = prepare_run(TINY_TEXT, "tiny", TINY_MODEL, replace(TINY_TRAIN, max_steps=steps, eval_interval=10))
    return TrainingJob(run, **kwargs)


def chart_svg(part: str) -> str:
    """The SVG inside the chart's image (as Streamlit draws the view)."""
    return base64.b64decode(re.search(r'src="data:image/svg\+xml;base64,([^"]+)"', part).group(1)).decode()


def get(job_id: str, query: str = "") -> tuple[int, dict]:
    scope = {"type": "http", "method": "GET", "path": ROUTE.format(job_id=job_id), "headers": [],
             "query_string": query.encode(), "path_params": {"job_id": job_id}}
    response = live_endpoint(Request(scope))
    return response.status_code, json.loads(response.body)


def test_the_route_serves_every_part_of_a_finished_job():
    job = make_job(30, samples=SampleSpec(prompt="the cat", blank="the ___ sat")).start()
    assert job.join(60)
    status, reply = get(job.id, "width=640")
    assert status == 200 and reply["running"] is False and list(reply["parts"]) == list(PARTS)
    parts = reply["parts"]
    assert 'data-label="Step"><div class="label">Step</div><div class="value">30</div>' in parts["stats"]
    # The chart comes as inline SVG (the script swaps it in as it is), drawn at the width the browser asked for.
    assert parts["chart"].startswith('<svg class="live-chart"') and 'viewBox="0 0 640 340"' in parts["chart"]
    assert "Validation loss <b>" in parts["reading"]
    assert re.search(r'<div class="sample">step 30: <code>the cat[^<]*</code> · <code>the \w+ sat</code>',
                     parts["samples"]), parts["samples"]
    # A width that is not a number falls back to the default one.
    assert 'viewBox="0 0 900 340"' in get(job.id, "width=wide")[1]["parts"]["chart"]
    # Streamlit's drawing of the view (its sanitizer drops inline SVG) shows the same chart as an image.
    page = view_html(job, live_url(job))
    assert '<div data-part="chart"><img class="live-chart"' in page
    assert chart_svg(page) == live_loss_svg(job.snapshot().history, job.baselines, width=900, max_points=300)


def test_the_route_knows_only_the_jobs_a_session_still_holds():
    assert get("no-such-job")[0] == 404
    job = make_job(5)
    job_id = job.id
    assert find_job(job_id) is job and len(job_id) >= 20   # unguessable: it is the only key to a job's progress
    del job
    gc.collect()
    assert get(job_id)[0] == 404


def test_the_view_carries_its_script_only_while_the_job_runs():
    job = make_job(100_000).start()
    try:
        page = view_html(job, live_url(job, "/cute/"))
        assert f'<div id="live-view" data-job="{job.id}">' in page
        assert all(f'<div data-part="{name}">' in page for name in PARTS)
        script = page[page.index("<script>"):]
        assert f'const job = "{job.id}", url = "/cute/api/live/{job.id}", every = 2000;' in script
        assert ".st-key-live_done button" in script and "__" not in script   # every placeholder filled
    finally:
        job.stop()
        job.join(60)
    assert "<script>" not in view_html(job, live_url(job))


def test_the_route_is_mounted_under_the_base_path():
    assert live_route(None).path == "/api/live/{job_id}"
    assert live_route("/cute/").path == "/cute/api/live/{job_id}"
