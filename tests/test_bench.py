"""`python -m cutellm bench`: the JSON has every figure with sane values (never timing thresholds).

The real benchmark trains nanoGPT's 0.8M-parameter shape on tiny Shakespeare for ~1.5 minutes; here the same code
runs on a small generated corpus with a tiny model so the test takes a few seconds.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from cutellm import ModelConfig
from cutellm.devices import resolve_precision
from cutellm.lab import bench
from cutellm.__main__ import main
from cutellm.training import prepare_training, train
from tests.conftest import TINY_MODEL, TINY_TEXT, TINY_TRAIN

SMALL_MODEL = ModelConfig(vocab_size=68, d_model=32, n_heads=2, n_layers=1, block_size=16, dropout=0.0)


@pytest.fixture()
def corpus(tmp_path):
    lines = ["First Citizen:", "Before we proceed any further, hear me speak.", "", "All:", "Speak, speak.", "",
             "First Citizen:", "You are all resolved rather to die than to famish?", ""]
    path = tmp_path / "tiny.txt"
    path.write_text("\n".join(lines * 30))
    return path


@pytest.fixture()
def small_bench(monkeypatch):
    """Make the CLI's benchmark small: a tiny model, 40 generated tokens, a 256 x 256 matmul."""
    monkeypatch.setattr(bench, "BENCH_MODEL", SMALL_MODEL)
    monkeypatch.setattr(bench, "GEN_TOKENS", 40)
    monkeypatch.setattr(bench, "MATMUL_SIZE", 256)


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def check_results(r: dict, steps: int) -> None:
    assert set(r) >= {"benchmark", "date", "machine", "config", "training", "model", "memory", "generation",
                      "compute", "total_wall_s", "reference"}
    m = r["machine"]
    assert m["nproc"] >= 1 and m["torch_threads"] >= 1 and m["torch"] and m["cpu"] and m["device"] == "cpu"
    # 'auto': bf16 on a CPU with bf16 matrix instructions, fp32 on others
    assert m["precision"] == resolve_precision("auto", "cpu") and m["compile"] is False

    c = r["config"]
    assert c["tokenizer"] == "char" and c["vocab_size"] == c["model"]["vocab_size"]
    assert c["train"]["stride"] == 1 and c["train"]["batch_size"] == 12 and c["train"]["max_steps"] == steps
    assert c["train"]["learning_rate"] == 1e-3 and c["train"]["betas"] == [0.9, 0.99]
    # every offset of the training part is a window; validation is cut into non-overlapping windows
    block = c["model"]["block_size"]
    assert c["train_windows"] == c["train_tokens"] - block
    assert c["val_windows"] == (c["val_tokens"] - block - 1) // block + 1

    t = r["training"]
    assert t["status"] == "finished" and t["steps"] == steps
    assert t["tokens_per_iter"] == 12 * block
    for key in ("tokens_per_s", "ms_per_iter", "mean_ms_per_iter", "wall_s", "final_train_loss", "final_val_loss",
                "estimate_train_loss", "estimate_val_loss"):
        assert _positive(t[key]), key
    assert t["ms_per_iter"] == pytest.approx(1000 * t["tokens_per_iter"] / t["tokens_per_s"], rel=0.01)
    assert t["val_losses"] and t["val_losses"][-1][0] == steps
    assert all(_positive(loss) and loss < 10 for _, loss in t["val_losses"])
    assert t["final_train_loss"] < math.log(c["vocab_size"])  # it learned something

    assert r["model"]["parameters"] > r["model"]["parameters_without_pos_emb"] > 0
    assert 10 < r["memory"]["peak_rss_mb"] < 100_000

    g = r["generation"]
    assert g["identical"] is True
    assert _positive(g["cached_tokens_per_s"]) and _positive(g["uncached_tokens_per_s"])
    assert g["cache_speedup"] == pytest.approx(g["cached_tokens_per_s"] / g["uncached_tokens_per_s"], rel=0.01)
    assert g["top_k"] == c["vocab_size"] and g["temperature"] == 0.8
    assert isinstance(g["sample"], str) and len(g["sample"]) == g["new_tokens"]

    b = r["tokenizer"]
    assert b["kind"] == "bpe" and 259 < b["vocab_size"] <= bench.BPE_VOCAB and b["round_trip"] is True
    assert _positive(b["train_s"]) and _positive(b["encode_s"]) and _positive(b["corpus_mb"])
    assert b["chars_per_token"] > 1

    bl = r["blanks"]
    assert bl["model"] == "cute_llm.pth" and bl["candidates"] > 500
    assert _positive(bl["one_blank_ms"]) and _positive(bl["two_blanks_ms"])
    assert bl["two_blanks_filled"].endswith("on the mat") and bl["two_blanks_filled"].count(" ") == 5

    a = r["ablation"]
    assert a["model"] == "cute_llm.pth" and a["words"] == 20 and a["tokens"] == 20
    assert a["parts"] == a["layers"] * (a["heads"] + 2)  # every head, each layer's attention and MLP
    assert _positive(a["head_table_ms"])   # a time: positive and finite, whatever the host's speed

    k = r["compute"]
    assert _positive(k["flops_per_token"]) and _positive(k["train_gflops"]) and _positive(k["matmul_peak_gflops"])
    assert k["fraction_of_peak"] == pytest.approx(k["train_gflops"] / k["matmul_peak_gflops"], rel=0.05, abs=1e-3)
    assert k["matmul_dtype"] == m["precision"]   # the peak of what the training multiplied in
    assert r["reference"]["tokens_per_s"] == 17_200


