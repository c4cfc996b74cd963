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
