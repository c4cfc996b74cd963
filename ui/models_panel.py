"""The sidebar's model manager: upload a checkpoint for this session, rename or delete a saved one (asking first).

An upload is loaded with the same safe loader as a file on disk (`weights_only=True`) and lives in this session only.
Renaming and deleting go through `cutellm.lab.model_files`, which refuses the shipped models.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from cutellm import CuteLLMError
from cutellm.checkpoint import load_checkpoint_bytes
from cutellm.lab.model_files import SHIPPED_NAMES, delete_model, is_shipped, rename_model

from . import state
from .text import code_span

MAX_UPLOAD_MB = 50   # a checkpoint larger than this is not a playground model (the shipped one is ~2 MB)


def _upload_limit_bytes() -> int:
    return min(MAX_UPLOAD_MB, int(st.get_option("server.maxUploadSize"))) * 1024 * 1024


def remember_upload() -> None:
    """Load the uploaded checkpoint once, in the uploader's callback, and make it the active model."""
    uploaded = st.session_state.get("mp_upload")
    st.session_state.mp_error = None
    if uploaded is None:
        return
    name = f"'{uploaded.name}'"
    data = uploaded.getvalue()
    limit = _upload_limit_bytes()
    if len(data) > limit:
        st.session_state.mp_error = (f"{name} is {len(data) / 1e6:.1f} MB; the playground takes checkpoints up to "
                                     f"{limit // (1024 * 1024)} MB.")
        return
    try:
        model, tokenizer, meta = load_checkpoint_bytes(data, name)
    except CuteLLMError as err:
        st.session_state.mp_error = str(err)
        return
    state.set_active(state.add_uploaded_model(uploaded.name, model, tokenizer, meta))
    st.session_state.mp_notice = f"{uploaded.name} is loaded for this session and is now the active model."


def _saved_models() -> list[Path]:
    """The learner's own files in models/: never a shipped model, nor a file bearing a shipped model's name."""
    folder = state.models_dir().resolve()
    return [p for p in state.model_files() if p.parent == folder and not is_shipped(p) and p.stem not in SHIPPED_NAMES]


def _ask(action: str) -> None:
    st.session_state.mp_pending = (action, st.session_state.mp_target)


def _do(action: str, path: Path, new_name: str = "") -> None:
    """Rename or delete `path` (after the confirmation); keep the active model pointing at what it was."""
    st.session_state.mp_pending = None
    was_active = st.session_state.get("active_model") == state.file_key(path)
    try:
        if action == "rename":
            target = rename_model(path, new_name)
            if was_active:
                state.set_active(state.file_key(target))
            st.session_state.mp_notice = f"Renamed {path.name} to {target.name}."
        else:
            delete_model(path)
            if was_active:
                state.set_active(state.SHIPPED_KEY)
            st.session_state.mp_notice = f"Deleted {path.name}." + (" The shipped model is active again."
                                                                     if was_active else "")
    except (CuteLLMError, OSError) as err:
        st.session_state.mp_error = f"Could not {action} {path.name}: {err}"


def _cancel() -> None:
    st.session_state.mp_pending = None


def models_panel() -> None:
    """Draw the manager (inside the sidebar)."""
    st.session_state.setdefault("mp_pending", None)
    with st.expander("Manage models", icon=":material/folder_managed:",
                     expanded=bool(st.session_state.get("mp_pending") or st.session_state.get("mp_error"))):
        st.file_uploader("Upload a .pth checkpoint", type=["pth"], key="mp_upload", on_change=remember_upload,
                         help="A CuteGPT checkpoint, e.g. one you downloaded from the Train page. It is loaded "
                              "safely (no code in it can run) and used in this browser tab only; it is listed as "
                              "'(uploaded)'.")
        if st.session_state.get("mp_error"):
            st.error(st.session_state.mp_error, icon=":material/error:")
        if st.session_state.get("mp_notice"):
            st.success(st.session_state.pop("mp_notice"), icon=":material/check_circle:")
        saved = _saved_models()
        if not saved:
            st.caption("Models you save from the Train page can be renamed or deleted here; the shipped models "
                       "cannot.")
            return
        by_name = {p.stem: p for p in saved}
        if st.session_state.get("mp_target") not in by_name:
            st.session_state.mp_target = next(iter(by_name))
        st.selectbox("Saved model", list(by_name), key="mp_target",
                     help="Your models in models/. The shipped models are not listed: they cannot be changed.")
        pending = st.session_state.mp_pending
        if pending is None or pending[1] not in by_name:
            st.text_input("New name", key="mp_new_name", max_chars=64, placeholder="letters, digits, - and _")
            a, b = st.columns(2)
            a.button("Rename", key="mp_rename", on_click=_ask, args=("rename",),
                     disabled=not st.session_state.get("mp_new_name", "").strip())
            b.button("Delete", key="mp_delete", icon=":material/delete:", on_click=_ask, args=("delete",))
            return
        action, target = pending
        path = by_name[target]
        new_name = st.session_state.get("mp_new_name", "").strip()
        question = (f"Rename {code_span(target)} to {code_span(new_name)}?" if action == "rename" else
                    f"Delete {code_span(target)} for good? Its file is removed from models/.")
        st.warning(question, icon=":material/help:")
        a, b = st.columns(2)
        a.button("Yes, " + action, key="mp_confirm", type="primary", on_click=_do, args=(action, path, new_name))
        b.button("Cancel", key="mp_cancel", on_click=_cancel)
