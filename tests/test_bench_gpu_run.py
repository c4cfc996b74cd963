"""bench/gpu_run.py, the prepared GPU run: its refusals (no GPU, no corpus) before any work, and its summary of a
real benchmark's JSON. The run itself needs a GPU; `--device cpu --quick` checks its plumbing by hand."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from cutellm.devices import resolve_precision
from cutellm.lab import bench
from tests.test_bench import SMALL_MODEL, corpus  # noqa: F401 (a fixture)

spec = importlib.util.spec_from_file_location("gpu_run", Path(__file__).resolve().parents[1] / "bench" / "gpu_run.py")
gpu_run = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_run)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_it_stops_at_once_and_says_why(tmp_path, corpus, capsys):  # noqa: F811
    out = tmp_path / "out"
    assert gpu_run.main(["--out", str(out), "--corpus", str(corpus)]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err
    env = json.loads((out / "env.json").read_text())
    assert env["cuda_available"] is False and env["missing_modules"] == [] and env["torch"] == torch.__version__
    assert sorted(p.name for p in out.iterdir()) == ["env.json"]   # nothing ran


def test_a_missing_corpus_is_refused_before_any_work(tmp_path, capsys):
    assert gpu_run.main(["--device", "cpu", "--out", str(tmp_path), "--corpus", str(tmp_path / "none.txt")]) == 2
    assert "no corpus" in capsys.readouterr().err
    assert not (tmp_path / "bench.json").exists()


def test_summary_reads_a_real_benchmark_and_a_failed_step(tmp_path, corpus):  # noqa: F811
    r = bench.run_benchmark(corpus, steps=20, gen_tokens=20, gen_repeats=1, matmul_size=128, model_config=SMALL_MODEL,
                            train_config=replace(bench.BENCH_TRAIN, eval_interval=10), device="cpu")
    figures = gpu_run.bench_figures(bench.write_results(r, tmp_path / "bench.json"))
    assert figures["cache_speedup"] == r["generation"]["cache_speedup"] and figures["identical"] is True
    assert figures["precision"] == resolve_precision("auto", "cpu") and figures["compile"] is False
    assert gpu_run.bench_figures(tmp_path / "missing.json") is None
    summary = {"environment": {"python": "3.11", "device": "cuda", "gpu": "Some GPU", "torch": "2.x", "cuda": "12"},
               "bench": figures, "bench_compiled": None,
               "steps": {"bench": {"rc": 0}, "bench_compiled": {"rc": 1},
                         "train": {"rc": 0, "command": "torchrun ... train", "wall_s": 12.5}},
               "train": {"steps": 900, "final_val_loss": 3.104321, "device": "cuda", "precision": "bf16"}}
    table = gpu_run.summary_table(summary)
    assert table.startswith("GPU run: Some GPU, torch 2.x, CUDA 12")
    assert f"| bench | 0 | {figures['precision']} | {figures['tokens_per_s']:,.0f} |" in table
    assert f"| {figures['cache_speedup']:.2f}x |" in table
    assert "| bench_compiled | 1 |" in table   # a failed step is still listed
    assert "exit 0, 12.5 s wall, 900 steps, validation loss 3.1043, cuda bf16" in table
