"""The Chat page's conversation: one history per model, replies streamed into their bubbles, past turns redrawn."""

from __future__ import annotations

import time
from dataclasses import dataclass

import streamlit as st

from cutellm import CuteLLM, CuteLLMError
from cutellm.chat import ChatContext, Message, add_chat_tokens, chat_context, check_message, reply_text, stream_reply
from cutellm.inference import GeneratedToken
from cutellm.sampling import SamplingSettings
from cutellm.tokenizer import END, Tokenizer

from ..state import LoadedModel
from ..text import code_span, tinted_html, words_list

# As on Generate: a reply of a few tokens takes milliseconds, so it is paced to be seen growing (at most ~2 s).
PACE_S, MAX_PACED_S = 0.05, 2.0
HISTORIES = "chat_histories"   # session key: model key -> list[Turn]
GROWN = "chat_grown"           # session key: model key -> (its model, the copy with chat tokens, that tokenizer)


@dataclass
class Answer:
    """One model's reply to one question, with what it read."""

    model_name: str
    tokenizer: Tokenizer            # the one it was asked through (it has the chat tokens)
    context: ChatContext
    block_size: int
    untrained: bool                 # a model never instruction-tuned, asked through untrained chat tokens
    tokens: list[GeneratedToken]    # its final <|end|> included when it wrote one
    budget: int

    @property
    def ended(self) -> bool:
        return bool(self.tokens) and self.tokens[-1].token_id == self.tokenizer.chat_id(END)

    @property
    def text(self) -> str:
        return reply_text(self.tokenizer, self.tokens)


@dataclass
class Turn:
    question: str
    answers: list[Answer]           # the active model's first, then the model it is compared with


def history(active: LoadedModel) -> list[Turn]:
    """The conversation with this model in this session (each model keeps its own)."""
    return st.session_state.setdefault(HISTORIES, {}).setdefault(active.key, [])


def clear(key: str) -> None:
    st.session_state.setdefault(HISTORIES, {})[key] = []


def chat_ready(loaded: LoadedModel) -> tuple[CuteLLM, Tokenizer, bool]:
    """The model and tokenizer to ask, and whether its chat tokens are untrained. A model without them gets a copy
    with them added, made once per model in this session (not on every rerun)."""
    if loaded.tokenizer.has_chat_tokens:
        return loaded.model, loaded.tokenizer, False
    cache = st.session_state.setdefault(GROWN, {})
    entry = cache.get(loaded.key)
    if entry is None or entry[0] is not loaded.model:   # a key can come to name other weights (a new upload)
        entry = cache[loaded.key] = (loaded.model, *add_chat_tokens(loaded.model, loaded.tokenizer))
    return entry[1], entry[2], True


def messages(turns: list[Turn]) -> list[Message]:
    """The conversation so far as the models read it: the questions and the active model's replies."""
    out = []
    for turn in turns:
        out += [Message("user", turn.question), Message("assistant", turn.answers[0].text)]
    return out


def cut_note(answer: Answer) -> str | None:
    """What the window left out, or None when the whole conversation fits."""
    ctx = answer.context
    cuts = []
    if ctx.dropped_messages:
        cuts.append(f"the oldest {ctx.dropped_messages} message{'s' * (ctx.dropped_messages > 1)} do not fit")
    if ctx.cropped_tokens:
        cuts.append(f"the first {ctx.cropped_tokens} tokens of your message were cut")
    if not cuts:
        return None
    return (f"The model reads {len(ctx.ids)} tokens: {' and '.join(cuts)}. Its window holds {answer.block_size}, "
            "with room kept for the reply.")


def unknown_note(answer: Answer, question: str) -> str | None:
    unknown = answer.context.unknown
    if not unknown:
        return None
    tok = answer.tokenizer
    if all(i == tok.unk_id for i in tok.encode(question)):
        return (f"None of your words is in {answer.model_name}'s vocabulary: it sees only `<unk>` "
                f"({words_list(unknown)}).")
    return f"Not in {answer.model_name}'s vocabulary, so the model sees `<unk>` for: {words_list(unknown)}."


