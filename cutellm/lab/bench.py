"""`python -m cutellm bench`: CuteGPT against nanoGPT's CPU recipe for tiny Shakespeare, on the same machine.

The configuration is nanoGPT's `shakespeare_char` CPU recipe: character level, the raw text split 90/10 by position,
context 64, batch 12, 4 layers, 4 heads, width 128, no dropout, 2000 iterations, learning rate 1e-3 with 100 warmup
iterations and cosine decay to 1e-4, AdamW (betas 0.9/0.99, weight decay 0.1), gradient clipping at 1.0, a
validation loss every 250 iterations on 20 batches. Then 500 new characters are sampled (temperature 0.8, top-k 200)
with and without the KV cache, and a large matmul in the training's precision (fp32, or bf16 where `auto` picks it)
measures this machine's peak so that the training FLOP/s can be read as a fraction of it.

Windows: nanoGPT draws 12 random offsets per iteration from all `len(train) - 64` possible offsets. CuteGPT trains on
precomputed windows; with `stride=1` every offset is a window (a view of the token stream made by `unfold`, no copy),
and a shuffled pass draws them without replacement. 2000 x 12 draws out of ~1M windows almost never repeat either way,
so both see the same distribution of training examples: the same task.

`run_benchmark()` returns every figure as a dict (written to bench/results.json); `format_table()` prints it beside
nanoGPT's figures (`REFERENCE`). A caller can pass `on_step` (called with every StepMetrics) or a whole `trainer`
(e.g. one that trains through the app's job runner) to time other training paths on exactly this configuration.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch

from .. import __version__
from ..config import ModelConfig, TrainConfig
from ..data import Dataset, load_corpus, make_windows
from ..devices import resolve_device, resolve_precision
from ..errors import CorpusError
from ..inference import generate_ids
from ..sampling import SamplingSettings
from ..model import CuteLLM
from ..tokenizer import BPETokenizer, CharTokenizer, Tokenizer, tokenizer_from_dict
from ..training import StepMetrics, TrainResult, evaluate, new_model, train

ROOT = Path(__file__).resolve().parents[2]   # the repository
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpora" / "tinyshakespeare.txt"
DEFAULT_OUT = Path("bench") / "results.json"

FULL_STEPS = 2000
QUICK_STEPS = 200
GEN_TOKENS = 500
GEN_TEMPERATURE = 0.8
GEN_TOP_K = 200          # capped at the vocabulary size, as nanoGPT's sample.py does
GEN_PROMPT = "\n"        # nanoGPT's sample.py default start
SEED = 1337
MATMUL_SIZE = 2048
BPE_VOCAB = 2000         # the tokenizer timing: a 2,000-token BPE vocabulary learned from the corpus
DEFAULT_MODEL = ROOT / "models" / "cute_llm.pth"   # the blank-filling timing uses the shipped model
ONE_BLANK, TWO_BLANKS = "the ___ sat on the mat", "the ___ ___ on the mat"
# The head importance table (views/ablation.py) is timed on the shipped model over this 20-word text.
HEAD_TABLE_TEXT = "the cat sat on the mat and the dog ran to the park while the bird sang in the tree"

# nanoGPT's shakespeare_char CPU recipe (n_layer, n_head, n_embd, block_size, dropout) ...
BENCH_MODEL = ModelConfig(vocab_size=68, d_model=128, n_heads=4, n_layers=4, block_size=64, dropout=0.0)
# ... and its optimisation (batch_size, max_iters = lr_decay_iters, learning_rate, min_lr, warmup_iters, AdamW, clip).
BENCH_TRAIN = TrainConfig(batch_size=12, max_steps=FULL_STEPS, learning_rate=1e-3, min_lr_ratio=0.1,
                          warmup_steps=100, weight_decay=0.1, betas=(0.9, 0.99), grad_clip=1.0, eval_interval=250,
                          eval_batches=20, val_fraction=0.1, stride=1, seed=SEED)

# nanoGPT on this 2-core machine (torch 2.13.0 CPU, 2 threads): see issue 5 and bench/README.md.
REFERENCE: dict[str, float] = {
    "tokens_per_s": 17_200, "ms_per_iter": 44.6, "train_wall_s": 92.0, "final_val_loss": 1.886,
    "final_train_loss": 1.765, "parameters_m": 0.80, "peak_rss_mb": 370.0, "gen_uncached_tokens_per_s": 593.0,
    "matmul_peak_gflops": 195.0, "mfu": 0.46,
}

FLOPS_FORMULA = ("per token: 6 * N + 12 * n_layers * n_heads * head_dim * block_size, N = parameters without the "
                 "position embedding (nanoGPT's estimate_mfu / PaLM appendix B: forward + backward matmuls, plus "
                 "the full T x T attention scores)")


def default_corpus() -> Path:
    """The shared tiny Shakespeare corpus next to the repository; a clear error when it is not there."""
    if not DEFAULT_CORPUS.is_file():
        raise CorpusError(f"the benchmark corpus {DEFAULT_CORPUS} does not exist; pass --corpus PATH to a "
                          "character-level text such as tiny Shakespeare")
    return DEFAULT_CORPUS


def bench_dataset(text: str, tokenizer: Tokenizer, block_size: int, val_fraction: float = 0.1) -> Dataset:
    """Every offset of the training part is a window (stride 1, a view); validation in non-overlapping windows.

    Periodic evaluations read 20 evenly spaced batches of these validation windows; the final validation loss reads
    all of them, i.e. every validation token once (windows at stride 1 would read each 64 times for the same figure).
    """
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    n_train = int(ids.numel() * (1 - val_fraction))  # nanoGPT's prepare.py: data[:int(n * 0.9)]
    return Dataset(ids=ids, train=make_windows(ids[:n_train], block_size, stride=1),
                   val=make_windows(ids[n_train:], block_size, stride=block_size), block_size=block_size,
                   n_train_tokens=n_train, train_characters=n_train, val_characters=ids.numel() - n_train)


def bench_setup(text: str, *, steps: int = FULL_STEPS, device: str = "auto", threads: int | None = None,
                precision: str = "auto", compile: bool = False,
                model_config: ModelConfig | None = None, train_config: TrainConfig | None = None
                ) -> tuple[CuteLLM, CharTokenizer, Dataset, TrainConfig]:
    """(fresh model, tokenizer, dataset, train config) of the benchmark: what `train()` or a job runner needs."""
    tokenizer = CharTokenizer.from_text(text)
    shape = replace(model_config or BENCH_MODEL, vocab_size=tokenizer.vocab_size)
    config = replace(train_config or BENCH_TRAIN, max_steps=steps, device=device, num_threads=threads,
                     precision=precision, compile=compile)
    dataset = bench_dataset(text, tokenizer, shape.block_size, config.val_fraction)
    return new_model(shape, config.seed), tokenizer, dataset, config


Trainer = Callable[[CuteLLM, Tokenizer, Dataset, TrainConfig, Callable[[StepMetrics], None] | None], TrainResult]


def _train_directly(model: CuteLLM, tokenizer: Tokenizer, dataset: Dataset, config: TrainConfig,
                    on_step: Callable[[StepMetrics], None] | None) -> TrainResult:
    return train(model, dataset, config, on_step=on_step)


def nanogpt_estimate(model: CuteLLM, ids: torch.Tensor, block_size: int, batch_size: int, batches: int = 20,
                     seed: int = SEED) -> float | None:
    """The loss as nanoGPT's `estimate_loss` measures it: `batches` batches of windows at random offsets (seeded
    here, so the figure is reproducible). Noisier than the full-split figure: about +-0.015 at these sizes."""
    windows = make_windows(ids, block_size, stride=1)
    if windows.size(0) == 0:
        return None
    rows = torch.randint(windows.size(0), (batches * batch_size,), generator=torch.Generator().manual_seed(seed))
    return evaluate(model, windows[rows], batch_size)


def _significant(x: float, digits: int = 4) -> float:
    """x to `digits` significant figures: a rate rounded to a fixed decimal loses its precision when the host is slow
    (a peak of 0.64 GFLOP/s written as 0.6), and the fraction of peak recomputed from the JSON would no longer agree."""
    return float(f"{x:.{digits}g}")


def matmul_peak(size: int = MATMUL_SIZE, repeats: int = 5, device: str = "cpu",
                dtype: torch.dtype = torch.float32) -> float:
    """Best FLOP/s of a size x size matmul in `dtype` on the current torch threads (2 * size^3 FLOP each)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    a @ b  # warm-up: thread pool and kernels
    sync()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - t0)
    return 2 * size ** 3 / best


