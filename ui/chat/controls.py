"""The Chat page's settings: what kind of model is active, how replies are decoded, and whom to compare with."""

from __future__ import annotations

import streamlit as st

from cutellm import CheckpointError
from cutellm.lab.model_files import SHIPPED_DIR
from cutellm.sampling import SamplingSettings
from cutellm.tokenizer import END

from .. import sampling_form, state
from ..text import code_span, glossary_link

MAX_REPLY_UI = 200
CHAT_MODEL = "cute_chat"
DEFAULTS = {"chat_mode": "Greedy", "chat_max_tokens": 40, "chat_temperature": 0.8, "chat_top_k": 40,
            "chat_top_p": 0.95, "chat_seed": 1, "chat_compare": False, "chat_partner": None}


def explain_model(active: state.LoadedModel) -> None:
    """Say what the active model is; a text completer gets the way to the chat model."""
    if active.tokenizer.has_chat_tokens:
        st.caption(f"**{active.name}** was instruction-tuned: it learned to answer after {code_span('<|assistant|>')} "
                   f"and to stop with {code_span(END)}. " + glossary_link("instruction tuning"))
        return
    st.info(f"**{active.name}** is a text completer: it learned to continue text and was never instruction-tuned. "
            "You can still ask it: it gets the three chat tokens with untrained weights, so expect it to go on "
            "writing text rather than answer. " + glossary_link("instruction tuning"), icon=":material/info:")
    chat_key = state.file_key(SHIPPED_DIR / f"{CHAT_MODEL}.pth")
    if chat_key in state.model_choices():
        st.button(f"Switch to {CHAT_MODEL}", icon=":material/swap_horiz:", on_click=state.set_active,
                  args=(chat_key,), help="The shipped model that was instruction-tuned on example conversations.")


def sampling_controls(vocab_size: int) -> tuple[SamplingSettings, int]:
    """The decoding settings (in an expander) as one SamplingSettings, and the reply's token budget."""
    with st.expander("Decoding and reply length", icon=":material/tune:"):
        left, right = st.columns([1, 2])
        sampling_form.decoding_radio("chat", left, same="reply")
        state.clamp("chat_max_tokens", 1, MAX_REPLY_UI, "Max reply tokens")
        left.slider("Max reply tokens", 1, MAX_REPLY_UI, key="chat_max_tokens",
                    help=f"A reply ends at {code_span(END)} or after this many tokens, whichever comes first.")
        sampling_form.sampling_widgets("chat", vocab_size, right, what="reply")
    return sampling_form.sampling_settings("chat"), int(st.session_state.chat_max_tokens)


def compare_partner(active: state.LoadedModel) -> state.LoadedModel | None:
    """The model to answer beside the active one: its base (meta["base_model"]) when this session has it,
    otherwise one the learner picks."""
    choices = state.model_choices()
    base = active.meta.get("base_model")
    found = next((k for k in choices if k != active.key and state.model_name(k) == base), None) if base else None
    if found:
        try:
            partner = state.load_model(found)
        except (CheckpointError, KeyError) as err:
            st.warning(f"Could not load the base model {base}: {err}", icon=":material/warning:")
        else:
            st.caption(f"Each question also goes to **{partner.name}**, the model {active.name} was trained from. "
                       "Both read the same conversation: your messages and the left model's replies.")
            return partner
    others = [k for k in choices if k != active.key]
    why = (f"{active.name} names no base model" if not base
           else f"{active.name}'s base model, {base}, is not among the models here")
    if not others:
        st.info(f"{why}, and there is no other model to compare with.", icon=":material/info:")
        return None
    st.info(f"{why}: pick a model to compare with.", icon=":material/info:")
    if st.session_state.get("chat_partner") not in others:
        st.session_state.chat_partner = others[0]
    key = st.selectbox("Compare with", others, format_func=choices.__getitem__, key="chat_partner")
    try:
        return state.load_model(key)
    except (CheckpointError, KeyError) as err:
        st.warning(f"Could not load that model: {err}", icon=":material/warning:")
        return None
