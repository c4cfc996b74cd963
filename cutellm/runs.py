"""Training runs side by side: what each run was (config, corpus) and what it gave (loss curve, losses, speed).

A run's record is read from a checkpoint's metadata (`TrainResult.summary()` plus corpus and configs), so saved
models can be compared after a restart, and a fine-tuned model keeps the records of the runs it grew from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import pandas as pd

# What a checkpoint keeps of each earlier run when a model is fine-tuned from it.
RUN_KEYS = ("corpus", "steps", "status", "final_train_loss", "final_val_loss", "wall_time_s", "tokens_per_s",
            "saved_at", "train_config", "loss_curve")


def run_record(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a checkpoint's metadata that describes its own training run."""
    return {k: meta[k] for k in RUN_KEYS if k in meta}


def lineage(meta: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Earlier runs of a model fine-tuned from `meta`'s model, oldest first, followed by that model's own run."""
    return [*meta.get("previous_runs", []), run_record(meta)]


@dataclass(frozen=True)
class Run:
    name: str
    meta: Mapping[str, Any]
    model_config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def curve(self) -> list[tuple[int, float, float | None]]:
        return [(int(s), float(t), None if v is None else float(v)) for s, t, v in self.meta.get("loss_curve", [])]

    def row(self) -> dict[str, Any]:
        m, mc, tc = self.meta, self.model_config, self.meta.get("train_config", {})
        return {
            "run": self.name,
            "corpus": m.get("corpus"),
            "fine-tuned from": m.get("base_model") or "",
            "tokenizer": m.get("tokenizer_kind"),
            "vocab": mc.get("vocab_size"),
            "d_model": mc.get("d_model"),
            "heads": mc.get("n_heads"),
            "layers": mc.get("n_layers"),
            "context": mc.get("block_size"),
            "dropout": mc.get("dropout"),
            "causal": mc.get("causal", True),
            # The windows per optimiser step (accumulation and processes included) when recorded, else batch_size.
            "batch": m.get("global_batch_size") or tc.get("batch_size"),
            "learning rate": tc.get("learning_rate"),
            "seed": tc.get("seed"),
            "steps": m.get("steps"),
            "train loss": _round(m.get("final_train_loss")),
            "val loss": _round(m.get("final_val_loss")),
            "time (s)": _round(m.get("wall_time_s"), 1),
            "tokens/s": _round(m.get("tokens_per_s"), 0),
            "status": m.get("status", "finished"),
        }


def _round(value, digits: int = 3):
    return None if value is None else round(float(value), digits)


def runs_table(runs: list[Run]) -> pd.DataFrame:
    """One row per run: its settings and results."""
    return pd.DataFrame([r.row() for r in runs])


def differing_columns(table: pd.DataFrame) -> list[str]:
    """Columns whose values are not all the same (what distinguishes the runs), the run name excluded."""
    if len(table) < 2:
        return []
    return [c for c in table.columns if c != "run" and table[c].astype(str).nunique(dropna=False) > 1]