def _position_table(model: CuteLLM) -> int:
    """Parameters of the learned position table (0 for RoPE or no positions): nanoGPT leaves them out."""
    return model.pos_emb.weight.numel() if model.pos_emb is not None else 0


def flops_per_token(model: CuteLLM) -> int:
    """Training FLOP per token, nanoGPT's estimate (see FLOPS_FORMULA)."""
    c = model.config
    n = model.num_parameters() - _position_table(model)
    return 6 * n + 12 * c.n_layers * c.n_heads * c.head_dim * c.block_size


def _time_generation(model: CuteLLM, ids: list[int], n: int, top_k: int, banned: list[int], use_cache: bool
                     ) -> tuple[float, list[int]]:
    t0 = time.perf_counter()
    sampling = SamplingSettings(GEN_TEMPERATURE, top_k=top_k, seed=SEED)
    out = generate_ids(model, ids, n, sampling=sampling, use_cache=use_cache, banned=banned)
    return n / (time.perf_counter() - t0), out


def bpe_timing(text: str, vocab_size: int = BPE_VOCAB) -> dict[str, Any]:
    """Seconds to train a BPE vocabulary of `vocab_size` on `text` (counting the tokens included), and to encode the
    whole text with a freshly loaded copy of it (an empty cache, as after loading a checkpoint)."""
    t0 = time.perf_counter()
    tokenizer = BPETokenizer.from_text(text, vocab_size)
    train_s = time.perf_counter() - t0
    fresh = tokenizer_from_dict(tokenizer.to_dict())
    t0 = time.perf_counter()
    ids = fresh.encode(text)
    encode_s = time.perf_counter() - t0
    return {"corpus_mb": round(len(text.encode("utf-8")) / 1e6, 3), "vocab_size": tokenizer.vocab_size,
            "train_s": round(train_s, 6), "encode_s": round(encode_s, 6),  # tiny test corpora: microseconds
            "chars_per_token": round(len(text) / max(1, len(ids)), 3), "round_trip": fresh.decode(ids) == text}


