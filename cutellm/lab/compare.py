"""`python -m cutellm compare-blocks`: GPT-2's block against Llama's, and one option at a time, on the same text.

Every variant trains with the same recipe for the same number of steps, once per seed; the table gives each
variant's validation loss and bits per character as a mean with its spread over the seeds, and the change against
the GPT-2 block. A change smaller than the seeds' own spread is noise at this size: `verdict()` says so, so a learner
reads the table as evidence and not as a ranking.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..config import ModelConfig, TrainConfig
from ..data import load_corpus
from ..errors import ConfigError
from ..training import TrainResult, train
from .runs import prepare_run

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "data" / "training_data.txt"
DEFAULT_OUT = Path("bench") / "compare_blocks.json"
SEEDS = (1, 2, 3)
BASELINE = "GPT-2 block"


@dataclass(frozen=True)
class Variant:
    name: str
    changes: Mapping[str, Any]   # ModelConfig fields that differ from today's (GPT-2) block


# The two designs, then each Llama choice alone on the GPT-2 block, and two switches that show what a part is for.
VARIANTS: tuple[Variant, ...] = (
    Variant(BASELINE, {}),
    Variant("Llama block", {"positions": "rope", "norm": "rmsnorm", "mlp": "swiglu"}),
    Variant("+ RoPE", {"positions": "rope"}),
    Variant("+ RMSNorm", {"norm": "rmsnorm"}),
    Variant("+ SwiGLU", {"mlp": "swiglu"}),
    Variant("untied head", {"tie_weights": False}),
    Variant("no positions", {"positions": "none"}),
)


@dataclass(frozen=True)
class Outcome:
    variant: str
    seed: int
    val_loss: float
    val_bits_per_char: float | None
    parameters: int
    steps: int
    wall_time_s: float


def verdict(change: float, spread: float, baseline_spread: float) -> str:
    """Whether a change in mean loss stands out from seed noise: more than twice the larger of the two spreads
    (sample standard deviations over seeds) reads as real, less as noise. A rough rule, said as such."""
    noise = max(spread, baseline_spread)
    if noise == 0 or math.isnan(noise):
        return "one seed: no spread to judge by"
    return "beyond the seed spread" if abs(change) > 2 * noise else "within the seed spread (noise)"


def compare_blocks(corpus: str | Path = DEFAULT_CORPUS, *, variants: Sequence[Variant] = VARIANTS,
                   seeds: Sequence[int] = SEEDS, model: ModelConfig | None = None, recipe: TrainConfig | None = None,
                   on_run: Callable[[Outcome], None] | None = None) -> dict[str, Any]:
    """Train every variant once per seed on `corpus` (the default model shape and recipe unless given) and return
    every run and the summary per variant, as plain data."""
    if not seeds:
        raise ConfigError("compare-blocks needs at least one seed")
    text = load_corpus(corpus)
    model = model or ModelConfig()
    recipe = recipe or TrainConfig()
    outcomes: list[Outcome] = []
    for variant in variants:
        shape = replace(model, **variant.changes)   # an unknown or invalid option fails here, before any training
        for seed in seeds:
            config = replace(recipe, seed=seed)
            run = prepare_run(text, Path(corpus).name, shape, config, name=f"{variant.name} seed {seed}")
            result: TrainResult = train(run.model, run.dataset, config)
            outcome = Outcome(variant.name, seed, float(result.final_val_loss), result.final_val_bits_per_char,
                              run.model.num_parameters(), result.steps, round(result.wall_time_s, 2))
            outcomes.append(outcome)
            if on_run is not None:
                on_run(outcome)
    return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "corpus": Path(corpus).name,
            "seeds": list(seeds), "model": model.to_dict(), "recipe": recipe.to_dict(),
            "variants": {v.name: dict(v.changes) for v in variants},
            "runs": [o.__dict__ for o in outcomes], "summary": summarize(outcomes)}


def _spread(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
    """Per variant, in the order first seen: mean and spread of the validation loss and bits per character, the
    parameters, and the change against the first variant (the baseline) with its verdict."""
    by_variant: dict[str, list[Outcome]] = {}
    for o in outcomes:
        by_variant.setdefault(o.variant, []).append(o)
    rows = []
    for name, runs in by_variant.items():
        losses = [o.val_loss for o in runs]
        bpc = [o.val_bits_per_char for o in runs if o.val_bits_per_char is not None]
        rows.append({"variant": name, "runs": len(runs), "parameters": runs[0].parameters,
                     "val_loss_mean": statistics.fmean(losses), "val_loss_spread": _spread(losses),
                     "bits_per_char_mean": statistics.fmean(bpc) if bpc else None,
                     "bits_per_char_spread": _spread(bpc) if bpc else None,
                     "wall_time_s_mean": statistics.fmean(o.wall_time_s for o in runs)})
    base = rows[0]
    for row in rows:
        row["change"] = row["val_loss_mean"] - base["val_loss_mean"]
        row["verdict"] = "the baseline" if row is base else verdict(row["change"], row["val_loss_spread"],
                                                                   base["val_loss_spread"])
    return rows


def format_table(results: Mapping[str, Any]) -> str:
    """The summary as a Markdown table (the form README shows)."""
    lines = [f"{len(results['seeds'])} seeds each, {results['corpus']}, equal steps",
             "",
             "| block | parameters | val loss | bits/char | change | reading |",
             "|---|---:|---:|---:|---:|---|"]
    for r in results["summary"]:
        bpc = "–" if r["bits_per_char_mean"] is None else \
            f"{r['bits_per_char_mean']:.3f} ± {r['bits_per_char_spread']:.3f}"
        lines.append(f"| {r['variant']} | {r['parameters']:,} | {r['val_loss_mean']:.3f} ± "
                     f"{r['val_loss_spread']:.3f} | {bpc} | {r['change']:+.3f} | {r['verdict']} |")
    return "\n".join(lines)


def write_results(results: Mapping[str, Any], path: str | Path = DEFAULT_OUT) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    return out

