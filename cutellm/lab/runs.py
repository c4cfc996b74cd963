"""Training runs: the one path from corpus and settings to a run (for the CLI and the app), and runs side by side.

`prepare_run` builds everything a run needs and records: a fresh model with a tokenizer built from the corpus, or a
trainable copy of a base model to fine-tune (keeping its tokenizer and shape, and the records of the runs it grew
from), the corpus's windows, and the metadata its checkpoint will carry. `PreparedRun.checkpoint_metadata(result)`
adds the results. `python -m cutellm train` and the Train page both go through it, so their checkpoints agree.

A run's record is read back from a checkpoint's metadata (`TrainResult.summary()` plus corpus and configs), so saved
models can be compared after a restart, and a fine-tuned model keeps the records of the runs it grew from.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from ..chat import chat_dataset, parse_conversations, prepare_sft
from ..completion import corpus_words, merge_words
from ..config import ModelConfig, TrainConfig
from ..data import Dataset, bits_per_char, prepare_dataset
from ..errors import ConfigError
from ..model import CuteLLM
from ..tokenizer import Tokenizer
from ..training import TrainResult, batch_plan, prepare_finetuning, prepare_training

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class BaseModel:
    """A trained model to fine-tune, with the name it goes by (a file's stem, or a run's name in the app)."""

    name: str
    model: CuteLLM
    tokenizer: Tokenizer
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class PreparedRun:
    """A run ready to train: `train(run.model, run.dataset, run.config)`, then save with `checkpoint_metadata`."""

    name: str
    model: CuteLLM
    tokenizer: Tokenizer
    dataset: Dataset
    config: TrainConfig
    metadata: dict[str, Any]    # what the run is: corpus, tokenizer, configs, lineage (the results come later)

    @property
    def total_steps(self) -> int:
        return batch_plan(self.dataset.train.size(0), self.config).total_steps

    @property
    def chat(self) -> bool:
        """Whether this run instruction-tunes a model (cutellm.chat)."""
        return bool(self.metadata.get("chat"))

    def checkpoint_metadata(self, result: TrainResult | None, status: str | None = None) -> dict[str, Any]:
        """The metadata to save with the trained model: what the run was and what it gave."""
        meta = {**self.metadata, **(result.summary() if result is not None else {})}
        if status is not None:
            meta["status"] = status
        return meta


def prepare_run(text: str, corpus_name: str, model_config: ModelConfig, train_config: TrainConfig, *,
                name: str = "run", tokenizer_kind: str = "word", tokenizer: Tokenizer | None = None,
                base: BaseModel | None = None, max_steps: int | None = None, task: str | None = None,
                chat: bool = False) -> PreparedRun:
    """Corpus text and settings -> a PreparedRun. With `base`, fine-tune a copy of it (its tokenizer and shape win
    over `model_config` and `tokenizer_kind`); `max_steps` refuses a run longer than that with a ConfigError.
    `tokenizer`: for a new model, one already built from this text with these settings, to use rather than build
    another (see prepare_training). `chat`: instruction-tune `base` on `text`, conversations as JSON lines
    (cutellm.chat: the chat tokens are added, and the loss counts the assistant's answers only)."""
    if base is not None and tokenizer is not None:
        raise ValueError("a fine-tuned model keeps its base's tokenizer: pass either `base` or `tokenizer`")
    if chat and base is None:
        raise ConfigError("instruction tuning starts from a trained model: choose the model to tune")
    words = corpus_words(text)   # what Fill the blanks tries in a blank, whatever the tokenizer
    if chat:
        model, tokenizer, dataset = prepare_sft(text, corpus_name, base.model, base.tokenizer, train_config)
        lineage_meta = {"base_model": base.name, "previous_runs": lineage(base.meta), "chat": True}
        words = list(base.meta.get("words") or [])   # conversations teach a format, not new words to fill in
    elif base is None:
        model, tokenizer, dataset = prepare_training(text, model_config, train_config, tokenizer_kind=tokenizer_kind,
                                                     tokenizer=tokenizer)
        lineage_meta: dict[str, Any] = {}
    else:
        model, tokenizer, dataset = prepare_finetuning(text, base.model, base.tokenizer, train_config)
        lineage_meta = {"base_model": base.name, "previous_runs": lineage(base.meta)}
        words = merge_words(base.meta.get("words"), words)
    run = PreparedRun(name=name, model=model, tokenizer=tokenizer, dataset=dataset, config=train_config,
                      metadata={"name": name, "corpus": corpus_name, "corpus_sha1": corpus_fingerprint(text),
                                "tokenizer_kind": tokenizer.kind, "train_config": train_config.to_dict(),
                                **lineage_meta, "words": words, **({"task": task} if task else {})})
    if max_steps is not None and run.total_steps > max_steps:
        raise ConfigError(f"that is {run.total_steps:,} steps; the playground trains at most {max_steps:,}. "
                          "Use fewer epochs or a larger batch.")
    return run


def corpus_fingerprint(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


# Metadata that describes a saved file rather than its run: a resumed run writes them afresh.
_FILE_KEYS = ("saved_at", "parameters", "resumable")


def resume_run(text: str, corpus_name: str, model: CuteLLM, tokenizer: Tokenizer, meta: Mapping[str, Any]
               ) -> PreparedRun:
    """The run a resumable checkpoint stopped in, ready to continue (`train(..., resume=state)`): its own model,
    tokenizer and settings, and the same corpus (refused when the text differs from the one it trained on)."""
    if meta.get("corpus_sha1") and meta["corpus_sha1"] != corpus_fingerprint(text):
        raise ConfigError(f"this run trained on {meta.get('corpus')!r}, and {corpus_name!r} is a different text: "
                          "resume it with the same corpus (--corpus)")
    config = TrainConfig.from_dict(meta.get("train_config", {}))
    if meta.get("chat"):
        dataset = chat_dataset(parse_conversations(text, corpus_name), tokenizer, model.config.block_size,
                               val_fraction=config.val_fraction, name=corpus_name)
    else:
        dataset = prepare_dataset(text, tokenizer, model.config.block_size, stride=config.stride,
                                  val_fraction=config.val_fraction)
    model.requires_grad_(True)
    metadata = {k: v for k, v in meta.items() if k not in _FILE_KEYS}
    return PreparedRun(name=str(meta.get("name", "run")), model=model, tokenizer=tokenizer, dataset=dataset,
                       config=config, metadata=metadata)


# What a checkpoint keeps of each earlier run when a model is fine-tuned from it.
RUN_KEYS = ("corpus", "tokenizer_kind", "steps", "status", "final_train_loss", "final_val_loss",
            "final_val_bits_per_char", "val_tokens_per_char", "train_tokens_per_char", "wall_time_s", "tokens_per_s",
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
        """(step, training loss, validation loss or None) per step, in nats per token."""
        return [(int(s), float(t), None if v is None else float(v)) for s, t, v in self.meta.get("loss_curve", [])]

    @property
    def curve_in_bits_per_char(self) -> list[tuple[int, float, float | None]]:
        """`curve` in bits per character of the training and validation text; empty when the run did not record its
        tokens per character (runs saved before CuteGPT measured them)."""
        train, val = self.meta.get("train_tokens_per_char"), self.meta.get("val_tokens_per_char")
        if not train or not val:
            return []
        return [(s, bits_per_char(t, train), bits_per_char(v, val)) for s, t, v in self.curve]

    @property
    def tokenizer(self) -> str | None:
        return self.meta.get("tokenizer_kind")

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
            # The block's design (checkpoints from before these options hold today's defaults).
            "positions": mc.get("positions", "learned"),
            "norm": mc.get("norm", "layernorm"),
            "mlp": mc.get("mlp", "gelu"),
            "tied head": mc.get("tie_weights", True),
            # The windows per optimiser step (accumulation and processes included) when recorded, else batch_size.
            "batch": m.get("global_batch_size") or tc.get("batch_size"),
            "learning rate": tc.get("learning_rate"),
            "seed": tc.get("seed"),
            "steps": m.get("steps"),
            "train loss": _round(m.get("final_train_loss")),
            "val loss": _round(m.get("final_val_loss")),
            "val bits/char": _round(m.get("final_val_bits_per_char")),
            "time (s)": _round(m.get("wall_time_s"), 1),
            "tokens/s": _round(m.get("tokens_per_s"), 0),
            "status": m.get("status", "finished"),
        }


def _round(value, digits: int = 3):
    return None if value is None else round(float(value), digits)


def runs_table(runs: list[Run]) -> pd.DataFrame:
    """One row per run: its settings and results."""
    import pandas as pd   # here, not at the top: the CLI's `train` never needs it (0.3 s of every start)

    return pd.DataFrame([r.row() for r in runs])


# The columns of runs_table that are a run's settings (the rest are its results).
SETTING_COLUMNS = ("corpus", "fine-tuned from", "tokenizer", "vocab", "d_model", "heads", "layers", "context",
                   "dropout", "causal", "positions", "norm", "mlp", "tied head", "batch", "learning rate", "seed")


def distinguishing_labels(runs: list[Run]) -> list[str]:
    """Each run's name followed by the settings that set it apart from the others ("run-2 · norm rmsnorm, seed 2"),
    so a chart's legend says what differs."""
    table = runs_table(runs)
    columns = [c for c in differing_columns(table) if c in SETTING_COLUMNS]
    return [run.name + (" · " + ", ".join(f"{c} {row[c]}" for c in columns) if columns else "")
            for run, (_, row) in zip(runs, table.iterrows())]


def differing_columns(table: pd.DataFrame) -> list[str]:
    """Columns whose values are not all the same (what distinguishes the runs), the run name excluded."""
    if len(table) < 2:
        return []
    return [c for c in table.columns if c != "run" and table[c].astype(str).nunique(dropna=False) > 1]