def blank_timing(model_path: str | Path = DEFAULT_MODEL, repeats: int = 5) -> dict[str, Any]:
    """Milliseconds to fill one blank and two blanks with the shipped model (median of `repeats`), and how many
    candidate words each blank tried. None when the model file is missing."""
    from ..checkpoint import load_checkpoint
    from ..completion import candidate_words, complete_phrase

    if not Path(model_path).is_file():
        return {"model": str(model_path), "one_blank_ms": None, "two_blanks_ms": None, "candidates": 0}
    model, tokenizer, meta = load_checkpoint(model_path, with_meta=True)
    words = meta.get("words")
    out: dict[str, Any] = {"model": Path(model_path).name, "candidates": len(candidate_words(tokenizer, words))}
    for key, phrase in (("one_blank", ONE_BLANK), ("two_blanks", TWO_BLANKS)):
        complete_phrase(model, tokenizer, phrase, words=words)  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            filled = complete_phrase(model, tokenizer, phrase, words=words).filled_text
            times.append(1000 * (time.perf_counter() - t0))
        out.update({f"{key}_ms": round(statistics.median(times), 1), f"{key}_phrase": phrase,
                    f"{key}_filled": filled})
    return out


def head_table_timing(model_path: str | Path = DEFAULT_MODEL, text: str = HEAD_TABLE_TEXT,
                      repeats: int = 5) -> dict[str, Any]:
    """Milliseconds to build the head importance table (every head, each layer's attention and MLP switched off in
    turn, batched) with the shipped model on `text` (median of `repeats`). None when the model file is missing."""
    from ..checkpoint import load_checkpoint
    from ..views.ablation import head_importance

    out: dict[str, Any] = {"model": Path(model_path).name, "text": text, "words": len(text.split()),
                           "head_table_ms": None}
    if not Path(model_path).is_file():
        return out
    model, tokenizer = load_checkpoint(model_path)
    table = head_importance(model, tokenizer, text)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        head_importance(model, tokenizer, text)
        times.append(1000 * (time.perf_counter() - t0))
    c = model.config
    return {**out, "tokens": table.attrs["tokens"] + 1, "parts": len(table), "layers": c.n_layers,
            "heads": c.n_heads, "head_table_ms": round(statistics.median(times), 1)}


