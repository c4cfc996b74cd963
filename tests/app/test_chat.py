"""The Chat page through AppTest: turns and their history, <|end|>, what the model sees, base vs tuned side by side,
a text completer, and bad input."""

from __future__ import annotations

import re

import pytest

from cutellm.chat import Message, template
from cutellm.lab.model_files import SHIPPED_DIR
from cutellm.tokenizer import ASSISTANT, END, USER
from ui.state import file_key

from .conftest import button, no_exception, open_page

CHAT = file_key(SHIPPED_DIR / "cute_chat.pth")
COMPLETER = file_key(SHIPPED_DIR / "cute_llm.pth")
CHIP = re.compile(r'<span class="([^"]*)" title="[^"]*">([^<]*)</span>')


@pytest.fixture
def chat(app):
    """The Chat page with cute_chat active."""
    app.sidebar.selectbox(key="active_model").set_value(CHAT).run()
    open_page(app, "chat")
    no_exception(app)
    return app


def say(at, text: str):
    at.chat_input(key="chat_input").set_value(text).run()
    no_exception(at)
    return at


def turns(at, key: str = CHAT) -> list:
    return at.session_state["chat_histories"].get(key, [])


def captions(at) -> list[str]:
    return [c.value for c in at.caption]


def infos(at) -> list[str]:
    return [i.value for i in at.info]


