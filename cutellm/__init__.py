"""CuteGPT's core: a tiny, readable GPT you can train, sample, complete phrases with, inspect, save and load.

    from cutellm import load_checkpoint, generate, sample_generate, complete_phrase
    model, tokenizer = load_checkpoint("models/cute_llm.pth")
    generate(model, tokenizer, "the cat sat on the", max_new_tokens=10)

Importing this package configures no logging and prints nothing.
"""

import sys as _sys

from .checkpoint import load_checkpoint, read_metadata, save_checkpoint
from .completion import Completion, complete_phrase
from .config import ModelConfig, TrainConfig
from .data import load_corpus, prepare_dataset
from .devices import resolve_device
from .errors import (CheckpointError, ConfigError, CorpusError, CuteLLMError, GenerationError, PromptError,
                     TrainingBusyError, TrainingDivergedError)
from .fast.kv_cache import KVCache
from .inference import (generate, generate_ids, next_token_distribution, next_token_logits, sample_generate,
                        stream_from_ids, stream_generate)
from .lab.runs import prepare_run
from .model import CuteLLM
from .sampling import SamplingSettings, SamplingSteps, sampling_steps
from .settings import Settings, load_settings, setup_logging
from .tokenizer import CharTokenizer, SimpleWordTokenizer, build_tokenizer, tokenizer_from_dict
from .training import StepMetrics, TrainResult, prepare_finetuning, prepare_training, train

__version__ = "0.1.0"

# Modules that moved when the package split into the model (here), fast/, lab/ and views/: importing an old name
# fails at once with the new place, rather than a bare "No module named".
MOVED_MODULES = {
    **{f"cutellm.{m}": f"cutellm.lab.{m}" for m in ("bench", "estimates", "evaluation", "jobs", "model_files", "runs",
                                                   "samples")},
    **{f"cutellm.{m}": f"cutellm.views.{m}" for m in ("charts", "curve", "inspection", "live_chart", "visualize")},
    "cutellm.distributed": "cutellm.fast.distributed",
}


class _MovedModuleFinder:
    """An import hook that answers an old module name with where it lives now."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name in MOVED_MODULES:
            raise ModuleNotFoundError(f"{name} moved to {MOVED_MODULES[name]}: import it from there",
                                      name=MOVED_MODULES[name])  # not `name`: "from cutellm import x" would hide it
        return None


if not any(isinstance(f, _MovedModuleFinder) for f in _sys.meta_path):
    _sys.meta_path.append(_MovedModuleFinder())

__all__ = [
    "CharTokenizer", "CheckpointError", "Completion", "ConfigError", "CorpusError", "CuteLLM", "CuteLLMError",
    "GenerationError", "KVCache", "ModelConfig", "PromptError", "SamplingSettings", "SamplingSteps", "Settings",
    "SimpleWordTokenizer", "StepMetrics", "TrainConfig", "TrainResult", "TrainingBusyError", "TrainingDivergedError",
    "build_tokenizer", "complete_phrase", "generate", "generate_ids", "load_checkpoint", "load_corpus",
    "load_settings", "next_token_distribution", "next_token_logits", "prepare_dataset", "prepare_finetuning",
    "prepare_run", "prepare_training", "read_metadata", "resolve_device", "sample_generate", "sampling_steps",
    "save_checkpoint", "setup_logging", "stream_from_ids", "stream_generate", "tokenizer_from_dict", "train",
]
