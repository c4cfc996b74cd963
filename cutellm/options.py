"""Every setting a user can change, declared once: its bounds, help, `.env` variable, CLI flag and Train-page widget.

One `Option` per setting; the rest is generated from `OPTIONS`:

- the range and choice checks of `ModelConfig` / `TrainConfig` (config.py, `check_options`),
- the `.env` variables (settings.py, `ENV_VARS`),
- the flags of `python -m cutellm train` (__main__.py, `add_option_flags`),
- the Train page's widgets and how they fill the configs (ui/train/settings_form.py).

Defaults and types stay in the dataclass fields (`vocab_size: int = 1000` in config.py; `tokenizer: str = "word"` in
settings.py), next to the comments that justify them: an `Option` never repeats them, and `field_type` reads the type
from the annotation. So adding a setting takes its field (name, type, default) and one `Option` here, plus the code
that uses it. A field with no `Option` is listed in `NOT_USER_FACING` with the reason.

The CLI and the page have a help text each: a terse one for `--help`, a longer one for a beginner on the page.
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Mapping, Union, get_args, get_origin, get_type_hints

from .devices import DEVICES, PRECISIONS
from .tokenizer import TOKENIZER_KINDS

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# The most optimiser steps an interactive run (the app) may take: beyond this a 2-core machine trains for hours.
# The Steps widget stops there, and lab.runs.prepare_run refuses more.
MAX_INTERACTIVE_STEPS = 50_000

WIDGET_KINDS = ("number", "select", "radio", "checkbox")


@dataclass(frozen=True)
class Widget:
    """How the Train page shows a setting. `key` is its session-state key (tests and presets use it)."""

    kind: str                      # one of WIDGET_KINDS
    key: str
    label: str
    help: str
    top: float | None = None       # a number's playground cap when its valid range is open-ended (or too wide)
    step: float | None = None      # a number's +/- step
    format: str | None = None      # a number's printf format, e.g. "%.4f"
    labels: Mapping[str, str] = field(default_factory=dict)  # a choice's shown name, when not the value itself


@dataclass(frozen=True)
class Option:
    """One setting: the field `name` of the `section` dataclass ("model": ModelConfig, "train": TrainConfig,
    "settings": Settings), with everything the CLI, `.env` and the page need to offer it."""

    name: str
    section: str
    help: str                      # the CLI's --help text
    flag: str | None = None        # e.g. "--vocab-size"; None: not on the command line
    metavar: str | None = None     # the flag's placeholder in --help (default: the flag's name in capitals)
    env: str | None = None         # e.g. "MODEL_VOCAB_SIZE"; None: not read from .env
    widget: Widget | None = None   # None: not on the Train page
    low: float | None = None       # a number's valid range, inclusive (a range needs its low end)
    high: float | None = None      # None: no upper bound
    note: str = ""                 # said after the range when a value is out of it
    choices: tuple[str, ...] = ()  # the valid values of a text setting
    # Why the setting is missing from the CLI, .env or the page; empty when it is on all three.
    partial: str = ""

    @property
    def surfaces(self) -> tuple[str, ...]:
        """Where a user can set it: a subset of ("cli", ".env", "page")."""
        return tuple(s for s, on in (("cli", self.flag), (".env", self.env), ("page", self.widget)) if on)


def _number(key: str, label: str, help: str, top: float | None = None, step: float = 1, **kw: Any) -> Widget:
    return Widget("number", key, label, help, top=top, step=step, **kw)


OPTIONS: tuple[Option, ...] = (
    Option("tokenizer", "settings", flag="--tokenizer", env="MODEL_TOKENIZER", choices=TOKENIZER_KINDS,
           help="word: one token per word (unknown words become <unk>); char: one per character; bpe: byte-level "
                "subwords learned from the corpus, no <unk> (default: MODEL_TOKENIZER from .env, else word)",
           widget=Widget("radio", "tr_tokenizer", "Tokenizer", labels={"word": "word", "char": "char",
                                                                       "bpe": "BPE (subwords)"},
                         help="**word**: one token per word or punctuation mark, lower-cased; a word outside the "
                              "vocabulary becomes `<unk>`, so the model can never say it. **char**: one token per "
                              "character: tiny vocabulary, long sequences. **BPE** (byte-pair encoding, what real "
                              "language models use): starts from the 256 byte values and merges the most frequent "
                              "pairs into subwords (`·the`, `ing`) until the vocabulary is full. Any text is made "
                              "of bytes, so BPE has no `<unk>`: a new word is spelled from pieces.")),
    Option("vocab_size", "model", flag="--vocab-size", env="MODEL_VOCAB_SIZE", low=4,  # 3 special tokens + 1 word
           help="vocabulary size: the most frequent words kept (word), or bytes + merges (bpe, at least 260)",
           widget=_number("tr_vocab", "Vocabulary size", top=20_000, step=100,
                          help="Word: keep the most frequent words; the rest become <unk>. BPE: the 256 byte values "
                               "plus merges learned from the corpus, so at least 260.")),
    Option("d_model", "model", flag="--d-model", env="MODEL_D_MODEL", low=1, help="embedding width",
           widget=_number("tr_d_model", "d_model (width)", top=512, step=16,
                          help="Size of each token's vector. Must be divisible by the number of heads.")),
    Option("n_heads", "model", flag="--n-heads", env="MODEL_N_HEADS", low=1, help="attention heads per layer",
           widget=_number("tr_heads", "Attention heads", top=16, help="Parallel attention patterns per layer.")),
    Option("n_layers", "model", flag="--n-layers", env="MODEL_N_LAYERS", low=1,  # at least one transformer block
           help="transformer blocks",
           widget=_number("tr_layers", "Layers", top=12, help="Transformer blocks stacked.")),
    # The variable keeps the original CuteGPT's name for the context length.
    Option("block_size", "model", flag="--block-size", env="TRAINING_SEQ_LENGTH", low=2,
           help="context length in tokens",
           widget=_number("tr_block", "Block size (context)", top=256, step=4,
                          help="How many tokens the model reads at once.")),
    Option("dropout", "model", flag="--dropout", env="MODEL_DROPOUT", low=0.0, high=0.9,
           help="dropout probability",
           widget=_number("tr_dropout", "Dropout", step=0.05,
                          help="Randomly zeroes activations while training, against overfitting.")),
    # The block's design (GPT-2's by default; the Llama-style preset sets rope, rmsnorm and swiglu).
    Option("positions", "model", flag="--positions", env="MODEL_POSITIONS", choices=("learned", "rope", "none"),
           help="how the model knows word order: learned (GPT-2: a table of position vectors), rope (Llama: "
                "queries and keys rotated by position), none",
           widget=Widget("select", "tr_positions", "Positions",
                         labels={"learned": "learned table (GPT-2)", "rope": "RoPE (Llama)", "none": "none"},
                         help="**learned**: a vector per position, added to each token's vector. **RoPE**: each "
                              "head's queries and keys are rotated by an angle that grows with the position, so "
                              "attention sees how far apart two tokens are. **none**: no position at all; only "
                              "the causal mask hints at order.")),
    Option("norm", "model", flag="--norm", env="MODEL_NORM", choices=("layernorm", "rmsnorm"),
           help="layernorm (GPT-2) or rmsnorm (Llama: no centring, one statistic instead of two)",
           widget=Widget("radio", "tr_norm", "Normalisation", labels={"layernorm": "LayerNorm", "rmsnorm": "RMSNorm"},
                         help="Rescales each token's vector before attention and the MLP. **LayerNorm** subtracts "
                              "the mean and divides by the spread; **RMSNorm** only divides by the root mean "
                              "square: a little cheaper, and in practice as good.")),
    Option("mlp", "model", flag="--mlp", env="MODEL_MLP", choices=("gelu", "swiglu"),
           help="gelu (GPT-2: widen 4x, GELU, project back) or swiglu (Llama: a gated MLP, 2/3 as wide, about "
                "the same parameters)",
           widget=Widget("radio", "tr_mlp", "MLP", labels={"gelu": "GELU", "swiglu": "SwiGLU"},
                         help="**GELU**: widen to 4 × d_model, bend with GELU, project back. **SwiGLU**: two "
                              "products of 2/3 that width; one, through SiLU, gates the other. About the same "
                              "number of parameters.")),
    Option("tie_weights", "model", flag="--tie-weights", env="MODEL_TIE_WEIGHTS",
           help="the LM head reuses the token embedding matrix (default; --no-tie-weights gives it its own)",
           widget=Widget("checkbox", "tr_tie", "Tie the LM head to the embeddings",
                         help="Reading a token and writing one share one matrix: fewer parameters, and on small "
                              "data usually a lower loss. Untied, the head has a matrix of its own.")),
    Option("batch_size", "train", flag="--batch-size", env="TRAINING_BATCH_SIZE", low=1,
           help="windows per micro-batch in each process (an optimiser step reads batch size x --grad-accum x "
                "processes)",
           widget=_number("tr_batch", "Batch size", top=512, step=4,
                          help="Windows per batch; one optimisation step reads batch size × gradient accumulation "
                               "windows.")),
    Option("epochs", "train", flag="--epochs", env="TRAINING_EPOCHS", low=1,
           help="passes over the training windows",
           widget=_number("tr_epochs", "Epochs", top=200, help="Passes over the whole corpus.")),
    Option("max_steps", "train", flag="--steps", low=1,
           help="train exactly this many steps (overrides --epochs)",
           widget=_number("tr_steps", "Steps", top=MAX_INTERACTIVE_STEPS, step=100, help="Optimisation steps."),
           partial=".env: a run's length is set by TRAINING_EPOCHS; steps are a per-run choice"),
    Option("learning_rate", "train", flag="--lr", env="TRAINING_LEARNING_RATE", low=1e-6, high=10.0,
           note=" (a step size > 0; typical: 1e-4 to 1e-2)", help="peak learning rate",
           widget=_number("tr_lr", "Learning rate", step=1e-3, format="%.4f",
                          help="Peak step size (AdamW, warmup then cosine decay). 1e-3 to 5e-3 suits small models; "
                               "far higher values make training diverge.")),
    Option("seed", "train", flag="--seed", env="TRAINING_SEED", low=0, high=2**31 - 1,
           help="random seed (same seed + corpus -> same model)",
           widget=_number("tr_seed", "Seed", help="Same seed + same settings = same model.")),
    Option("device", "train", flag="--device", env="TRAINING_DEVICE", choices=DEVICES,
           help="where to train (default: auto: a CUDA GPU when there is one, else the CPU)",
           widget=Widget("select", "tr_device", "Device",
                         help="auto picks a CUDA GPU when there is one, else the CPU. Only devices this machine has "
                              "are listed.")),
    Option("precision", "train", flag="--precision", env="TRAINING_PRECISION", choices=PRECISIONS,
           help="auto (default): bf16 autocast where the hardware has bf16 (a CUDA GPU from Ampere on, a CPU with "
                "AVX512-BF16 or AMX), fp32 elsewhere; bf16: autocast on CUDA or any CPU; fp32: never cast",
           widget=Widget("select", "tr_precision", "Precision",
                         help="auto: bf16 mixed precision where the hardware has it (a recent GPU, or a CPU with bf16 "
                              "instructions), which is faster there; fp32 elsewhere. The weights always stay fp32.")),
    Option("compile", "train", flag="--compile",
           help="compile the model with torch.compile (pays off on GPUs over long runs; not on a small CPU, see "
                "bench/README.md)",
           widget=Widget("checkbox", "tr_compile", "Compile (torch.compile)",
                         help="Compiles the model before the first step. Pays off on a GPU over long runs; on a "
                              "small CPU it costs about half a minute and trains no faster."),
           partial=".env: compiling is a per-run choice for the machine at hand"),
    Option("grad_accum_steps", "train", flag="--grad-accum", metavar="N", env="TRAINING_GRAD_ACCUM_STEPS", low=1,
           help="accumulate the gradients of N micro-batches of --batch-size per optimiser step (effective batch: "
                "batch size x N x processes; default 1)",
           widget=_number("tr_accum", "Gradient accumulation", top=64,
                          help="Add up the gradients of this many batches before each optimisation step: the step "
                               "sees batch size × this many windows, with the memory of one batch.")),
    Option("num_threads", "train", flag="--threads", low=1, help="torch CPU threads",
           partial=".env and page: the machine's own business; the app shares its CPU with every session"),
    Option("stride", "train", flag="--stride", low=1,
           help="tokens between window starts (default: half the block size)",
           partial=".env and page: an advanced knob of the data windows, CLI only"),
    Option("eval_interval", "train", flag="--eval-interval", low=1, help="steps between validation losses",
           partial=".env and page: the app picks about 40 evaluations per run, CLI only"),
    Option("log_level", "settings", env="LOG_LEVEL", choices=LOG_LEVELS, help="how much the 'cutellm' logger says",
           partial="CLI and page: the log is the operator's, set once in .env"),
)

# Fields of the configs that are not offered to users, and why.
NOT_USER_FACING: dict[str, str] = {
    "causal": "the --non-causal experiment: a flag and a checkbox of their own that warn, not a setting",
    "min_lr_ratio": "part of the learning-rate schedule the README justifies; fixed",
    "warmup_steps": "part of the learning-rate schedule; fixed (checked in config.py)",
    "weight_decay": "tuned once for the shipped corpus (README, 'Why these defaults')",
    "betas": "AdamW's moments: the usual values, not a teaching knob",
    "grad_clip": "a safety net against exploding gradients, not a teaching knob",
    "eval_batches": "cost of each validation, chosen to match the original recipe (checked in config.py)",
    "val_fraction": "the 90/10 split the README describes",
    "snapshots": "set by the app for Explore's training timeline",
    "snapshot_max_bytes": "a memory cap for the timeline's weight copies",
    "model": "a section, not a setting (its fields are listed here)",
    "train": "a section, not a setting (its fields are listed here)",
}

OPTION: dict[str, Option] = {o.name: o for o in OPTIONS}


def options_of(section: str, options: tuple[Option, ...] = OPTIONS) -> tuple[Option, ...]:
    return tuple(o for o in options if o.section == section)


@cache
def field_type(cls: type, name: str) -> tuple[type, bool]:
    """(int, float, str or bool; whether None is allowed) from the annotation of `cls.name`, e.g. `int | None`."""
    hint = get_type_hints(cls)[name]
    if get_origin(hint) in (Union, types.UnionType):
        kinds = [a for a in get_args(hint) if a is not type(None)]
        return kinds[0], len(kinds) < len(get_args(hint))
    return hint, False
