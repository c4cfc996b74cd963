"""Session state: the active model, the session's own models, the training job, and values that survive page changes.

Models read from files are loaded once per server (`st.cache_resource`) and shared read-only by every session. A model
trained in a session lives in that session's state only; other sessions never see it (or its half-trained weights).
"""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import streamlit as st

from cutellm import CheckpointError, CuteLLM, CuteLLMError, load_checkpoint
from cutellm.lab.jobs import TrainingJob
from cutellm.lab.model_files import DEFAULT_MODEL, is_shipped, shipped_models
from cutellm.lab.runs import BaseModel
from cutellm.tokenizer import Tokenizer
from cutellm.training import WeightSnapshot

ROOT = Path(__file__).resolve().parent.parent


# A model is chosen by a key: "file:<absolute path>" for a checkpoint on disk, "session:<name>" for a model trained
# in this browser session, "upload:<name>" for a file uploaded in it. These functions are the only code that knows
# the format.
def file_key(path: Path) -> str:
    return f"file:{Path(path).resolve()}"


def session_key(name: str) -> str:
    return f"session:{name}"


def upload_key(name: str) -> str:
    return f"upload:{name}"


def _parse_key(key: str) -> tuple[str, str]:
    kind, _, ref = key.partition(":")
    return kind, ref


SHIPPED_KEY = file_key(DEFAULT_MODEL)


def model_name(key: str) -> str:
    """The name a model goes by (a file's stem, a session model's name): what links and the sidebar call it."""
    kind, ref = _parse_key(key)
    return Path(ref).stem if kind == "file" else ref


def training_worker() -> str:
    """Where the app's runs train: "process" (CUTEGPT_TRAINING_WORKER, the default: a run that fails or is killed
    never takes the server down) or "thread" (inside the server, as a library caller's run does)."""
    return os.environ.get("CUTEGPT_TRAINING_WORKER", "process")


@st.cache_resource
def configure_training_slots() -> int:
    """The server's training slots from CUTEGPT_TRAINING_SLOTS, in the environment or .env (cutellm.lab.jobs); once
    per server."""
    from dotenv import dotenv_values

    from cutellm.lab.jobs import QUEUE, training_slots

    env_file = ROOT / ".env"
    QUEUE.slots = training_slots({**(dotenv_values(env_file) if env_file.is_file() else {}), **os.environ})
    return QUEUE.slots


def models_dir() -> Path:
    """Where saved models go (CUTEGPT_MODELS_DIR, default models/)."""
    return Path(os.environ.get("CUTEGPT_MODELS_DIR", ROOT / "models"))


@dataclass
class LoadedModel:
    key: str
    name: str
    model: CuteLLM
    tokenizer: Tokenizer
    meta: dict[str, Any]
    source: str  # "shipped", "saved", "session" or "uploaded"
    snapshots: list[WeightSnapshot] = field(default_factory=list)  # the training timeline (session runs only)

    def as_base(self) -> BaseModel:
        """This model as the base of a fine-tuning run."""
        return BaseModel(self.name, self.model, self.tokenizer, self.meta)


class SessionOwner:
    """Lives only in one browser session's state; a training job stops when it is garbage-collected."""


@dataclass(eq=False)   # compared (and hashed) by identity: the memory cap keeps a weak set of them
class SessionModels:
    """Models trained in this session, and models uploaded to it, by name (newest last)."""

    models: dict[str, LoadedModel] = field(default_factory=dict)
    uploads: dict[str, LoadedModel] = field(default_factory=dict)
    runs: int = 0

    def next_run_name(self) -> str:
        """A new name for a run of this session: run-1, run-2, ..."""
        self.runs += 1
        return f"run-{self.runs}"


# Values kept across page switches (widgets lose theirs when their page is not shown). Pages register their own.
KEPT = "_kept_keys"   # session-state key: every key a page asked to keep


def keep(defaults: dict[str, Any]) -> None:
    """Give each key its default once and re-assign it on every run, which keeps widget values alive while the
    user is on another page. Widgets using these keys must not pass `value=`/`index=` themselves."""
    kept = st.session_state.setdefault(KEPT, set())
    for key, default in defaults.items():
        st.session_state[key] = st.session_state.get(key, default)
        kept.add(key)


