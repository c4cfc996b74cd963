"""The Train page's settings widgets, drawn from cutellm.options: each Option with a `widget` gets its label, help,
range (the Option's, capped by the widget's `top` for a 2-core playground) and session-state key from there, and
`configs()` packs the widgets' values into the configs by the same table."""

from __future__ import annotations

from typing import Any

import streamlit as st

from cutellm import ModelConfig, TrainConfig
from cutellm.chat import SFT_RECIPE
from cutellm.devices import available_devices
from cutellm.options import OPTION, OPTIONS, Option, field_type
from cutellm.presets import Preset
from cutellm.settings import SECTIONS, Settings
from ui import state
from ui.text import glossary_link

TIMELINE_SNAPSHOTS = 8  # weight copies kept per run for Explore's training timeline (capped at 64 MB)
TRAIN_FOR = {"epochs": "Epochs", "steps": "Steps"}  # Preset.train_for -> the "Train for" radio's value (tr_mode)
# The glossary term (cutellm/glossary.py) each setting's help links to.
GLOSSARY_TERMS = {"tokenizer": "token", "vocab_size": "vocabulary", "d_model": "d_model", "n_heads": "head",
                  "n_layers": "residual stream", "block_size": "context", "dropout": "dropout", "positions": "RoPE",
                  "norm": "LayerNorm", "mlp": "MLP", "tie_weights": "tied LM head", "batch_size": "batch",
                  "epochs": "epoch", "max_steps": "warmup / cosine", "learning_rate": "learning rate",
                  "precision": "bf16", "grad_accum_steps": "gradient accumulation"}


def page_options(section: str | None = None) -> tuple[Option, ...]:
    """The Options the page shows (those with a widget), of one section or all."""
    return tuple(o for o in OPTIONS if o.widget is not None and section in (None, o.section))


def preset_values(preset: Preset) -> dict[str, Any]:
    """Widget key -> value for a preset, the "Train for" choice included."""
    return {**{OPTION[name].widget.key: value for name, value in preset.values.items()},
            "tr_mode": TRAIN_FOR[preset.train_for]}


def kept_defaults(settings: Settings, default: Preset) -> dict[str, Any]:
    """First values of the widgets: the CLI's defaults (.env included), i.e. the default preset."""
    values = {o.widget.key: settings.value(o) for o in page_options()}
    values.update(preset_values(default))
    if values["tr_device"] not in available_devices():   # a .env device this machine lacks
        values["tr_device"] = "auto"
    return values


def apply_preset(presets: dict[str, Preset]) -> None:
    """on_change of the Preset box: fill in every setting the chosen preset holds."""
    apply_values(presets[st.session_state.tr_preset])


def apply_values(preset: Preset) -> None:
    for key, value in preset_values(preset).items():
        st.session_state[key] = value


def apply_sft_recipe(choice: str) -> None:
    """on_change of "Start from": choosing instruction tuning fills in the training settings of the SFT recipe
    (cutellm.chat.SFT_RECIPE, what `python -m cutellm sft` uses)."""
    if st.session_state.tr_start != choice:
        return
    for name, value in SFT_RECIPE.items():
        if name in OPTION and OPTION[name].widget is not None and value is not None:
            st.session_state[OPTION[name].widget.key] = value
    st.session_state.tr_mode = TRAIN_FOR["epochs"]


def without_widgets(values: dict[str, Any]) -> dict[str, Any]:
    """The settings of `values` that the page has no widget for (kept as given)."""
    return {k: v for k, v in values.items() if k not in OPTION or OPTION[k].widget is None}


def _range(option: Option) -> tuple[float, float]:
    top, high = option.widget.top, option.high
    return option.low, top if high is None else high if top is None else min(top, high)


def draw(name: str, container: Any = st, **kwargs: Any) -> None:
    """The widget of setting `name` in `container`; kwargs go to Streamlit (e.g. disabled=, or a select's options=
    and format_func= when they are only known at run time; help_suffix= adds a sentence to the help)."""
    option = OPTION[name]
    w = option.widget
    help_text = w.help + kwargs.pop("help_suffix", "") + (f" {glossary_link(GLOSSARY_TERMS[name])}"
                                                          if name in GLOSSARY_TERMS else "")
    if w.labels:
        kwargs.setdefault("format_func", w.labels.__getitem__)
    if w.kind == "number":
        low, high = _range(option)
        state.clamp(w.key, low, high, w.label)   # a kept value outside the range would crash the widget
        container.number_input(w.label, low, high, step=w.step, key=w.key, help=help_text, format=w.format, **kwargs)
    elif w.kind == "select":
        container.selectbox(w.label, kwargs.pop("options", option.choices), key=w.key, help=help_text, **kwargs)
    elif w.kind == "radio":
        container.radio(w.label, kwargs.pop("options", option.choices), key=w.key, horizontal=True, help=help_text,
                        **kwargs)
    elif w.kind == "checkbox":
        container.checkbox(w.label, key=w.key, help=help_text, **kwargs)
    else:
        raise ValueError(f"{name}: unknown widget kind {w.kind!r}")


def configs() -> tuple[ModelConfig, TrainConfig]:
    """The configs the widgets describe (may raise ConfigError, e.g. d_model not divisible by the heads)."""
    s = st.session_state
    values: dict[str, dict[str, Any]] = {"model": {}, "train": {}}
    for section, fields in values.items():
        for o in page_options(section):
            kind, _ = field_type(SECTIONS[section], o.name)
            fields[o.name] = kind(s[o.widget.key])   # number_input may hold 3.0 for an int
    if s.tr_mode != TRAIN_FOR["steps"]:
        values["train"]["max_steps"] = None           # train for epochs
    return (ModelConfig(**values["model"], causal=not s.tr_noncausal),
            TrainConfig(**values["train"], snapshots=TIMELINE_SNAPSHOTS))
