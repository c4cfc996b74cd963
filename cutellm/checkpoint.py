"""One file per model: weights, model config, tokenizer vocabulary and training metadata.

Files are written to a temporary file in the same folder and renamed over the target, so a crash mid-save leaves the
previous file intact. They are read with `torch.load(weights_only=True)`, which refuses pickles that would run code.

A run stopped before its last step may also carry its training state (optimizer moments, step, batch order, random
states: `training.TrainState`) under "train_state", flagged by metadata["resumable"]; `python -m cutellm train
--resume` continues it (`load_train_state`). Tensors and plain values only, so the safe load reads it too.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch

from .config import ModelConfig
from .errors import CheckpointError, ConfigError
from .model import CuteLLM
from .tokenizer import Tokenizer, tokenizer_from_dict
from .training import TrainState

FORMAT = "cutegpt-checkpoint"
VERSION = 1


def _plain(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """Metadata as plain JSON-like values (what a weights_only load accepts)."""
    try:
        return json.loads(json.dumps(dict(metadata or {}), default=str))
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"metadata must be JSON-like (dicts, lists, numbers, strings): {err}") from None


def checkpoint_payload(model: CuteLLM, tokenizer: Tokenizer, metadata: Mapping[str, Any] | None = None,
                       train_state: TrainState | None = None) -> dict:
    if tokenizer.vocab_size != model.config.vocab_size:
        raise CheckpointError(f"the tokenizer has {tokenizer.vocab_size} tokens but the model expects "
                              f"{model.config.vocab_size}")
    meta = _plain(metadata)
    meta.setdefault("saved_at", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    meta.setdefault("parameters", model.num_parameters())
    meta["resumable"] = train_state is not None
    extra = {"train_state": train_state.to_dict()} if train_state is not None else {}
    return {**extra,
        "format": FORMAT,
        "version": VERSION,
        "model_config": model.config.to_dict(),
        "tokenizer": tokenizer.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": meta,
    }


def save_checkpoint(path: str | os.PathLike, model: CuteLLM, tokenizer: Tokenizer,
                    metadata: Mapping[str, Any] | None = None, train_state: TrainState | None = None) -> Path:
    """Write the checkpoint atomically (temp file + fsync + rename). Returns the path written. With `train_state`
    the file can be resumed (`load_train_state`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = checkpoint_payload(model, tokenizer, metadata, train_state)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600); give it the mode a normally created file would have.
        os.chmod(tmp_name, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def checkpoint_bytes(model: CuteLLM, tokenizer: Tokenizer, metadata: Mapping[str, Any] | None = None) -> bytes:
    """The checkpoint file's bytes, for downloads."""
    import io

    buffer = io.BytesIO()
    torch.save(checkpoint_payload(model, tokenizer, metadata), buffer)
    return buffer.getvalue()


def _head(path: str | os.PathLike) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(4)
    except OSError:
        return b""


def _read(source: str | os.PathLike | bytes, name: str) -> dict:
    import io

    try:
        if isinstance(source, bytes):
            raw = torch.load(io.BytesIO(source), map_location="cpu", weights_only=True)
        else:
            raw = torch.load(source, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{name} does not exist") from None
    except IsADirectoryError:
        raise CheckpointError(f"{name} is a folder, not a checkpoint file") from None
    except Exception as err:  # torch raises many types for bad files; all mean "not a usable checkpoint"
        text = str(err)
        head = source[:4] if isinstance(source, bytes) else _head(source)
        if "Weights only load failed" in text or "weights_only" in text:
            reason = "it contains Python objects that a safe load refuses to run (possibly malicious)"
        elif head == b"PK\x03\x04" or any(w in text for w in ("zip archive", "central directory", "EOF")):
            reason = "the file is truncated or corrupt"  # a checkpoint is a zip archive: this one is broken
        else:
            reason = f"it is not a PyTorch checkpoint ({type(err).__name__})"
        raise CheckpointError(f"{name} cannot be loaded: {reason}") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CheckpointError(f"{name} is a PyTorch file but not a CuteGPT checkpoint")
    if raw.get("version") != VERSION:
        raise CheckpointError(f"{name} has checkpoint version {raw.get('version')!r}; this CuteGPT reads "
                              f"version {VERSION}")
    for key in ("model_config", "tokenizer", "state_dict"):
        if key not in raw:
            raise CheckpointError(f"{name} is incomplete: it has no {key}")
    return raw


def _build(raw: dict, name: str, device: str | torch.device) -> tuple[CuteLLM, Tokenizer, dict]:
    try:
        config = ModelConfig.from_dict(raw["model_config"])
    except (ConfigError, TypeError) as err:
        raise CheckpointError(f"{name} has an invalid model config: {err}") from None
    try:
        tokenizer = tokenizer_from_dict(raw["tokenizer"])
    except CheckpointError as err:
        raise CheckpointError(f"{name}: {err}") from None
    if tokenizer.vocab_size != config.vocab_size:
        raise CheckpointError(f"{name} is inconsistent: its tokenizer has {tokenizer.vocab_size} tokens but its "
                              f"model has a vocabulary of {config.vocab_size}")
    model = CuteLLM(config)
    try:
        model.load_state_dict(raw["state_dict"], strict=True)
    except (RuntimeError, KeyError, TypeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"{name} does not match its own model config (different vocabulary or shape): "
                              f"{first}") from None
    model.to(device).eval()
    return model, tokenizer, dict(raw.get("metadata") or {})


def load_checkpoint(path: str | os.PathLike, *, with_meta: bool = False, device: str | torch.device = "cpu"):
    """Load a checkpoint -> (model, tokenizer), or (model, tokenizer, metadata) with `with_meta=True`.

    The model is in eval mode. Raises CheckpointError (naming the file) for anything that is not a valid checkpoint.
    """
    name = f"'{path}'"
    model, tokenizer, meta = _build(_read(path, name), name, device)
    return (model, tokenizer, meta) if with_meta else (model, tokenizer)


def load_checkpoint_bytes(data: bytes, name: str = "the uploaded file", *, device: str | torch.device = "cpu"
                          ) -> tuple[CuteLLM, Tokenizer, dict]:
    """Like load_checkpoint(with_meta=True) for an uploaded file's bytes."""
    return _build(_read(data, name), name, device)


def read_metadata(path: str | os.PathLike) -> dict:
    """The metadata of a checkpoint (and its model config under 'model_config'), without building the model."""
    raw = _read(path, f"'{path}'")
    return {**dict(raw.get("metadata") or {}), "model_config": dict(raw["model_config"])}


def load_train_state(path: str | os.PathLike) -> TrainState:
    """The training state a stopped run saved with its weights; CheckpointError when the file has none."""
    name = f"'{path}'"
    raw = _read(path, name)
    if not (raw.get("metadata") or {}).get("resumable") or "train_state" not in raw:
        raise CheckpointError(f"{name} cannot be resumed: it holds no training state (only a run stopped before "
                              "its last step, by Ctrl-C or --stop-at-step, saves one)")
    try:
        return TrainState.from_dict(raw["train_state"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{name} has an unreadable training state: {err}") from None