def keep_alive() -> None:
    """Re-assign every kept key, whatever page runs: Streamlit forgets a widget's value at the end of a run that did
    not draw the widget, so the Train page's settings would fall back to their defaults after a visit to Generate.
    The entry script calls this before each page."""
    for key in st.session_state.get(KEPT, ()):
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


def clamp(key: str, low: float, high: float, label: str) -> None:
    """Bring a kept value back inside its widget's range (a stale or hand-edited state must not crash the page),
    and say so. Call before drawing the widget."""
    value = st.session_state.get(key)
    if isinstance(value, (int, float)) and not low <= value <= high:
        st.session_state[key] = type(value)(min(max(value, low), high))
        st.warning(f"{label} must be between {low:g} and {high:g}; using {st.session_state[key]:g} instead of "
                   f"{value:g}.", icon=":material/warning:")


def init_session() -> None:
    configure_training_slots()
    st.session_state.setdefault("session_models", SessionModels())
    st.session_state.setdefault("session_owner", SessionOwner())
    st.session_state.setdefault("train_job", None)
    st.session_state.setdefault("active_model", SHIPPED_KEY)


@st.cache_resource(show_spinner="Loading model…", max_entries=16)
def _load_shared(path: str, mtime: float) -> tuple[CuteLLM, Tokenizer, dict]:
    model, tokenizer, meta = load_checkpoint(path, with_meta=True)
    model.requires_grad_(False)  # shared by every session: never trained in place
    return model, tokenizer, meta


def model_files() -> list[Path]:
    """The shipped models first, then the models saved in models_dir(), by name."""
    shipped = [p.resolve() for p in shipped_models()]
    folder = models_dir()
    saved = {p.resolve() for p in folder.glob("*.pth")} if folder.is_dir() else set()
    return shipped + sorted(saved - set(shipped), key=lambda p: p.name)


def model_choices() -> dict[str, str]:
    """key -> label for every model this session can use."""
    choices = {}
    for path in model_files():
        choices[file_key(path)] = f"{path.stem} ({'shipped' if is_shipped(path) else 'saved'})"
    for name in st.session_state.session_models.models:
        choices[session_key(name)] = f"{name} (this session)"
    for name in st.session_state.session_models.uploads:
        choices[upload_key(name)] = f"{name} (uploaded)"
    return choices


def load_model(key: str) -> LoadedModel:
    kind, ref = _parse_key(key)
    if kind == "session":
        return st.session_state.session_models.models[ref]
    if kind == "upload":
        return st.session_state.session_models.uploads[ref]
    path = Path(ref)
    if not path.exists():
        raise CheckpointError(f"'{path.name}' no longer exists")
    model, tokenizer, meta = _load_shared(str(path), path.stat().st_mtime)
    return LoadedModel(key=key, name=path.stem, model=model, tokenizer=tokenizer, meta=meta,
                       source="shipped" if is_shipped(path) else "saved")


def resolve_active_model() -> LoadedModel:
    """Load the chosen model before the sidebar's selectbox is drawn. If it cannot be loaded (a broken or deleted
    file), switch back to the shipped model and say why; the selectbox then shows the model really in use."""
    choices = model_choices()
    key = st.session_state.get("active_model")
    if key not in choices:
        key = SHIPPED_KEY
    try:
        loaded = load_model(key)
    except (CheckpointError, KeyError) as err:
        st.session_state.model_error = f"Could not load that model, so the shipped model is active again: {err}"
        key, loaded = SHIPPED_KEY, load_model(SHIPPED_KEY)
    st.session_state.active_model = key
    st.session_state.active_loaded = loaded
    return loaded


def active_model() -> LoadedModel:
    """The model the pages use (resolved by the sidebar at the start of this run)."""
    return st.session_state.get("active_loaded") or resolve_active_model()


def set_active(key: str) -> None:
    """For on_click/on_change callbacks (which run before the sidebar widget is drawn)."""
    st.session_state.active_model = key


def add_session_model(name: str, model: CuteLLM, tokenizer: Tokenizer, meta: dict,
                      snapshots: list[WeightSnapshot] | None = None) -> str:
    key = session_key(name)
    st.session_state.session_models.models[name] = LoadedModel(key=key, name=name, model=model,
                                                               tokenizer=tokenizer, meta=meta, source="session",
                                                               snapshots=list(snapshots or []))
    keep_within_memory_cap(st.session_state.session_models, keep={key, st.session_state.get("active_model")},
                           saved=set(st.session_state.get("tr_saved", {})))
    return key


