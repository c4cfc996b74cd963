"""Links that share a setup: a page's main settings live in the URL (`st.query_params`) under plain names, so a
link opens the same prompt, sampling settings, phrase, text or training settings in a fresh browser.

Each page declares its parameters (`Param`: the URL name, the session-state key of its widget, how to read the
URL's text) and calls `sync(params)` after its defaults are set and before its widgets are drawn. A link is read
once, on the page's first run in a session: opening a link, or pressing Enter on an edited address, loads the page
afresh (a new session). Its settings are applied, a bad or unknown one is left out with a one-line notice. After
that the page's widgets rule, and the URL is rewritten from them, so it always holds the page as it is. (Reading it
again on every run would let a rerun that carries the address of a moment ago, one the browser had not yet
updated, undo the change the learner just made.) The active model travels as `model=<name>` (`sync_model`, before the sidebar picks it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import streamlit as st

from cutellm.options import Option, field_type
from cutellm.settings import SECTIONS

from . import state

MODEL = "model"
WRITTEN = "share_written"     # session key: the URL this session last wrote, per page
NOTICES = "share_notices"     # session key: what a link could not apply, shown on the page


@dataclass(frozen=True)
class Param:
    name: str                          # the URL's name for it
    key: str                           # the widget's session-state key
    read: Callable[[str], Any]         # URL text -> value; raises ValueError saying what is expected
    write: Callable[[Any], str] = str  # value -> URL text


def number(low: float, high: float, whole: bool = False) -> Callable[[str], Any]:
    def read(raw: str) -> Any:
        try:
            value = int(raw) if whole else float(raw)
        except ValueError:
            raise ValueError(f"is not {'a whole number' if whole else 'a number'}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise ValueError(f"is not between {low:g} and {high:g}")
        return value
    return read


def text(limit: int) -> Callable[[str], str]:
    def read(raw: str) -> str:
        if len(raw) > limit:
            raise ValueError(f"is longer than {limit:,} characters")
        return raw
    return read


def choice(name: str, key: str, values: Mapping[str, Any]) -> Param:
    """A choice: URL text (case-insensitive) -> the widget's value, and back."""
    by_case = {k.lower(): v for k, v in values.items()}
    back = {v: k for k, v in values.items()}

    def read(raw: str) -> Any:
        if raw.lower() not in by_case:
            raise ValueError(f"is not one of {', '.join(values)}")
        return by_case[raw.lower()]
    return Param(name, key, read, lambda v: back.get(v, str(v)))


# Where to compute, not what to train: a link names the model and the recipe, the machine that opens it chooses these.
MACHINE_SETTINGS = ("device", "precision", "compile", "grad_accum_steps")


def option_params(options: Iterable[Option]) -> list[Param]:
    """The Train page's settings, by their Option name, with the Option's range (capped as the widget is) or
    choices: one description of the settings for the CLI, .env, the page and its links."""
    params = []
    for o in (o for o in options if o.name not in MACHINE_SETTINGS):
        kind, _ = field_type(SECTIONS[o.section], o.name)
        if o.choices:
            params.append(choice(o.name, o.widget.key, {c: c for c in o.choices}))
        elif kind is bool:
            params.append(choice(o.name, o.widget.key, {"true": True, "false": False}))
        else:
            top = o.widget.top
            high = o.high if top is None else top if o.high is None else min(top, o.high)
            params.append(Param(o.name, o.widget.key, number(o.low, high, whole=kind is int)))
    return params


def sync(params: list[Param]) -> None:
    """Apply a link's settings to this page (on its first run in this session), then write the page's settings into
    the URL."""
    page = st.session_state.get("share_page", "")
    written = st.session_state.setdefault(WRITTEN, {})
    url = {k: st.query_params[k] for k in st.query_params}
    notices = st.session_state.pop(NOTICES, [])
    if url and page not in written:
        notices += _apply(params, url)
    for line in notices:
        st.info(line, icon=":material/link:")
    out = {p.name: p.write(st.session_state[p.key]) for p in params if p.key in st.session_state}
    active = state.active_model()
    out[MODEL] = active.name
    if active.source in ("session", "uploaded"):
        st.caption(f"Links to this page name **{active.name}**, which lives only in this browser tab: save it to "
                   "models/ to share it.")
    if out != url:   # each change of the URL goes to the browser: only when the page's settings changed
        st.query_params.from_dict(out)
    written[page] = out


def _apply(params: list[Param], url: Mapping[str, str]) -> list[str]:
    by_name = {p.name: p for p in params}
    notices = []
    for name, raw in url.items():
        if name == MODEL:
            continue
        param = by_name.get(name)
        if param is None:
            notices.append(f"The link's `{name[:40]}` is not a setting of this page: ignored.")
            continue
        try:
            st.session_state[param.key] = param.read(raw)
        except ValueError as err:
            notices.append(f"The link's {name}={raw[:40]!r}{'…' if len(raw) > 40 else ''} {err}: kept "
                           f"{st.session_state.get(param.key)!r} instead."[:300])
    return notices


def sync_model(page: str) -> None:
    """In the entry script, before the sidebar picks the model: a link's `model=<name>` makes that model active
    when this server has it (shipped or saved in models/; a model of another browser tab cannot be)."""
    st.session_state.share_page = page
    name = st.query_params.get(MODEL)
    if not name or page in st.session_state.get(WRITTEN, {}):   # read on the page's first run only, as in sync
        return
    choices = state.model_choices()
    for key in choices:
        if state.model_name(key) == name:
            st.session_state.active_model = key
            return
    st.session_state[NOTICES] = [f"The link names the model `{name[:60]}`, which this server does not have (a "
                                 "model trained in a browser tab lives only there): using the active model."]
