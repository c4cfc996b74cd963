"""The Train page's presets, as data: each fills in the same settings (by their Option name) in one click."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from .config import ModelConfig, TrainConfig
from .options import OPTION
from .settings import Settings
from .tasks import Task

# What a preset sets: the model, the tokenizer and the recipe, not the machine (device, precision, compile, gradient
# accumulation stay as the user chose them).
PRESET_SETTINGS = ("tokenizer", "vocab_size", "d_model", "n_heads", "n_layers", "block_size", "dropout", "positions",
                   "norm", "mlp", "tie_weights", "batch_size", "epochs", "max_steps", "learning_rate", "seed")
GPT2_BLOCK = dict(positions="learned", norm="layernorm", mlp="gelu", tie_weights=True)
# Llama's choices for the three parts GPT-2 and Llama differ in at this size (the head stays tied, as in small Llamas).
LLAMA_BLOCK = dict(positions="rope", norm="rmsnorm", mlp="swiglu", tie_weights=True)


@dataclass(frozen=True)
class Preset:
    # What it is, never how long it takes: that depends on the machine, and the preview measures it here.
    help: str
    values: Mapping[str, Any]   # setting name -> value, for every name in PRESET_SETTINGS
    # Which of `epochs` and `max_steps` sets the run's length ("epochs" or "steps"); the other is kept for when the
    # user switches.
    train_for: str = "epochs"

    def applied_to(self, settings: Settings) -> Settings:
        """`settings` with this preset's values in place (the machine's settings stay): `train --preset`."""
        def fields(cls: type) -> dict[str, Any]:
            return {k: v for k, v in self.values.items() if k in {f.name for f in dataclasses.fields(cls)}}
        train = fields(TrainConfig)
        if self.train_for == "epochs":
            train["max_steps"] = None
        return dataclasses.replace(settings, model=dataclasses.replace(settings.model, **fields(ModelConfig)),
                                   train=dataclasses.replace(settings.train, **train),
                                   tokenizer=self.values["tokenizer"])

    def configs(self, **model: Any) -> tuple[ModelConfig, TrainConfig]:
        """The model and training configs this preset describes (`model` fields given on top); the settings it does
        not hold (the tokenizer, the machine's) are the configs' own."""
        def fields(cls: type) -> dict[str, Any]:
            return {k: v for k, v in self.values.items() if k in {f.name for f in dataclasses.fields(cls)}}
        train = fields(TrainConfig)
        if self.train_for == "epochs":
            train["max_steps"] = None
        return ModelConfig(**{**fields(ModelConfig), **model}), TrainConfig(**train)


TINY = Preset("a 1-layer model, 300 steps: the quickest", train_for="steps", values=dict(
    tokenizer="word", vocab_size=500, d_model=64, n_heads=4, n_layers=1, block_size=16, dropout=0.0, **GPT2_BLOCK,
    batch_size=16, epochs=1, max_steps=300, learning_rate=5e-3, seed=1337))
BIGGER = Preset("4 layers, wider, longer context: the slowest", values=dict(
    tokenizer="word", vocab_size=2000, d_model=192, n_heads=6, n_layers=4, block_size=32, dropout=0.1, **GPT2_BLOCK,
    batch_size=16, epochs=10, max_steps=5000, learning_rate=2e-3, seed=1337))
# Chat needs a longer context than the default 20 tokens (a question and its answer are ~20-50 words) and a vocabulary
# that holds the whole corpus (every word of the bundled conversations is one of its words). Pretrained on the corpus,
# then instruction-tuned (cutellm.chat): `make run-chat`.
CHAT = Preset("context of 64 tokens for conversations: the base of the chat model (make run-chat)", values=dict(
    tokenizer="word", vocab_size=2100, d_model=128, n_heads=4, n_layers=2, block_size=64, dropout=0.1,
    **{**GPT2_BLOCK, "positions": "rope"}, batch_size=32, epochs=6, max_steps=330, learning_rate=4e-3, seed=1337))
DEFAULT_STEPS = 1000  # the default preset's steps, for when the user switches from epochs (the CLI has no default)


def presets(settings: Settings) -> dict[str, Preset]:
    """'tiny & fast', 'default' (the CLI's defaults with `.env`, so `make run` and the app agree), 'Llama-style'
    (the default with Llama's block), 'bigger' and 'chat' (a longer context, for instruction tuning)."""
    default = {name: settings.value(OPTION[name]) for name in PRESET_SETTINGS}
    if default["max_steps"] is None:
        default["max_steps"] = DEFAULT_STEPS
    train_for = "epochs" if settings.train.max_steps is None else "steps"
    return {"tiny & fast": TINY,
            "default": Preset("the shipped model's recipe (make run)", default,
                              train_for=train_for),
            "Llama-style": Preset("the default's size and recipe with Llama's block: RoPE, RMSNorm, SwiGLU",
                                  {**default, **LLAMA_BLOCK}, train_for=train_for),
            "bigger": BIGGER, "chat": CHAT}


# `python -m cutellm train --preset NAME`: the presets' names without spaces.
CLI_NAMES = {"tiny": "tiny & fast", "default": "default", "llama": "Llama-style", "bigger": "bigger", "chat": "chat"}


def task_preset(task: Task) -> Preset:
    """The settings a toy task's run starts from on the Train page: `train --task`'s preset (cutellm.tasks)."""
    model, train = task.preset()
    return Preset(task.description, train_for="steps", values=dict(
        tokenizer="char", vocab_size=TINY.values["vocab_size"], **{**GPT2_BLOCK, **model}, epochs=1, seed=1337,
        **train))
