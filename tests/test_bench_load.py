"""bench/load.py's figures from recorded requests and training runs (the browser part is not run here)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("bench_load", Path(__file__).resolve().parents[1] / "bench" / "load.py")
load = importlib.util.module_from_spec(spec)
spec.loader.exec_module(load)


def test_percentile_interpolates_like_numpy():
    assert load.percentile([], 50) is None
    assert load.percentile([3.0], 95) == 3.0
    assert load.percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert load.percentile(list(map(float, range(1, 101))), 95) == pytest.approx(95.05)
    assert load.percentile([1.0, 2.0], 0) == 1.0 and load.percentile([1.0, 2.0], 100) == 2.0


def test_summarize_counts_requests_errors_and_the_slowdown():
    records = [{"kind": "generate", "first_s": x / 4, "latency_s": x, "error": None} for x in (0.2, 0.4, 0.6, 0.8, 1.0)]
    failed = {"first_s": None, "latency_s": None}
    records += [{"kind": "fill", "first_s": 0.5, "latency_s": 0.5, "error": None},
                {"kind": "fill", **failed, "error": "timeout"},
                {"kind": "fill", **failed, "error": "exception"},
                {"kind": "fill", **failed, "error": "timeout"}]
    alone = {"tokens_per_s": 20_000.0, "wall_s": 10.0, "steps": 500}
    busy = {"tokens_per_s": 15_000.0, "wall_s": 16.0, "steps": 500}
    r = load.summarize(records, alone, busy)

    g, f = r["requests"]["generate"], r["requests"]["fill"]
    assert list(r["requests"]) == ["generate", "fill"]  # in the order first asked for
    assert g == {"served": 5, "errors": 0, "errors_by_type": {}, "p50_s": 0.6, "p95_s": 0.96, "max_s": 1.0,
                 "first_p50_s": 0.15, "first_p95_s": 0.24}
    assert f["served"] == 1 and f["errors"] == 3 and f["errors_by_type"] == {"timeout": 2, "exception": 1}
    assert f["p50_s"] == f["p95_s"] == 0.5
    assert r["errors"] == 3
    assert r["training"]["slowdown_pct"] == 25.0 and r["training"]["wall_slowdown_pct"] == 60.0
    json.dumps(r)  # what bench/load.json holds

    r.update(machine={"cores": 2, "load_before": [1.0, 1.0, 1.0], "load_after": [2.0, 2.0, 2.0]}, load_s=60.0,
             total_s=120.0)
    table = load.format_table(r)
    assert "generate" in table and "20,000 tokens/s" in table and "+25.0% tokens/s" in table and "errors: 3" in table


def test_summarize_without_requests_or_training():
    r = load.summarize([{"kind": "generate", "first_s": None, "latency_s": None, "error": "timeout"}], None, None)
    assert r["requests"]["generate"]["served"] == 0 and r["requests"]["generate"]["p50_s"] is None
    assert r["errors"] == 1 and r["training"]["slowdown_pct"] is None
    assert "generate" in load.format_table(r)


# -- the class scenario (--class) ---------------------------------------------------------------------------------
def _run(status, queued=False, place=None, wait=None, run_s=None, waited=None, error=None):
    return {"session": 0, "queued": queued, "place": place, "queue_wait_s": wait, "run_s": run_s,
            "waited_s": waited, "status": status, "error": error}


def test_summarize_requests_takes_first_times_only_where_a_kind_has_them():
    records = [{"kind": "explore", "first_s": 0.5, "latency_s": 1.0, "error": None},
               {"kind": "explore", "first_s": 1.5, "latency_s": 3.0, "error": None},
               {"kind": "train", "first_s": None, "latency_s": 0.8, "error": None},
               {"kind": "train", "first_s": None, "latency_s": None, "error": "exception"}]
    r = load.summarize_requests(records)
    assert list(r) == ["explore", "train"]
    assert r["explore"]["p50_s"] == 2.0 and r["explore"]["first_p50_s"] == 1.0 and r["explore"]["max_s"] == 3.0
    assert r["train"]["served"] == 1 and r["train"]["first_p50_s"] is None
    assert r["train"]["errors_by_type"] == {"exception": 1}


def test_summarize_runs_gives_queue_waits_and_runs():
    runs = [_run("finished", wait=2.0, run_s=30.0),                                    # started at once
            _run("finished", queued=True, place=1, wait=32.0, run_s=34.0),
            _run("finished", queued=True, place=2, wait=66.0, run_s=40.0),
            _run("stopped", queued=True, place=3, wait=100.0),                          # training at the end
            _run("left", queued=True, place=3, waited=50.0),                            # still queued at the end
            _run("error", error="training failed")]
    t = load.summarize_runs(runs)
    assert t["runs_started"] == 4 and t["runs_finished"] == 3 and t["runs_queued"] == 4 and t["place_max"] == 3
    assert t["queue_wait_p50_s"] == 49.0 and t["queue_wait_max_s"] == 100.0
    assert t["queue_wait_p50_s"] <= t["queue_wait_p95_s"] <= t["queue_wait_max_s"]
    assert t["queued_wait_p50_s"] == 66.0 and t["queued_wait_max_s"] == 100.0   # the runs that waited
    assert t["run_p50_s"] == 34.0 and t["run_max_s"] == 40.0                    # finished runs only
    assert t["stopped_at_end"] == 1 and t["left_queue_at_end"] == 1 and t["left_after_max_s"] == 50.0
    assert t["errors"] == 1 and t["errors_by_type"] == {"training failed": 1}


def test_summarize_runs_without_runs():
    t = load.summarize_runs([])
    assert t["runs_started"] == t["runs_finished"] == t["errors"] == 0
    assert t["queue_wait_p50_s"] is None and t["place_max"] is None and t["run_max_s"] is None


def test_memory_peaks_in_mib():
    samples = [{"server_kb": 300 * 1024, "total_kb": 400 * 1024, "pss_kb": 350 * 1024, "processes": 2},
               {"server_kb": 350 * 1024, "total_kb": 900 * 1024, "pss_kb": 700 * 1024, "processes": 4},
               {"server_kb": 340 * 1024, "total_kb": 600 * 1024, "pss_kb": None, "processes": 3}]
    m = load.memory_peaks(samples)
    assert m == {"samples": 3, "server_start_mb": 300.0, "server_peak_mb": 350.0, "total_peak_mb": 900.0,
                 "total_pss_peak_mb": 700.0, "processes_max": 4}
    assert m["server_peak_mb"] <= m["total_peak_mb"]
    empty = load.memory_peaks([])
    assert empty["samples"] == 0 and empty["server_peak_mb"] is None and empty["processes_max"] is None


def test_summarize_class_counts_failed_requests_and_runs():
    records = [{"kind": "fill", "first_s": 0.2, "latency_s": 0.4, "error": "timeout"},
               {"kind": "explore", "first_s": 1.0, "latency_s": 2.0, "error": None},
               {"kind": "train", "first_s": None, "latency_s": 0.5, "error": None},
               {"kind": "generate", "first_s": 0.3, "latency_s": 1.5, "error": None}]
    runs = [_run("finished", wait=0.5, run_s=20.0), _run("error", error="exception")]
    memory = [{"server_kb": 512 * 1024, "total_kb": 1024 * 1024, "pss_kb": 800 * 1024, "processes": 3}]
    r = load.summarize_class(records, runs, memory)
    assert list(r["requests"]) == ["train", "generate", "fill", "explore"]   # always in this order
    assert r["errors"] == 2 and r["training"]["runs_finished"] == 1 and r["memory"]["total_peak_mb"] == 1024.0
    r.update(machine={"cores": 2, "load_before": [1.0] * 3, "load_after": [2.0] * 3}, load_s=60.0, total_s=90.0,
             sessions={"total": 12, "training": 4, "other": 8}, slots=1, preset="tiny & fast", steps=300)
    json.dumps(r)  # what bench/load_class.json holds
    table = load.format_class_table(r)
    for shown in ("train", "generate", "fill", "explore", "queue wait", "1 finished", "1,024 MiB", "512 MiB",
                  "12 sessions (4 training, 1 slot(s)", "errors: 2"):
        assert shown in table, shown
    empty = load.summarize_class([], [], [])
    assert empty["errors"] == 0 and "errors: 0" in load.format_class_table(empty)


def test_memory_of_a_process_and_its_children(tmp_path):
    import os
    import subprocess
    import sys
    import time

    if not os.path.exists(f"/proc/{os.getpid()}/status"):
        pytest.skip("no /proc here")
    assert load.rss_kb(os.getpid()) > 0
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in load.children(os.getpid()) and child.pid in load.descendants(os.getpid())
        sample = load.memory_sample(os.getpid())
        assert sample["processes"] >= 2 and sample["total_kb"] > sample["server_kb"] > 0
        sampler = load.MemorySampler(os.getpid(), every=0.01).start()
        while not sampler.samples:
            time.sleep(0.01)
        samples = sampler.stop()
        assert samples and load.memory_peaks(samples)["total_peak_mb"] > 0
    finally:
        child.kill()
        child.wait()
    assert load.rss_kb(2 ** 22 + 12345) is None   # no such process