def machine_info() -> dict[str, Any]:
    """This machine as the JSON files record it: CPU model, cores, torch and its threads, Python, the GPU if any."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "nproc": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "torch_threads": torch.get_num_threads(), "cutellm": __version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def run_benchmark(corpus: str | Path | None = None, *, steps: int = FULL_STEPS, device: str = "auto",
                  precision: str = "auto", compile: bool = False,
                  threads: int | None = None, gen_tokens: int | None = None, gen_repeats: int = 7,
                  model_config: ModelConfig | None = None, train_config: TrainConfig | None = None,
                  matmul_size: int | None = None, on_step: Callable[[StepMetrics], None] | None = None,
                  trainer: Trainer | None = None, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train and sample with the benchmark configuration; every figure in a JSON-ready dict.

    `model_config` / `train_config` replace the nanoGPT shape / recipe (tests use a smaller model; the vocabulary,
    `steps`, `device`, `precision`, `compile` and `threads` are always filled in). `trainer(model, tokenizer,
    dataset, config, on_step)` replaces the direct `train()` call, e.g. to time the app's job runner on the same
    configuration.
    """
    say = progress or (lambda _msg: None)
    gen_tokens = gen_tokens or GEN_TOKENS
    matmul_size = matmul_size or MATMUL_SIZE
    started = time.perf_counter()
    load_start = _load()
    dev = resolve_device(device)  # before reading anything: '--device cuda' without a GPU stops at once
    dtype = resolve_precision(precision, dev)
    path = Path(corpus) if corpus is not None else default_corpus()
    text = load_corpus(path, clean=False)  # byte-for-byte the text nanoGPT's prepare.py reads
    model, tokenizer, dataset, config = bench_setup(text, steps=steps, device=device, threads=threads,
                                                    precision=precision, compile=compile,
                                                    model_config=model_config, train_config=train_config)
    if threads:
        torch.set_num_threads(threads)

    say(f"training {steps} iterations on {path.name} ({dataset.train.size(0):,} training windows), "
        f"{torch.get_num_threads()} threads, {dev}, {dtype}{', compiled' if compile else ''}")
    t0 = time.perf_counter()
    result = (trainer or _train_directly)(model, tokenizer, dataset, config, on_step)
    train_wall = time.perf_counter() - t0

    history = result.history
    steady = [m.tokens_per_s for m in history[10:] if m.val_loss is None] or [m.tokens_per_s for m in history]
    tokens_per_s = statistics.median(steady)
    tokens_per_iter = (result.global_batch_size or config.batch_size) * dataset.block_size
    val_losses = [[m.step, round(m.val_loss, 4)] for m in history if m.val_loss is not None]
    n_train = dataset.n_train_tokens
    estimate = {split: nanogpt_estimate(model, part, dataset.block_size, config.batch_size, config.eval_batches or 20)
                for split, part in (("train", dataset.ids[:n_train]), ("val", dataset.ids[n_train:]))}

    say(f"generating {gen_tokens} tokens with and without the KV cache")
    model.eval()
    prompt = tokenizer.encode(GEN_PROMPT)
    top_k = min(GEN_TOP_K, tokenizer.vocab_size)
    banned = sorted(tokenizer.special_ids)
    _time_generation(model, prompt, min(20, gen_tokens), top_k, banned, True)  # warm-up
    rates: dict[bool, list[float]] = {True: [], False: []}
    outputs: dict[bool, list[int]] = {}
    for _ in range(gen_repeats):  # interleaved, median: robust to a busy neighbour
        for use_cache in (True, False):
            rate, outputs[use_cache] = _time_generation(model, prompt, gen_tokens, top_k, banned, use_cache)
            rates[use_cache].append(rate)
    cached, uncached = statistics.median(rates[True]), statistics.median(rates[False])

    # Peak memory of training + generation (before the matmul's own 48 MB of matrices); kilobytes on Linux.
    peak_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    say(f"training a {BPE_VOCAB:,}-token BPE vocabulary on the corpus and encoding it")
    tokenizer_timing = bpe_timing(text)

    say("filling one and two blanks with the shipped model")
    blanks = blank_timing()

    say("timing the head importance table with the shipped model")
    head_table = head_table_timing()

    say(f"timing a {matmul_size}x{matmul_size} {dtype} matmul")   # the peak of what the training multiplied in
    peak = matmul_peak(matmul_size, device=dev, dtype=torch.bfloat16 if dtype == "bf16" else torch.float32)
    per_token = flops_per_token(model)
    train_flops = per_token * tokens_per_s

    n_params = model.num_parameters()
    return {
        "benchmark": "cutellm bench (nanoGPT shakespeare_char CPU recipe)",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {**machine_info(), "device": dev, "precision": dtype, "compile": compile,
                    "load_avg_start": load_start, "load_avg_end": _load()},
        "config": {
            "corpus": path.name, "corpus_chars": len(text), "tokenizer": "char", "vocab_size": tokenizer.vocab_size,
            "train_tokens": dataset.n_train_tokens, "val_tokens": dataset.n_val_tokens,
            "train_windows": dataset.train.size(0), "val_windows": dataset.val.size(0),
            "model": model.config.to_dict(), "train": config.to_dict(),
        },
        "training": {
            "status": result.status, "steps": result.steps, "tokens_per_iter": tokens_per_iter,
            "tokens_per_s": round(tokens_per_s, 1), "ms_per_iter": round(1000 * tokens_per_iter / tokens_per_s, 2),
            "mean_ms_per_iter": round(1000 * train_wall / max(1, result.steps), 2),
            "wall_s": round(train_wall, 2), "val_losses": val_losses,
            "final_train_loss": _round(result.final_train_loss), "final_val_loss": _round(result.final_val_loss),
            "estimate_train_loss": _round(estimate["train"]), "estimate_val_loss": _round(estimate["val"]),
        },
        "model": {"parameters": n_params, "parameters_without_pos_emb": n_params - _position_table(model)},
        "memory": {"peak_rss_mb": round(peak_rss_kb / 1024, 1)},
        "generation": {
            "new_tokens": gen_tokens, "temperature": GEN_TEMPERATURE, "top_k": top_k, "prompt": GEN_PROMPT,
            "repeats": gen_repeats, "cached_tokens_per_s": round(cached, 1),
            "uncached_tokens_per_s": round(uncached, 1), "cache_speedup": round(cached / uncached, 2),
            "identical": outputs[True] == outputs[False], "sample": tokenizer.decode(outputs[True]),
        },
        "tokenizer": {"kind": "bpe", **tokenizer_timing},
        "blanks": blanks,
        "ablation": head_table,
        "compute": {
            "formula": FLOPS_FORMULA, "flops_per_token": per_token, "train_gflops": _significant(train_flops / 1e9),
            "matmul_size": matmul_size, "matmul_dtype": dtype, "matmul_peak_gflops": _significant(peak / 1e9),
            "fraction_of_peak": round(train_flops / peak, 3),
        },
        "total_wall_s": round(time.perf_counter() - started, 1),
        "reference": {"name": "nanoGPT (issue 5)", **REFERENCE},
    }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def format_table(r: dict[str, Any]) -> str:
    """The figures beside nanoGPT's, as a plain-text table."""
    ref, t, g, c = r["reference"], r["training"], r["generation"], r["compute"]
    peak_dtype = c.get("matmul_dtype", "fp32")   # results written before the field were fp32

    def num(x: float | None, fmt: str) -> str:
        return "n/a" if x is None else format(x, fmt)

    def ratio(ours: float | None, theirs: float, higher_is_better: bool = True) -> str:
        if not ours or not theirs:
            return ""
        return f"{ours / theirs if higher_is_better else theirs / ours:.2f}x"

    rows = [
        ("training tokens/s (median)", num(t["tokens_per_s"], ",.0f"), f"{ref['tokens_per_s']:,.0f}",
         ratio(t["tokens_per_s"], ref["tokens_per_s"])),
        ("ms / iteration (median)", num(t["ms_per_iter"], ".1f"), f"{ref['ms_per_iter']:.1f}",
         ratio(t["ms_per_iter"], ref["ms_per_iter"], False)),
        (f"wall time, {t['steps']} iterations (s)", num(t["wall_s"], ".1f"),
         f"{ref['train_wall_s']:.0f} (2000 it.)", ratio(t["wall_s"], ref["train_wall_s"], False)
         if t["steps"] == FULL_STEPS else ""),
        ("val loss, nanoGPT's estimate (20 random batches)", num(t["estimate_val_loss"], ".4f"),
         f"{ref['final_val_loss']:.3f}", ""),
        ("train loss, nanoGPT's estimate", num(t["estimate_train_loss"], ".4f"), f"{ref['final_train_loss']:.3f}", ""),
        ("val loss, every val token once", num(t["final_val_loss"], ".4f"), "-", ""),
        ("parameters (M, without pos. emb.)", f"{r['model']['parameters_without_pos_emb'] / 1e6:.2f}",
         f"{ref['parameters_m']:.2f}", ""),
        ("peak RSS (MB)", f"{r['memory']['peak_rss_mb']:.0f}", f"{ref['peak_rss_mb']:.0f}", ""),
        ("generation tokens/s, no cache", num(g["uncached_tokens_per_s"], ",.0f"),
         f"{ref['gen_uncached_tokens_per_s']:,.0f}", ratio(g["uncached_tokens_per_s"],
                                                          ref["gen_uncached_tokens_per_s"])),
        ("generation tokens/s, KV cache", num(g["cached_tokens_per_s"], ",.0f"), "-",
         ratio(g["cached_tokens_per_s"], ref["gen_uncached_tokens_per_s"])),
        ("KV cache speed-up over no cache (this run)", f"{g['cache_speedup']:.2f}x", "-", ""),
        ("cached == uncached output", "yes" if g["identical"] else "NO", "-", ""),
        ("training GFLOP/s (estimated)", f"{c['train_gflops']:.1f}",
         f"{ref['tokens_per_s'] * c['flops_per_token'] / 1e9:.1f}", ""),
        (f"{peak_dtype} matmul peak GFLOP/s" + ("" if peak_dtype == "fp32" else " (nanoGPT: fp32)"),
         f"{c['matmul_peak_gflops']:.0f}", f"{ref['matmul_peak_gflops']:.0f}", ""),
        ("fraction of matmul peak", f"{c['fraction_of_peak']:.0%}", f"{ref['mfu']:.0%}", ""),
    ]
    head = ("", "CuteGPT", "nanoGPT", "ratio")
    widths = [max(len(str(row[i])) for row in (head, *rows)) for i in range(4)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(str(x).ljust(w) if i == 0 else str(x).rjust(w) for i, (x, w) in enumerate(zip(row, widths)))
           for row in (head, *rows)]
    m = r["machine"]
    vals = ", ".join(f"{s}: {v:.3f}" for s, v in t["val_losses"])
    bpe = r["tokenizer"]
    bpe_line = (f"BPE tokenizer on {bpe['corpus_mb']:.2f} MB: {bpe['vocab_size']:,} tokens learned in "
                f"{bpe['train_s']:.2f} s, text encoded in {bpe['encode_s']:.2f} s ({bpe['chars_per_token']:.2f} "
                f"characters per token, exact round trip: {'yes' if bpe['round_trip'] else 'NO'})")
    return "\n".join([out[0], line, *out[1:], line,
                      f"val loss by iteration: {vals}", bpe_line, _blanks_line(r["blanks"]),
                      _head_table_line(r.get("ablation", {})),
                      f"machine: {m['cpu']}, {m['nproc']} CPUs, torch {m['torch']}, {m['torch_threads']} threads, "
                      f"{m['device']} {m.get('precision', 'fp32')}{', compiled' if m.get('compile') else ''}; "
                      f"load average {m['load_avg_start']} -> {m['load_avg_end']}"])


def _blanks_line(b: dict[str, Any]) -> str:
    if b.get("one_blank_ms") is None:
        return f"blank filling: not timed ({b['model']} is missing)"
    return (f"blank filling with {b['model']} ({b['candidates']:,} candidate words): one blank "
            f"{b['one_blank_ms']:.0f} ms, two blanks {b['two_blanks_ms']:.0f} ms ('{b['two_blanks_filled']}')")


def _head_table_line(a: dict[str, Any]) -> str:
    if a.get("head_table_ms") is None:
        return f"head importance table: not timed ({a.get('model', 'the shipped model')} is missing)"
    return (f"head importance table with {a['model']} ({a['layers']} layers x {a['heads']} heads, {a['parts']} parts "
            f"switched off in one batch, {a['tokens']} tokens): {a['head_table_ms']:.1f} ms")


def write_results(results: dict[str, Any], path: str | Path = DEFAULT_OUT) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return out