# -- a server-wide cap on the memory of the models tabs keep --------------------------------------------------------
_ALL_SESSIONS: "weakref.WeakSet[SessionModels]" = weakref.WeakSet()   # every open tab's models
MEMORY_NOTICE = "memory_notice"   # session-state key: what the cap dropped from this tab, shown once by the sidebar


def memory_cap_bytes() -> int:
    """CUTEGPT_MODEL_MEMORY_MB (default 2048): the most that the models and timeline snapshots kept by all open tabs
    may take together."""
    return int(float(os.environ.get("CUTEGPT_MODEL_MEMORY_MB", "2048")) * 1024 * 1024)


def model_bytes(loaded: LoadedModel) -> int:
    """A kept model's memory: its weights and its training timeline's snapshots."""
    weights = sum(t.numel() * t.element_size() for t in loaded.model.state_dict().values())
    return weights + sum(t.numel() * t.element_size() for snap in loaded.snapshots for t in snap.state_dict.values())


def kept_bytes() -> int:
    return sum(model_bytes(m) for sessions in list(_ALL_SESSIONS)
               for m in [*sessions.models.values(), *sessions.uploads.values()])


def keep_within_memory_cap(sessions: SessionModels, keep: set, saved: set[str]) -> list[str]:
    """Over the cap, drop this tab's oldest unsaved models (never those in `keep`: the new and the active one), then
    its timelines, until the server is under the cap; returns what was dropped and leaves a notice for the tab."""
    _ALL_SESSIONS.add(sessions)
    cap, dropped = memory_cap_bytes(), []
    for name, loaded in list(sessions.models.items()):   # oldest first
        if kept_bytes() <= cap:
            break
        if loaded.key not in keep and name not in saved:
            del sessions.models[name]
            dropped.append(f"model {name}")
    for name, loaded in list(sessions.models.items()):
        if kept_bytes() <= cap:
            break
        if loaded.snapshots:
            loaded.snapshots = []
            dropped.append(f"the training timeline of {name}")
    if dropped:
        st.session_state[MEMORY_NOTICE] = (
            f"The server keeps at most {cap / 2**20:,.0f} MB of models for all its learners, so this tab let go of "
            f"{', '.join(dropped)} (the oldest not saved). Save a model to keep it.")
    return dropped


def add_uploaded_model(file_name: str, model: CuteLLM, tokenizer: Tokenizer, meta: dict) -> str:
    """Keep an uploaded checkpoint in this session (never on disk) under its file's stem; returns its key."""
    uploads = st.session_state.session_models.uploads
    stem = Path(file_name).stem or "uploaded"
    name, n = stem, 1
    while name in uploads:   # a second file of the same name gets its own entry
        n += 1
        name = f"{stem}-{n}"
    model.requires_grad_(False)
    uploads[name] = LoadedModel(key=upload_key(name), name=name, model=model, tokenizer=tokenizer, meta=meta,
                                source="uploaded")
    return uploads[name].key


def current_job() -> TrainingJob | None:
    return st.session_state.get("train_job")


def collect_finished_job() -> None:
    """Once a run has ended, make its model usable in this session (never before: no page may see half-trained
    weights). Runs before the sidebar is drawn, so the new model is listed right away."""
    job = current_job()
    if job is None or job.running or not job.usable or st.session_state.get("collected_job") is job:
        return
    add_session_model(job.name, job.model, job.tokenizer, job.checkpoint_metadata(),
                      job.result.snapshots if job.result else None)
    st.session_state.collected_job = job
    st.session_state.tr_save_name = f"my-{job.name}"


def compute_result(key: str, active: LoadedModel, compute: Callable[[], dict[str, Any]]) -> None:
    """Run a model call for a button and keep its result (tagged with the model) across reruns; a CuteLLMError
    becomes an st.error with its message."""
    try:
        st.session_state[key] = {"model": active.key, **compute()}
    except CuteLLMError as err:
        st.session_state[key] = None
        st.error(str(err), icon=":material/error:")


def kept_result(key: str, active: LoadedModel) -> dict[str, Any] | None:
    """The result kept by compute_result, if it came from the active model (otherwise say why it is gone)."""
    result = st.session_state.get(key)
    if result and result["model"] != active.key:
        st.info("The active model changed; press the button again to use it.", icon=":material/info:")
        return None
    return result
