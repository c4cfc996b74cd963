"""What the model sees: the last reply's whole input as token chips, coloured by role, and where the window cut."""

from __future__ import annotations

import streamlit as st

from ..text import conversation_chips_html, glossary_link
from .conversation import Answer, Turn, cut_note

WHO = {"user": "your message", "assistant": "an earlier reply"}


def seen_html(answer: Answer) -> str:
    """The templated conversation the model read, then the tokens it wrote; the control tokens stand out (their
    ids are placed by the template, so typed text never becomes one)."""
    tok, context = answer.tokenizer, answer.context
    ids = [*context.ids, *(t.token_id for t in answer.tokens)]
    roles = [*context.roles, *["reply"] * len(answer.tokens)]
    titles = [*(f"id {i} · {WHO[role]}" for i, role in zip(context.ids, context.roles)),
              *(f"id {t.token_id} · written now, probability {t.prob:.1%}" for t in answer.tokens)]
    return conversation_chips_html(tok, ids, roles, titles=titles)


def reading_note(answer: Answer) -> str:
    return cut_note(answer) or (f"The model reads {len(answer.context.ids)} tokens: the whole conversation fits its "
                                f"{answer.block_size}-token window.")


def what_the_model_sees(turn: Turn) -> None:
    with st.expander("What the model sees", icon=":material/visibility:"):
        st.caption("The last reply's whole input, token by token: the conversation written with the chat "
                   "template, then what the model wrote. Dark: control tokens · blue: your messages · green: earlier "
                   "replies · orange, dashed: this reply. Hover a token for its id. " + glossary_link("chat template"))
        for answer in turn.answers:
            if len(turn.answers) > 1:
                st.markdown(f"**{answer.model_name}**")
            st.html(seen_html(answer))
            st.caption(reading_note(answer))
