"""`.env` overrides of the defaults (python-dotenv) and the logging setup of the CLI.

The variables and their fields come from `options.OPTIONS` (`ENV_VARS` is generated from it)."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from .config import ModelConfig, TrainConfig
from .errors import ConfigError
from .options import OPTIONS, Option, field_type


@dataclass(frozen=True)
class Settings:
    """Everything `.env` can set: the tokenizer, the model shape, the training recipe and the log level."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tokenizer: str = "word"
    log_level: str = "INFO"

    def value(self, option: Option) -> Any:
        """This Option's value here: settings.value(OPTION["d_model"]) is settings.model.d_model."""
        return getattr(self if option.section == "settings" else getattr(self, option.section), option.name)


# Where each Option's field lives (options.Option.section).
SECTIONS: dict[str, type] = {"model": ModelConfig, "train": TrainConfig, "settings": Settings}


def env_vars(options: tuple[Option, ...] = OPTIONS) -> dict[str, tuple[str, str, type]]:
    """Environment variable -> (section, field, type), for every Option with a variable."""
    return {o.env: (o.section, o.name, field_type(SECTIONS[o.section], o.name)[0]) for o in options if o.env}


# One table, so docs, parsing and errors agree: MODEL_VOCAB_SIZE -> ("model", "vocab_size", int), ...
ENV_VARS: dict[str, tuple[str, str, type]] = env_vars()

_BOOLS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


def _parse(var: str, raw: str, kind: type) -> Any:
    text = raw.strip()
    try:
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
    except ValueError:
        raise ConfigError(f"{var}={raw!r}: expected {'a whole number' if kind is int else 'a number'}") from None
    if kind is bool:
        if text.lower() not in _BOOLS:
            raise ConfigError(f"{var}={raw!r}: expected true or false")
        return _BOOLS[text.lower()]
    return text


def _choose(var: str, raw: str, choices: tuple[str, ...]) -> str:
    """A choice of Settings' own (which has no checks): read case-insensitively, as LOG_LEVEL=debug always was."""
    by_case = {c.lower(): c for c in choices}
    if raw.strip().lower() not in by_case:
        raise ConfigError(f"{var}={raw!r}: must be one of {', '.join(choices)}")
    return by_case[raw.strip().lower()]


def load_settings(env_file: str | os.PathLike | None = ".env", environ: Mapping[str, str] | None = None,
                  options: tuple[Option, ...] = OPTIONS) -> Settings:
    """Defaults, overridden by `env_file` (if it exists), overridden by the process environment.

    Reads without touching `os.environ`. Any invalid value raises ConfigError naming the variable. An empty value
    keeps the default.
    """
    from dotenv import dotenv_values

    table = env_vars(options)
    values: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update({k: v for k, v in (os.environ if environ is None else environ).items() if k in table})

    overrides: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
    choices = {o.env: o.choices for o in options if o.env}
    for var, (section, name, kind) in table.items():
        if var in values and values[var].strip() != "":
            raw = values[var]
            overrides[section][name] = _choose(var, raw, choices[var]) if section == "settings" and choices[var] \
                else _parse(var, raw, kind)

    var_of = {(s, n): v for v, (s, n, _) in table.items()}
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
    return Settings(model=model, train=train, **overrides["settings"])


class CurrentStderrHandler(logging.StreamHandler):
    """A StreamHandler that writes to sys.stderr as it is when a record arrives, not as it was when the handler was
    made: a stream swapped in for a while (pytest's capture of one test) and closed after would otherwise break
    every later record, such as a training job's relay thread reporting its end."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:   # StreamHandler.__init__ sets it; sys.stderr stays the one written to
        pass


def setup_logging(level: str = "INFO") -> None:
    """Configure the 'cutellm' logger for the CLI (the app does not call it: there only warnings and errors reach
    stderr, through Python's last-resort handler). Importing cutellm never calls this."""
    logger = logging.getLogger("cutellm")
    logger.setLevel(level.upper())
    if not logger.handlers:
        handler = CurrentStderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
