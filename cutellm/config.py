"""Model and training settings: typed dataclasses, their defaults, `.env` overrides and logging setup.

Defaults follow the original CuteGPT (vocab 1000, d_model 128, 4 heads, 2 layers, batch 8, sequence length 20),
with the epochs and learning rate tuned so the shipped model is good (see README, "The shipped model").
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _require(ok: bool, name: str, message: str, related: tuple[str, ...] = ()) -> None:
    if not ok:
        err = ConfigError(f"{name}: {message}")
        err.fields = (name, *related)  # lets the .env loader name the variable instead of the field
        raise err


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a CuteLLM. `block_size` is the longest context the model reads (the sequence length)."""

    vocab_size: int = 1000
    d_model: int = 128
    n_heads: int = 4
    n_layers: int = 2
    block_size: int = 20
    dropout: float = 0.1
    # False trains a model that can see the future: only for the "why causality matters" experiment.
    causal: bool = True

    def __post_init__(self) -> None:
        _require(isinstance(self.vocab_size, int) and self.vocab_size >= 4, "vocab_size",
                 f"must be a whole number of at least 4 (3 special tokens + 1 word), got {self.vocab_size!r}")
        _require(isinstance(self.n_heads, int) and self.n_heads >= 1, "n_heads",
                 f"must be a whole number >= 1, got {self.n_heads!r}")
        _require(isinstance(self.d_model, int) and self.d_model >= 1, "d_model",
                 f"must be a whole number >= 1, got {self.d_model!r}")
        _require(self.d_model % self.n_heads == 0, "d_model",
                 f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads}) so every head gets "
                 f"the same width; try {self.n_heads * max(1, round(self.d_model / self.n_heads))}",
                 related=("n_heads",))
        _require(isinstance(self.n_layers, int) and self.n_layers >= 1, "n_layers",
                 f"must be a whole number >= 1 (a model needs at least one transformer block), got {self.n_layers!r}")
        _require(isinstance(self.block_size, int) and self.block_size >= 2, "block_size",
                 f"must be a whole number >= 2, got {self.block_size!r}")
        _require(isinstance(self.dropout, (int, float)) and 0.0 <= self.dropout < 1.0, "dropout",
                 f"must be in [0, 1), got {self.dropout!r}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class TrainConfig:
    """How to train: optimisation, schedule, data windows, evaluation and reproducibility."""

    batch_size: int = 8
    epochs: int = 10
    # When set, train exactly this many optimiser steps instead of `epochs` passes over the data.
    max_steps: int | None = None
    learning_rate: float = 3e-3
    min_lr_ratio: float = 0.1          # cosine decay ends at learning_rate * min_lr_ratio
    warmup_steps: int = 100
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0
    eval_interval: int = 100           # steps between validation losses (also evaluated at the end)
    eval_batches: int | None = 20      # None evaluates the whole validation split
    val_fraction: float = 0.1
    # Windows start every `stride` tokens; None means block_size // 2 (windows overlap by half).
    stride: int | None = None
    seed: int = 1337
    device: str = "auto"
    # "auto": bf16 autocast on a CUDA GPU that supports it, fp32 everywhere else (so CPU results stay bit-for-bit
    # what they were); "bf16" asks for autocast wherever torch offers it (CUDA, and CPU, where it is slower);
    # "fp32" never casts. The weights and the optimiser always stay fp32.
    precision: str = "auto"
    # Compile the model for training with torch.compile. Off by default: on the 2-core CPU it costs ~26 s of
    # compiling and then runs no faster (bench/README.md); on a GPU it usually pays off over a long run.
    compile: bool = False
    # Micro-batches of batch_size whose gradients add up to one optimiser step: the effective batch is
    # batch_size * grad_accum_steps (times the number of processes under torchrun), without the memory of it.
    grad_accum_steps: int = 1
    num_threads: int | None = None     # None keeps torch's default
    # Copies of the weights kept along the run (the first before any step, the last at the end) for the training
    # timeline; fewer are kept when they would exceed snapshot_max_bytes.
    snapshots: int = 0
    snapshot_max_bytes: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        _require(isinstance(self.batch_size, int) and self.batch_size >= 1, "batch_size",
                 f"must be a whole number >= 1, got {self.batch_size!r}")
        _require(isinstance(self.epochs, int) and self.epochs >= 1, "epochs",
                 f"must be a whole number >= 1, got {self.epochs!r}")
        _require(self.max_steps is None or (isinstance(self.max_steps, int) and self.max_steps >= 1), "max_steps",
                 f"must be a whole number >= 1 (or unset), got {self.max_steps!r}")
        _require(isinstance(self.learning_rate, (int, float)) and 0 < self.learning_rate <= 10, "learning_rate",
                 f"must be > 0 and <= 10 (typical: 1e-4 to 1e-2), got {self.learning_rate!r}")
        _require(0 <= self.min_lr_ratio <= 1, "min_lr_ratio", f"must be in [0, 1], got {self.min_lr_ratio!r}")
        _require(isinstance(self.warmup_steps, int) and self.warmup_steps >= 0, "warmup_steps",
                 f"must be a whole number >= 0, got {self.warmup_steps!r}")
        _require(self.weight_decay >= 0, "weight_decay", f"must be >= 0, got {self.weight_decay!r}")
        _require(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "betas",
                 f"must be two numbers in [0, 1), got {self.betas!r}")
        _require(self.grad_clip >= 0, "grad_clip", f"must be >= 0 (0 turns clipping off), got {self.grad_clip!r}")
        _require(isinstance(self.eval_interval, int) and self.eval_interval >= 1, "eval_interval",
                 f"must be a whole number >= 1, got {self.eval_interval!r}")
        _require(self.eval_batches is None or (isinstance(self.eval_batches, int) and self.eval_batches >= 1),
                 "eval_batches", f"must be a whole number >= 1 (or unset for all), got {self.eval_batches!r}")
        _require(0 <= self.val_fraction < 1, "val_fraction", f"must be in [0, 1), got {self.val_fraction!r}")
        _require(self.stride is None or (isinstance(self.stride, int) and self.stride >= 1), "stride",
                 f"must be a whole number >= 1 (or unset), got {self.stride!r}")
        _require(isinstance(self.seed, int) and self.seed >= 0, "seed",
                 f"must be a whole number >= 0, got {self.seed!r}")
        _require(self.device in DEVICES, "device", f"must be one of {', '.join(DEVICES)}, got {self.device!r}")
        _require(self.precision in PRECISIONS, "precision",
                 f"must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        _require(isinstance(self.compile, bool), "compile", f"must be True or False, got {self.compile!r}")
        _require(isinstance(self.grad_accum_steps, int) and self.grad_accum_steps >= 1, "grad_accum_steps",
                 f"must be a whole number >= 1 (1 = no accumulation), got {self.grad_accum_steps!r}")
        _require(isinstance(self.snapshots, int) and self.snapshots >= 0 and self.snapshots != 1, "snapshots",
                 f"must be 0 (none) or a whole number >= 2 (the start and the end at least), got {self.snapshots!r}")
        _require(self.num_threads is None or (isinstance(self.num_threads, int) and self.num_threads >= 1),
                 "num_threads", f"must be a whole number >= 1 (or unset), got {self.num_threads!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "betas" in values:
            values["betas"] = tuple(values["betas"])
        return cls(**values)


DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")


def resolve_device(name: str = "auto", local_rank: int | None = None) -> str:
    """The one place a torch device is chosen: 'auto' picks CUDA when present, else CPU.

    `local_rank` is the process's index on its machine under torchrun (cutellm.distributed): each process then
    trains on its own GPU, 'cuda:<local_rank>'. CPU processes share the CPU.
    """
    import torch

    if name not in DEVICES:
        raise ConfigError(f"device: must be one of {', '.join(DEVICES)}, got {name!r}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' was asked for but torch sees no CUDA GPU on this machine")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("device: 'mps' was asked for but this machine has no Apple GPU available to torch")
    if name == "cuda" and local_rank is not None:
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(f"device: this process is number {local_rank} on its machine but torch sees only "
                              f"{torch.cuda.device_count()} GPU(s); start at most that many processes per machine "
                              "(torchrun --nproc_per_node)")
        return f"cuda:{local_rank}"
    return name


def available_devices() -> list[str]:
    """The device choices that work on this machine, 'auto' first: what a UI should offer (resolve_device decides)."""
    found = []
    for name in DEVICES:
        try:
            resolve_device(name)
        except ConfigError:
            continue
        found.append(name)
    return found


def resolve_precision(precision: str, device: str) -> str:
    """'fp32' or 'bf16': what training on `device` (a resolved device such as 'cuda:0') will compute in.

    'auto' is bf16 only on a CUDA GPU that supports it (Ampere and newer), where it is about twice as fast; on the
    CPU it stays fp32, so CPU runs keep their exact numbers. 'bf16' asked for explicitly also runs on the CPU.
    """
    import torch

    if precision not in PRECISIONS:
        raise ConfigError(f"precision: must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    kind = torch.device(device).type
    # Native bf16 only (compute capability 8.0+, or ROCm): older GPUs emulate it, slower than fp32.
    cuda_bf16 = kind == "cuda" and (bool(torch.version.hip)
                                    or torch.cuda.get_device_capability(torch.device(device))[0] >= 8)
    if precision == "auto":
        return "bf16" if cuda_bf16 else "fp32"
    if precision == "bf16" and kind == "cuda" and not cuda_bf16:
        raise ConfigError("precision: this GPU does not support bf16 (it needs an Ampere or newer NVIDIA GPU); "
                          "use --precision fp32")
    if precision == "bf16" and kind not in ("cuda", "cpu"):
        raise ConfigError(f"precision: bf16 autocast is supported on cuda and cpu, not on {kind}; "
                          "use --precision fp32")
    return precision


@dataclass(frozen=True)
class Settings:
    """Everything `.env` can set: the model shape, the training recipe and the log level."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    log_level: str = "INFO"


# Environment variable -> (section, field, parser). One table, so docs, parsing and errors agree.
ENV_VARS: dict[str, tuple[str, str, type]] = {
    "MODEL_VOCAB_SIZE": ("model", "vocab_size", int),
    "MODEL_D_MODEL": ("model", "d_model", int),
    "MODEL_N_HEADS": ("model", "n_heads", int),
    "MODEL_N_LAYERS": ("model", "n_layers", int),
    "MODEL_DROPOUT": ("model", "dropout", float),
    "TRAINING_BATCH_SIZE": ("train", "batch_size", int),
    "TRAINING_SEQ_LENGTH": ("model", "block_size", int),
    "TRAINING_EPOCHS": ("train", "epochs", int),
    "TRAINING_LEARNING_RATE": ("train", "learning_rate", float),
    "TRAINING_SEED": ("train", "seed", int),
    "TRAINING_DEVICE": ("train", "device", str),
    "TRAINING_PRECISION": ("train", "precision", str),
    "TRAINING_GRAD_ACCUM_STEPS": ("train", "grad_accum_steps", int),
}


def _parse(var: str, raw: str, kind: type) -> Any:
    text = raw.strip()
    try:
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
    except ValueError:
        raise ConfigError(f"{var}={raw!r}: expected {'a whole number' if kind is int else 'a number'}") from None
    return text


def load_settings(env_file: str | os.PathLike | None = ".env",
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Defaults, overridden by `env_file` (if it exists), overridden by the process environment.

    Reads without touching `os.environ`. Any invalid value raises ConfigError naming the variable.
    """
    from dotenv import dotenv_values

    values: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update({k: v for k, v in (os.environ if environ is None else environ).items()
                   if k in ENV_VARS or k == "LOG_LEVEL"})

    overrides: dict[str, dict[str, Any]] = {"model": {}, "train": {}}
    for var, (section, name, kind) in ENV_VARS.items():
        if var in values and values[var].strip() != "":
            overrides[section][name] = _parse(var, values[var], kind)

    log_level = values.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL={values['LOG_LEVEL']!r}: must be one of {', '.join(LOG_LEVELS)}")

    var_of = {(s, n): v for v, (s, n, _) in ENV_VARS.items()}
    try:
        model = replace(ModelConfig(), **overrides["model"])
        train = replace(TrainConfig(), **overrides["train"])
    except ConfigError as err:
        for name in getattr(err, "fields", ()):
            for section in ("model", "train"):
                var = var_of.get((section, name))
                if var and var in values:
                    raise ConfigError(f"{var}={values[var]!r}: {err}") from None
        raise
    return Settings(model=model, train=train, log_level=log_level)


def setup_logging(level: str = "INFO") -> None:
    """Configure the 'cutellm' logger for the CLI and the app. Importing cutellm never calls this."""
    logger = logging.getLogger("cutellm")
    logger.setLevel(level.upper())
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