def test_bench_quick_cli_writes_every_field(corpus, small_bench, tmp_path, capsys):
    out = tmp_path / "out" / "results.json"
    assert main(["bench", "--quick", "--corpus", str(corpus), "--out", str(out), "--device", "cpu"]) == 0
    results = json.loads(out.read_text())
    check_results(results, steps=bench.QUICK_STEPS)
    assert results["generation"]["new_tokens"] == 40
    table = capsys.readouterr().out
    assert "tokens/s" in table and "17,200" in table and "nanoGPT" in table and str(out) in table
    assert "BPE tokenizer on" in table and "blank filling with cute_llm.pth" in table
    assert "head importance table with cute_llm.pth (2 layers x 4 heads" in table
    assert f"{results['ablation']['head_table_ms']:.1f} ms" in table
    assert f"{results['generation']['cache_speedup']:.2f}x" in table


def test_run_benchmark_calls_back_every_step_and_takes_a_trainer(corpus):
    seen, trainer_calls = [], []

    def trainer(model, tokenizer, dataset, config, on_step):
        trainer_calls.append(config)
        return train(model, dataset, config, on_step=on_step)

    r = bench.run_benchmark(corpus, steps=30, gen_tokens=20, gen_repeats=1, matmul_size=128,
                            model_config=SMALL_MODEL, train_config=replace(bench.BENCH_TRAIN, eval_interval=10),
                            on_step=seen.append, trainer=trainer)
    check_results(r, steps=30)
    assert [m.step for m in seen] == list(range(1, 31))
    assert [s for s, _ in r["training"]["val_losses"]] == [10, 20, 30]
    assert len(trainer_calls) == 1 and trainer_calls[0].max_steps == 30


def test_the_bench_configuration_is_nanogpts():
    m, t = bench.BENCH_MODEL, bench.BENCH_TRAIN
    assert (m.n_layers, m.n_heads, m.d_model, m.block_size, m.dropout) == (4, 4, 128, 64, 0.0)
    assert (t.batch_size, t.max_steps, t.learning_rate, t.learning_rate * t.min_lr_ratio, t.warmup_steps) == \
        (12, 2000, 1e-3, pytest.approx(1e-4), 100)
    assert (t.betas, t.weight_decay, t.grad_clip, t.eval_interval, t.eval_batches) == ((0.9, 0.99), 0.1, 1.0, 250, 20)


def test_missing_default_corpus_says_to_pass_one(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(bench, "DEFAULT_CORPUS", tmp_path / "nowhere" / "tinyshakespeare.txt")
    assert main(["bench", "--quick", "--out", str(tmp_path / "r.json")]) == 2
    assert "--corpus" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_time_to_quality_reads_each_runs_figures_and_compares_medians(tmp_path):
    import subprocess
    import sys

    from bench import time_to_quality as ttq
    from cutellm import save_checkpoint
    from tests.conftest import ROOT

    # the figures it reads after each training are in every checkpoint's metadata
    model, tokenizer, dataset = prepare_training(TINY_TEXT, TINY_MODEL, replace(TINY_TRAIN, max_steps=20))
    result = train(model, dataset, replace(TINY_TRAIN, max_steps=20))
    path = tmp_path / "m.pth"
    save_checkpoint(path, model, tokenizer, result.summary())
    out = subprocess.run([sys.executable, "-c", ttq.READ_META, str(path)], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    figures = json.loads(out.stdout)
    assert figures["steps"] == 20 and 0 < figures["final_val_loss"] < 10 and figures["wall_time_s"] > 0

    runs = {"baseline": [{"wall_s": 90.0, "final_val_loss": 3.114}, {"wall_s": 100.0, "final_val_loss": 3.116}],
            "current": [{"wall_s": 40.0, "final_val_loss": 3.10}, {"wall_s": 38.0, "final_val_loss": 3.098}]}
    s = ttq.summarise(runs)
    assert s["median"]["baseline"]["wall_s"] == 95.0 and s["median"]["current"]["wall_s"] == 39.0
    assert s["wall_ratio"] == pytest.approx(39 / 95, abs=1e-3)
    assert s["val_loss_change"] == pytest.approx(3.099 - 3.115, abs=1e-4)


def test_head_table_timing_without_the_model_says_so(tmp_path):
    timing = bench.head_table_timing(tmp_path / "missing.pth")
    assert timing["head_table_ms"] is None
    assert "not timed (missing.pth is missing)" in bench._head_table_line(timing)
