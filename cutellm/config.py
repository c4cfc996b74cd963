"""Model and training settings: typed dataclasses, their defaults and the valid range of every number.

The model's shape is the original CuteGPT's (vocab 1000, d_model 128, 4 heads, 2 layers, sequence length 20). The
recipe is ours: batches of 32 for 6 epochs at a learning rate of 4e-3 with weight decay 0.5 reach the validation loss that the original's
batches of 8 for 10 epochs reached, in well under half the time (README, "The shipped model"; bench/README.md).
The valid range, help, `.env` variable, CLI flag and widget of each user-facing field live in `options.py`, which
generates their checks here (`check_options`); the defaults stay in the fields below. Device and precision choice
live in `devices.py`; `.env` overrides and logging in `settings.py`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from .errors import ConfigError
from .options import OPTIONS, Option, field_type, options_of

def _require(ok: bool, name: str, message: str, related: tuple[str, ...] = ()) -> None:
    if not ok:
        err = ConfigError(f"{name}: {message}")
        err.fields = (name, *related)  # lets the .env loader name the variable instead of the field
        raise err


def _check_range(obj: Any, name: str, low: float, high: float | None = None, whole: bool = True,
                 optional: bool = False, note: str = "") -> None:
    """`obj.name` is a number in [low, high] (a whole number when `whole`; None allowed when `optional`)."""
    value = getattr(obj, name)
    if optional and value is None:
        return
    kind = (int,) if whole else (int, float)
    ok = isinstance(value, kind) and not isinstance(value, bool) and value >= low and (high is None or value <= high)
    what = "a whole number" if whole else "a number"
    span = f">= {low:g}" if high is None else f">= {low:g} and <= {high:g}"
    _require(ok, name, f"must be {what} {span}{note}{' (or unset)' if optional else ''}, got {value!r}")


def check_options(obj: Any, section: str, options: tuple[Option, ...] = OPTIONS) -> None:
    """Check every field of `obj` that has an Option in `section`: its range, its choices, or that it is a bool."""
    for option in options_of(section, options):
        kind, optional = field_type(type(obj), option.name)
        value = getattr(obj, option.name)
        if option.choices:
            _require(value in option.choices, option.name,
                     f"must be one of {', '.join(option.choices)}, got {value!r}")
        elif kind is bool:
            _require(isinstance(value, bool), option.name, f"must be True or False, got {value!r}")
        elif option.low is not None:  # a number with a range
            _check_range(obj, option.name, option.low, option.high, whole=kind is int, optional=optional,
                         note=option.note)


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
    # The block's design. The defaults are GPT-2's (and every checkpoint saved before these fields existed);
    # "rope" + "rmsnorm" + "swiglu" is Llama's. model.py explains each choice.
    positions: str = "learned"   # learned: a table of position vectors | rope: rotate queries and keys | none
    norm: str = "layernorm"      # layernorm | rmsnorm
    mlp: str = "gelu"            # gelu | swiglu
    tie_weights: bool = True     # the LM head reuses the token embedding matrix

    def __post_init__(self) -> None:
        check_options(self, "model")  # ranges from options.OPTIONS
        _require(self.d_model % self.n_heads == 0, "d_model",
                 f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads}) so every head gets "
                 f"the same width; try {self.n_heads * max(1, round(self.d_model / self.n_heads))}",
                 related=("n_heads",))
        if self.positions == "rope":
            even = [d for d in range(2 * self.n_heads, 2 * self.d_model + 1, 2 * self.n_heads)]
            _require(self.head_dim % 2 == 0, "positions",
                     f"RoPE rotates pairs of numbers in each head, so the head size (d_model / n_heads = "
                     f"{self.d_model} / {self.n_heads} = {self.head_dim}) must be even; try d_model "
                     f"{min(even, key=lambda d: abs(d - self.d_model))}", related=("d_model", "n_heads"))

    @property
    def is_gpt2_block(self) -> bool:
        """Learned positions, LayerNorm and a GELU MLP: the block of GPT-2 (and of every shipped model)."""
        return (self.positions, self.norm, self.mlp) == ("learned", "layernorm", "gelu")

    @property
    def block_design(self) -> str:
        """The block in words: "GPT-2 block", "Llama-style block", or GPT-2's with the parts that differ."""
        if (self.positions, self.norm, self.mlp) == ("rope", "rmsnorm", "swiglu"):
            words = "Llama-style block"
        else:
            changed = [name for differs, name in ((self.positions == "rope", "RoPE"),
                                                  (self.positions == "none", "no positions"),
                                                  (self.norm == "rmsnorm", "RMSNorm"), (self.mlp == "swiglu", "SwiGLU"))
                       if differs]
            words = "GPT-2 block" + (f" with {', '.join(changed)}" if changed else "")
        return words + ("" if self.tie_weights else ", untied head")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def mlp_width(self) -> int:
        """Width of each block's MLP hidden layer: GPT-2's 4 x d_model; for SwiGLU, which has three matrices
        instead of two, 2/3 of that, so the MLP keeps about the same number of parameters (as Llama does)."""
        return 4 * self.d_model if self.mlp == "gelu" else round(8 * self.d_model / 3)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class TrainConfig:
    """How to train: optimisation, schedule, data windows, evaluation and reproducibility."""

    batch_size: int = 32
    epochs: int = 6
    # When set, train exactly this many optimiser steps instead of `epochs` passes over the data.
    max_steps: int | None = None
    learning_rate: float = 4e-3
    min_lr_ratio: float = 0.1          # cosine decay ends at learning_rate * min_lr_ratio
    warmup_steps: int = 100
    # Stronger than GPT-2's 0.1: 57k tokens overfit fast (train 2.5 vs val 3.1), and 0.5 gave 3.095-3.101 over
    # three seeds where 0.1 gave 3.127-3.136 (README, "Why these defaults").
    weight_decay: float = 0.5
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0
    # Steps between validation losses (the last step is always evaluated); None: about 40 per run
    # (training.EVALS_PER_RUN), enough points for a loss chart at little cost.
    eval_interval: int | None = None
    # Batches of batch_size windows per periodic validation (None: the whole split): 5 x 32 = 160 windows, as many
    # as the original recipe's 20 x 8. Reading the whole split 40 times would cost a quarter of a 6-epoch run.
    eval_batches: int | None = 5
    val_fraction: float = 0.1
    # Windows start every `stride` tokens; None means block_size // 2 (windows overlap by half).
    stride: int | None = None
    seed: int = 1337
    device: str = "auto"
    # "auto": bf16 autocast where the hardware multiplies bf16 natively (a CUDA GPU from Ampere on, a CPU with
    # AVX512-BF16 or AMX), fp32 everywhere else (devices.resolve_precision); "bf16" asks for autocast wherever torch
    # offers it (CUDA, and any CPU, where without those instructions it is slower); "fp32" never casts. The weights
    # and the optimiser always stay fp32.
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
        check_options(self, "train")  # ranges and choices from options.OPTIONS; the fixed fields below
        _check_range(self, "warmup_steps", low=0)
        _check_range(self, "eval_batches", low=1, optional=True)
        _require(0 <= self.min_lr_ratio <= 1, "min_lr_ratio", f"must be in [0, 1], got {self.min_lr_ratio!r}")
        _require(self.weight_decay >= 0, "weight_decay", f"must be >= 0, got {self.weight_decay!r}")
        _require(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "betas",
                 f"must be two numbers in [0, 1), got {self.betas!r}")
        _require(self.grad_clip >= 0, "grad_clip", f"must be >= 0 (0 turns clipping off), got {self.grad_clip!r}")
        _require(0 <= self.val_fraction < 1, "val_fraction", f"must be in [0, 1), got {self.val_fraction!r}")
        _require(isinstance(self.snapshots, int) and self.snapshots >= 0 and self.snapshots != 1, "snapshots",
                 f"must be 0 (none) or a whole number >= 2 (the start and the end at least), got {self.snapshots!r}")

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
