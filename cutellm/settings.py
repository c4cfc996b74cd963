"""`.env` overrides of the defaults (python-dotenv) and the logging setup of the CLI and the app."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from .config import ModelConfig, TrainConfig
from .errors import ConfigError
from .tokenizer import TOKENIZER_KINDS

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class Settings:
    """Everything `.env` can set: the tokenizer, the model shape, the training recipe and the log level."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tokenizer: str = "word"
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


# Variables that set a Settings field directly rather than a config field.
OTHER_VARS = ("MODEL_TOKENIZER", "LOG_LEVEL")


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
                   if k in ENV_VARS or k in OTHER_VARS})

    overrides: dict[str, dict[str, Any]] = {"model": {}, "train": {}}
    for var, (section, name, kind) in ENV_VARS.items():
        if var in values and values[var].strip() != "":
            overrides[section][name] = _parse(var, values[var], kind)

    log_level = values.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL={values['LOG_LEVEL']!r}: must be one of {', '.join(LOG_LEVELS)}")
    tokenizer = values.get("MODEL_TOKENIZER", "word").strip().lower() or "word"
    if tokenizer not in TOKENIZER_KINDS:
        raise ConfigError(f"MODEL_TOKENIZER={values['MODEL_TOKENIZER']!r}: must be one of {', '.join(TOKENIZER_KINDS)}")

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
    return Settings(model=model, train=train, tokenizer=tokenizer, log_level=log_level)


def setup_logging(level: str = "INFO") -> None:
    """Configure the 'cutellm' logger for the CLI and the app. Importing cutellm never calls this."""
    logger = logging.getLogger("cutellm")
    logger.setLevel(level.upper())
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
