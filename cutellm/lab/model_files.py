"""Model files on disk: the models CuteGPT ships, and the names under which a learner saves, renames and deletes
their own.

The shipped models are made by make targets (`make run`) into the repository's models/ folder. A learner saves a
model by name into a folder (the app's models/ by default): a name is 1-64 letters, digits, '-' or '_', so it can
never point outside the folder, and a shipped model's name is reserved, so a shipped model is never overwritten or
shadowed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import CheckpointError

SHIPPED_DIR = Path(__file__).resolve().parents[2] / "models"
# Word tokens (the default model), subword tokens, and the chat model with the base it was instruction-tuned from.
SHIPPED_NAMES = ("cute_llm", "cute_bpe", "cute_chat", "cute_chat_base")
DEFAULT_MODEL = SHIPPED_DIR / "cute_llm.pth"
MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def shipped_models() -> list[Path]:
    """The shipped model files that exist, in SHIPPED_NAMES order (the default model first)."""
    return [p for p in (SHIPPED_DIR / f"{name}.pth" for name in SHIPPED_NAMES) if p.is_file()]


def is_shipped(path: str | os.PathLike) -> bool:
    """Whether `path` is one of the shipped model files."""
    return Path(path).resolve() in {p.resolve() for p in shipped_models()}


def model_path(folder: str | os.PathLike, name: str) -> Path:
    """`folder/<name>.pth` for a user-chosen model name; refuses anything that is not a plain name (no path)."""
    if not isinstance(name, str) or not MODEL_NAME_RE.match(name):
        raise CheckpointError(f"{name!r} is not a valid model name: use 1-64 letters, digits, '-' or '_' "
                              "(no spaces, dots or slashes)")
    return Path(folder) / f"{name}.pth"


def save_path(folder: str | os.PathLike, name: str) -> Path:
    """Where a learner's model called `name` is saved: `model_path`, refusing the shipped models' names."""
    path = model_path(folder, name)
    if name in SHIPPED_NAMES or is_shipped(path):
        raise CheckpointError(f"'{name}' is a shipped model's name; it cannot be overwritten. Choose another name.")
    return path


def _own_model(path: str | os.PathLike) -> Path:
    """`path` if it is a learner's saved model file (never a shipped one)."""
    path = Path(path)
    if path.stem in SHIPPED_NAMES or is_shipped(path):
        raise CheckpointError(f"'{path.stem}' is a shipped model; it cannot be renamed or deleted")
    if not path.is_file():
        raise CheckpointError(f"'{path.name}' does not exist")
    return path


def rename_model(path: str | os.PathLike, new_name: str) -> Path:
    """Rename a saved model file to `<new_name>.pth` in the same folder; refuses shipped models, names that are
    not plain names or are reserved, and names already taken. Returns the new path."""
    path = _own_model(path)
    target = save_path(path.parent, new_name)
    if target.exists():
        raise CheckpointError(f"'{new_name}' already exists; choose another name or delete it first")
    path.rename(target)
    return target


def delete_model(path: str | os.PathLike) -> None:
    """Delete a saved model file; refuses the shipped models."""
    _own_model(path).unlink()
