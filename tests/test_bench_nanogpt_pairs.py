"""bench/nanogpt_pairs.py: reading nanoGPT's log and the figures it writes (nanoGPT itself is not run here)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("bench_nanogpt_pairs",
                                              Path(__file__).resolve().parents[1] / "bench" / "nanogpt_pairs.py")
pairs_bench = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = pairs_bench
spec.loader.exec_module(pairs_bench)

# nanoGPT's train.py prints these lines (format of karpathy/nanoGPT@3adf61e, train.py lines 265 and 327).
LOG = "\n".join(["tokens per iteration will be: 768", "step 0: train loss 4.2874, val loss 4.2823",
                 "iter 0: loss 4.2649, time 900.00ms, mfu -100.00%",
                 *(f"iter {i}: loss 3.0000, time {40.0 + (i % 3):.2f}ms, mfu 1.00%" for i in range(1, 30)),
                 "step 30: train loss 2.5000, val loss 2.5500",
                 "iter 30: loss 2.4000, time 700.00ms, mfu 1.00%"])


def test_nanogpt_log_gives_the_steady_median_and_the_last_estimate():
    r = pairs_bench.parse_nanogpt(LOG, 30)
    # iterations 10..29 (40, 41 or 42 ms); iteration 0 (warm-up) and 30 (it began with an evaluation) left out
    assert r == {"ms_per_iter": 41.0, "iterations": 31, "val_loss": 2.55, "train_loss": 2.5}


def test_a_log_without_the_final_evaluation_is_refused():
    with pytest.raises(RuntimeError, match="no evaluation at 40"):
        pairs_bench.parse_nanogpt(LOG, 40)


def test_summary_fields_are_the_per_pair_speed_ratios_and_their_medians():
    def cute(ms, frac, cache):
        return {"ms_per_iter": ms, "val_loss": 2.40, "fraction_of_peak": frac, "cache_speedup": cache}
    pairs = [{"nanogpt": {"ms_per_iter": 45.0, "val_loss": 2.41}, "cutellm": cute(30.0, 0.55, 5.2)},
             {"nanogpt": {"ms_per_iter": 50.0, "val_loss": 2.42}, "cutellm": cute(40.0, 0.50, 6.0)},
             {"nanogpt": {"ms_per_iter": 40.0, "val_loss": 2.39}, "cutellm": cute(20.0, 0.60, 4.0)}]
    s = pairs_bench.summarise(pairs)
    assert s["ratios"] == [1.5, 1.25, 2.0] and s["median_ratio"] == 1.5
    assert s["median_fraction_of_peak"] == 0.55 and s["median_cache_speedup"] == 5.2
    assert s["val_loss_gap"] == pytest.approx(-0.01)
    table = pairs_bench.format_table(pairs, s)
    assert "| 3 | 40.0 | 20.0 | 2.00x |" in table and "**1.50x**" in table


def test_nanogpt_arguments_follow_its_cpu_recipe_and_the_run_length(tmp_path):
    args = pairs_bench.nanogpt_args(600, tmp_path)
    for flag in ("--device=cpu", "--compile=False", "--n_layer=4", "--n_head=4", "--n_embd=128", "--block_size=64",
                 "--batch_size=12", "--dropout=0.0", "--max_iters=600", "--lr_decay_iters=600", "--warmup_iters=60",
                 "--eval_interval=600", "--eval_iters=20"):
        assert flag in args
    with pytest.raises(SystemExit, match="not a nanoGPT checkout"):
        pairs_bench.prepare_nanogpt(tmp_path, tmp_path / "corpus.txt", tmp_path / "work")


def test_the_recorded_pairs_hold_sane_figures():
    """bench/nanogpt_pairs.json, the run bench/README.md quotes: every field the summary names, within sense."""
    r = json.loads((Path(__file__).resolve().parents[1] / "bench" / "nanogpt_pairs.json").read_text())
    assert r["machine"]["cpu"] and r["iters"] > 0 and len(r["pairs"]) == len(r["ratios"]) >= 3
    for pair, ratio in zip(r["pairs"], r["ratios"]):
        n, c = pair["nanogpt"], pair["cutellm"]
        assert ratio == pytest.approx(n["ms_per_iter"] / c["ms_per_iter"], abs=1e-3)
        assert 0 < c["fraction_of_peak"] <= 1 and c["cache_speedup"] > 1 and c["cache_identical"] is True
        assert abs(n["val_loss"] - c["val_loss"]) < 0.1      # the same recipe reached the same place
    assert r == {**r, **pairs_bench.summarise(r["pairs"])}   # the medians are those of the pairs


def test_turns_give_each_rounds_ratio_and_the_medians():
    rounds = [(0.060, 0.040), (0.045, 0.030), (0.062, 0.031), (0.044, 0.044)]   # seconds per iteration
    s = pairs_bench.summarise_turns(rounds)
    assert s["rounds"] == 4 and s["median_ratio"] == pytest.approx(1.5)      # ratios 1.0, 1.5, 1.5, 2.0
    assert s["ratio_range"] == [1.0, 2.0]
    assert s["nanogpt_ms_per_iter"] == pytest.approx(52.5) and s["cutellm_ms_per_iter"] == pytest.approx(35.5)


# A stand-in for nanoGPT's model.py with the interface the turns use (GPTConfig(**fields), GPT(config)(x, y) ->
# (logits, loss), configure_optimizers): the real one is never part of this repository.
FAKE_MODEL = '''
import torch
import torch.nn as nn

class GPTConfig:
    def __init__(self, vocab_size, n_embd, **shape):
        self.vocab_size, self.n_embd = vocab_size, n_embd

class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size)

    def forward(self, idx, targets):
        logits = self.head(self.emb(idx))
        return logits, nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

    def configure_optimizers(self, weight_decay, learning_rate, betas, device_type):
        return torch.optim.AdamW(self.parameters(), lr=learning_rate, betas=betas, weight_decay=weight_decay)
'''


def test_nanogpt_and_cutegpt_take_turns(tmp_path):
    import pickle

    import numpy as np

    # by its package name: the processes it starts import it again
    from bench import nanogpt_pairs

    (tmp_path / "model.py").write_text(FAKE_MODEL)
    data = tmp_path / "data" / "shakespeare_char"
    data.mkdir(parents=True)
    (np.arange(1000) % 65).astype(np.uint16).tofile(data / "train.bin")   # token ids below the vocabulary
    (data / "meta.pkl").write_bytes(pickle.dumps({"vocab_size": 65}))
    corpus = Path(__file__).resolve().parents[1] / "data" / "training_data.txt"
    rounds = nanogpt_pairs.take_turns(tmp_path, corpus, 0.5)   # at least one round, however slow the host
    assert rounds and all(len(pair) == 2 and all(0 < t < 10 for t in pair) for pair in rounds)