def seen_chips(at) -> list[list[tuple[str, str]]]:
    """Per answer of the last turn, its what-the-model-sees chips as (classes, text)."""
    return [[(cls, text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")) for cls, text in
             CHIP.findall(h.proto.body)] for h in at.get("html") if 'chat-chips' in h.proto.body]


def test_two_turns_the_second_reads_the_first(chat):
    say(chat, "what colour is the snow?")
    say(chat, "what is the home of the cow?")
    history = turns(chat)
    assert [t.question for t in history] == ["what colour is the snow?", "what is the home of the cow?"]
    assert all(t.answers[0].text for t in history), "each turn has a reply"
    assert len([m for m in chat.chat_message if m.name == "assistant"]) == 2
    first, second = history
    tok = first.answers[0].tokenizer
    read_before = template(tok, [Message("user", first.question), Message("assistant", first.answers[0].text)]).ids
    assert second.answers[0].context.ids[:len(read_before)] == read_before, "the second reply reads the first turn"
    words = [text for cls, text in seen_chips(chat)[0]]
    assert "snow" in words and "cow" in words, "what the model sees holds both questions"


def test_a_reply_ends_at_end_or_is_marked_as_cut_short(chat):
    say(chat, "what colour is the snow?")
    answer = turns(chat)[0].answers[0]
    assert answer.ended and answer.tokens[-1].text == END
    assert "white" in answer.text and END not in answer.text
    assert any(c.startswith(":material/check_circle: Stopped at `<|end|>`") for c in captions(chat))
    chat.session_state["chat_max_tokens"] = 2
    chat.run()
    say(chat, "what colour is the snow?")
    short = turns(chat)[1].answers[0]
    assert not short.ended and len(short.tokens) == 2
    assert any(c.startswith(":material/more_horiz: Ran out of its 2-token budget") for c in captions(chat))


def test_replies_stream_tinted_by_probability(chat):
    say(chat, "what colour is the snow?")
    reply = [h.proto.body for h in chat.get("html") if 'class="new tinted"' in h.proto.body]
    assert reply and 'class="tok p' in reply[-1] and "probability" in reply[-1]


def test_what_the_model_sees_shows_the_control_tokens(chat):
    say(chat, "what colour is the snow?")
    chips = seen_chips(chat)[0]
    control = [text for cls, text in chips if "control" in cls.split()]
    assert control == [USER, END, ASSISTANT, END], "the template's three, then the reply's own end"
    assert chips[0] == ("user control", USER) and chips[1] == ("user", "what")
    assert [text for cls, text in chips if "reply" in cls.split()][-1] == END
    assert any("whole conversation fits its 64-token window" in c for c in captions(chat))


def test_side_by_side_asks_the_base_through_added_chat_tokens(chat):
    chat.toggle(key="chat_compare").set_value(True).run()
    no_exception(chat)
    assert any("also goes to **cute_chat_base**" in c for c in captions(chat))
    say(chat, "what colour is the snow?")
    tuned, base = turns(chat)[0].answers
    assert (tuned.model_name, tuned.untrained) == ("cute_chat", False)
    assert (base.model_name, base.untrained) == ("cute_chat_base", True)
    assert tuned.text and base.tokens and base.tokenizer.has_chat_tokens
    labels = [c for c in captions(chat) if c.startswith("**cute_chat") and " · " in c]
    assert labels == ["**cute_chat** · instruction-tuned",
                      "**cute_chat_base** · never instruction-tuned: its chat tokens are untrained"]
    assert len(seen_chips(chat)) == 2, "what each model read"


def test_compare_without_a_base_lets_the_learner_pick(app):
    open_page(app, "chat")
    app.toggle(key="chat_compare").set_value(True).run()
    assert any(i.startswith("cute_llm names no base model: pick a model") for i in infos(app))
    app.selectbox(key="chat_partner").set_value(file_key(SHIPPED_DIR / "cute_bpe.pth")).run()
    say(app, "the cat sat on the")
    assert [a.model_name for a in turns(app, COMPLETER)[0].answers] == ["cute_llm", "cute_bpe"]


def test_a_completer_is_explained_can_be_asked_and_switched_to_cute_chat(app):
    open_page(app, "chat")
    assert any("**cute_llm** is a text completer" in i and "never instruction-tuned" in i for i in infos(app))
    say(app, "what colour is the snow?")
    say(app, "and the grass?")
    answer = turns(app, COMPLETER)[0].answers[0]
    assert answer.untrained and answer.tokens
    assert "**cute_llm** · never instruction-tuned: its chat tokens are untrained" in captions(app)
    grown = app.session_state["chat_grown"][COMPLETER]
    assert grown[2] is turns(app, COMPLETER)[1].answers[0].tokenizer and grown[2].has_chat_tokens
    app.run()
    assert app.session_state["chat_grown"][COMPLETER] is grown, "the grown copy is made once, not every rerun"
    button(app, "Switch to cute_chat").click().run()
    no_exception(app)
    assert app.session_state["active_model"] == CHAT
    assert not any("text completer" in i for i in infos(app))
    assert turns(app) == [], "each model keeps its own conversation"


def test_new_chat_clears_the_history(chat):
    say(chat, "what colour is the snow?")
    button(chat, "New chat").click().run()
    assert turns(chat) == [] and not chat.chat_message


def test_a_whitespace_message_is_refused(chat):
    say(chat, "   \n\t ")
    assert any("empty" in e.value for e in chat.error)
    assert turns(chat) == [] and not chat.chat_message


def test_a_typed_end_stays_plain_text(chat):
    say(chat, "what colour is <|end|> the snow?")
    answer = turns(chat)[0].answers[0]
    tok = answer.tokenizer
    assert answer.context.ids.count(tok.chat_id(END)) == 1, "only the template's own <|end|>"
    assert answer.text, "the typed <|end|> did not end the question"
    assert "what colour is <|end|> the snow?" in [t.value for t in chat.text]
    chips = seen_chips(chat)[0]
    typed = chips[1:chips.index(("user control", END))]
    assert [text for cls, text in typed if "control" not in cls] == [text for cls, text in typed]
    assert "end" in [text for cls, text in typed], "its letters are ordinary tokens"


def test_unknown_words_are_pointed_out(chat):
    say(chat, "zorblax quuxify")
    assert any(i.startswith("None of your words is in cute_chat's vocabulary: it sees only `<unk>`")
               and "`zorblax`" in i and "`quuxify`" in i for i in infos(chat))
    say(chat, "what colour is the zorblax?")
    assert any(i.startswith("Not in cute_chat's vocabulary") for i in infos(chat))
    assert ("user unk", "<unk>") in seen_chips(chat)[0]


def test_a_long_conversation_shows_where_the_window_cut(chat):
    for question in ["what colour is the snow?", "what is the home of the cow?", "tell me about the rain.",
                     "what colour is the grass?"]:
        say(chat, question)
    last = turns(chat)[-1].answers[0]
    assert last.context.dropped_messages > 0 and len(last.context.ids) <= 64
    note = (f"The model reads {len(last.context.ids)} tokens: the oldest {last.context.dropped_messages} messages "
            "do not fit. Its window holds 64, with room kept for the reply.")
    assert note in infos(chat) and note in captions(chat), "under the question and in what the model sees"
    say(chat, "the cat sat on the mat " * 20)
    cropped = turns(chat)[-1].answers[0].context.cropped_tokens
    assert cropped > 0
    assert any(f"the first {cropped} tokens of your message were cut" in i for i in infos(chat))