def reply_html(tokenizer: Tokenizer, tokens: list[GeneratedToken]) -> str:
    """The reply's words tinted by probability (hover: probability and alternatives); <|end|> is marked below."""
    end = tokenizer.chat_id(END)
    return tinted_html(tokenizer, "", [t for t in tokens if t.token_id != end])


def label(answer: Answer) -> str:
    kind = "never instruction-tuned: its chat tokens are untrained" if answer.untrained else "instruction-tuned"
    return f"**{answer.model_name}** · {kind}"


def draw_answer(answer: Answer, labelled: bool) -> None:
    if labelled:
        st.caption(label(answer))
    st.html(reply_html(answer.tokenizer, answer.tokens))
    n = len(answer.tokens) - answer.ended
    if answer.ended:
        st.caption(f":material/check_circle: Stopped at {code_span(END)} after {n} token{'s' * (n != 1)} "
                   f"({code_span(END)} had probability {answer.tokens[-1].prob:.1%}).")
    else:
        st.caption(f":material/more_horiz: Ran out of its {answer.budget}-token budget before writing "
                   f"{code_span(END)}.")


def draw_question(question: str, main: Answer) -> None:
    st.text(question)   # literally: no markdown, and a typed <|end|> is plain text
    for note, icon in ((unknown_note(main, question), ":material/help:"), (cut_note(main), ":material/content_cut:")):
        if note:
            st.info(note, icon=icon)


def draw_turn(turn: Turn) -> None:
    with st.chat_message("user"):
        draw_question(turn.question, turn.answers[0])
    with st.chat_message("assistant"):
        many = len(turn.answers) > 1
        for column, answer in zip(st.columns(len(turn.answers)) if many else [st.container()], turn.answers):
            with column:
                draw_answer(answer, many or answer.untrained)


def _asked(loaded: LoadedModel, conversation: list[Message], budget: int) -> Answer:
    model, tokenizer, untrained = chat_ready(loaded)
    context = chat_context(tokenizer, conversation, model.config.block_size)
    return Answer(loaded.name, tokenizer, context, model.config.block_size, untrained, [], budget)


def _stream(slot, answer: Answer, model: CuteLLM, conversation: list[Message], settings: SamplingSettings) -> None:
    """Redraw the tinted reply after every token; then, in the same place, the reply with how it ended."""
    pace = min(PACE_S, MAX_PACED_S / answer.budget)
    for token in stream_reply(model, answer.tokenizer, conversation, answer.budget, sampling=settings,
                              context=answer.context):
        answer.tokens.append(token)
        slot.html(reply_html(answer.tokenizer, answer.tokens))
        time.sleep(pace)
    with slot.container():
        draw_answer(answer, labelled=False)   # its label is already drawn above the slot


def _refuse(err: CuteLLMError) -> None:
    text = str(err)
    st.error(text[:1].upper() + text[1:] + ("" if text.endswith(".") else "."), icon=":material/error:")


def ask(active: LoadedModel, partner: LoadedModel | None, turns: list[Turn], question: str,
        settings: SamplingSettings, budget: int) -> None:
    """Send the question to the active model (and to `partner` beside it), streaming each reply into the assistant's
    bubble; the turn joins the history once every reply is written. Bad input is refused with its message."""
    try:
        question = check_message(question)
        conversation = messages(turns) + [Message("user", question)]
        models = [active] + ([partner] if partner else [])
        answers = [_asked(m, conversation, budget) for m in models]
    except CuteLLMError as err:
        _refuse(err)
        return
    with st.chat_message("user"):
        draw_question(question, answers[0])
    with st.chat_message("assistant"):
        many = len(answers) > 1
        places = st.columns(len(answers)) if many else [st.container()]
        slots = []
        for place, answer in zip(places, answers):
            with place:
                if many or answer.untrained:
                    st.caption(label(answer))
                slots.append(st.empty())
        try:
            for slot, answer, loaded in zip(slots, answers, models):
                _stream(slot, answer, chat_ready(loaded)[0], conversation, settings)
        except CuteLLMError as err:
            _refuse(err)
            return
    turns.append(Turn(question, answers))
