"""The Learn page through AppTest: each lesson renders on the active model and notices its Try this; the lesson and
the lessons done live in the URL; a bad URL gets lesson 1 and a notice."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

import pytest

from cutellm.chat import MAX_REPLY_TOKENS
from ui.learn.lessons import LESSONS

from .conftest import ROOT, button, no_exception, open_page


def open_learn(app, **params):
    for key, value in params.items():
        app.query_params[key] = value
    return open_page(app, "learn")


def header(app) -> str:
    return app.header[0].value


def noticed(app) -> str | None:
    return next((s.value for s in app.success), None)


def do_tokens(app):
    app.text_input(key="learn_tok_text").set_value("the zebra sat on the mat").run()
    return r"“zebra” is not among the 1,000 tokens this model knows, so it reads `<unk>`"


def do_embeddings(app):
    app.text_input(key="learn_emb_word").set_value("dog").run()
    return r"The nearest tokens to “dog” are “[^”]+” \(0\.\d\d\)"


def do_attention(app):
    app.selectbox(key="learn_att_head").set_value(2).run()
    return r"For “sat” in layer 1, head 1 puts \d+% on “\w+”; head 2 puts \d+% on “\w+”"


def do_logit_lens(app):
    app.number_input(key="learn_lens_pos").set_value(2).run()
    return r"After “sat” the model finally predicts “[^”]+” \(\d+%\); read from the (embedding|block \d) on"


def do_sampling(app):
    app.slider(key="learn_samp_temp").set_value(1.7).run()
    return r"At temperature 1.7 the top token “mat” fell from (\d+)% to (\d+)%"


def do_blanks(app):
    app.text_input(key="learn_blank_phrase").set_value("the ___ ran to the park").run()
    return r"With `the ___ ran to the park` the model picks “\w+” \(\d+% of the candidates' probability\)"


def do_loss(app):
    button(app, "Train a tiny model (300 steps)").click().run()
    return r"The validation loss fell from (\d+\.\d\d) \(a uniform guess scores 6\.\d\d\) to (\d+\.\d\d)"


def do_overfitting(app):
    button(app, "Train on 3,000 words (300 steps)").click().run()
    return r"Validation loss was lowest at step (\d+) \((\d+\.\d\d)\) and rose to (\d+\.\d\d) by step 300"


def do_causal(app):
    button(app, "Train both (with and without the mask)").click().run()
    return r"Without the mask the training loss reached (\d+\.\d\d) \(with it: (\d+\.\d\d)\)"


def do_scale(app):
    button(app, "Train three sizes").click().run()
    return r"From ([\d,]+) to ([\d,]+) parameters \(\d+×\) the validation loss fell: (\d+\.\d\d) to (\d+\.\d\d)"


def do_blocks(app):
    button(app, "Train both (learned positions, RoPE)").click().run()
    return r"With RoPE the validation loss is \d+\.\d{3}, with learned positions \d+\.\d{3} \([+-]\d+\.\d{3}\)"


def do_ablation(app):
    box = app.selectbox(key="learn_abl_head")
    box.set_value(box.options[1]).run()
    return r"Without layer 1 head 1 the loss on this text goes from (\d+\.\d{3}) to (\d+\.\d{3})"


def do_task(app):
    button(app, "Train a copy model (300 steps)").click().run()
    return r"Held-out accuracy went from 0% at step \d+ to (\d+)% at step 300"


def do_chat(app):
    app.text_input(key="learn_chat_q").set_value("what does a pig eat?").run()
    return (r"You asked “what does a pig eat\?”: cute_chat_base wrote (\d+) tokens with no `<\|end\|>`; cute_chat "
            r"wrote (\d+) tokens and ended with `<\|end\|>`")


TRY_THIS = [do_tokens, do_embeddings, do_attention, do_logit_lens, do_sampling, do_loss, do_overfitting,
            do_causal, do_blanks, do_scale, do_blocks, do_ablation, do_task, do_chat]


def test_there_is_one_try_this_per_lesson():
    assert len(TRY_THIS) == len(LESSONS)


@pytest.mark.parametrize("number", range(1, len(LESSONS) + 1))
def test_each_lesson_notices_its_try_this(app, number):
    open_learn(app, lesson=str(number))
    no_exception(app)
    assert header(app) == f"{number} · {LESSONS[number - 1].title}"
    assert noticed(app) is None, "nothing is done before the learner acts"
    expected = TRY_THIS[number - 1](app)
    no_exception(app)
    outcome = noticed(app)
    assert outcome and re.search(expected, outcome), outcome
    if TRY_THIS[number - 1] is do_sampling:   # the top token's share falls when the temperature rises
        before, after = map(int, re.search(expected, outcome).groups())
        assert after < before
    if TRY_THIS[number - 1] is do_loss:   # the loss falls, and each sample says what the model wrote then
        start, end = map(float, re.search(expected, outcome).groups())
        assert end < start
        frame = app.dataframe[0].value
        assert len(frame) >= 5 and frame["step"].iloc[-1] == 300 and frame["validation loss"].notna().all()
    if TRY_THIS[number - 1] is do_overfitting:   # validation turned back up
        _, best, last = re.search(expected, outcome).groups()
        assert float(last) > float(best)
    if TRY_THIS[number - 1] is do_causal:   # reading the answer makes the training loss lower
        cheat, causal = map(float, re.search(expected, outcome).groups())
        assert cheat < causal
    if TRY_THIS[number - 1] is do_task:   # the copy rule is found in 300 steps; the model joins the session's
        assert int(re.search(expected, outcome).group(1)) >= 90
        assert [m.value for m in app.metric][:2] == ["0%", re.search(expected, outcome).group(1) + "%"]
        assert app.metric[0].label.startswith("Held-out accuracy at step")
        button(app, "Make it the active model").click().run()
        assert app.session_state["active_model"].startswith("session:run-")
    if TRY_THIS[number - 1] is do_chat:   # the base ran out of tokens still writing; the tuned model answered
        base, tuned = map(int, re.search(expected, outcome).groups())
        assert base == MAX_REPLY_TOKENS and 1 < tuned < MAX_REPLY_TOKENS
        replies = [h.proto.body for h in app.get("html") if h.proto.body.startswith('<div class="cute-text">')]
        assert len(replies) == 2 and "pig" in replies[1]
    assert app.query_params["done"] == str(number) and app.query_params["lesson"] == str(number)
    assert app.selectbox(key="learn_pick").options[number - 1].startswith(f"✓ {number}")


def test_next_and_previous_walk_the_lessons_and_the_url_follows(app):
    open_learn(app)
    assert header(app).startswith("1 · ")
    button(app, "Next lesson").click().run()
    assert header(app).startswith("2 · ") and app.query_params["lesson"] == "2"
    button(app, "Previous").click().run()
    assert header(app).startswith("1 · ") and app.query_params["lesson"] == "1"
    app.selectbox(key="learn_pick").set_value(3).run()
    assert header(app).startswith("3 · ") and app.query_params["lesson"] == "3"


def test_a_link_opens_its_lesson_with_the_lessons_done(app):
    open_learn(app, lesson="2", done="1,3")
    no_exception(app)
    assert header(app).startswith("2 · ")
    labels = app.selectbox(key="learn_pick").options
    assert labels[0].startswith("✓ 1") and labels[1].startswith("○ 2") and labels[2].startswith("✓ 3")


@pytest.mark.parametrize("params", [dict(lesson="abc"), dict(lesson="99"), dict(lesson="0"),
                                    dict(lesson="x" * 5000), dict(lesson="2", done="x,99,-1")])
def test_a_bad_url_gets_lesson_one_or_is_ignored_with_a_notice(app, params):
    open_learn(app, **params)
    no_exception(app)
    if params["lesson"] == "2":
        assert header(app).startswith("2 · ") and "done" not in app.query_params
        return
    assert header(app).startswith("1 · ")
    assert any("There is no lesson" in i.value and "showing lesson 1" in i.value for i in app.info)
    assert app.query_params["lesson"] == "1"


def test_home_points_to_the_first_lesson(app):
    links = [link for link in app.get("page_link") if "Start with lesson 1" in link.proto.label]
    assert links and links[0].proto.page.endswith("learn")


def test_every_lesson_renders_on_a_character_model_it_trained(app):
    """The lessons run on the learner's own model, whatever its tokenizer: here the copy model its lesson trains
    (characters, a vocabulary of 13), with whose alphabet the default English texts are mostly unknown."""
    task = 1 + TRY_THIS.index(do_task)
    open_learn(app, lesson=str(task))
    do_task(app)
    button(app, "Make it the active model").click().run()
    for number in (n for n in range(1, len(LESSONS) + 1) if n != task):
        app.selectbox(key="learn_pick").set_value(number).run()
        no_exception(app)
        assert header(app).startswith(f"{number} · ")
    assert app.session_state["active_model"].startswith("session:run-"), "the lessons did not change the model"
    # The chat lesson uses the two shipped chat models, not the active one: it still answers.
    assert any(h.proto.body == '<div class="cute-text"><span class="new">the sky is blue.</span></div>'
               for h in app.get("html"))


def chat_lesson_number() -> int:
    return 1 + TRY_THIS.index(do_chat)


def test_the_chat_lesson_marks_the_tokens_the_loss_learns(app):
    from cutellm.chat import Message, template
    from cutellm.checkpoint import load_checkpoint

    open_learn(app, lesson=str(chat_lesson_number()))
    no_exception(app)
    chips = next(h.proto.body for h in app.get("html") if "chat-chips" in h.proto.body)
    spans = re.findall(r'<span class="(learned|read)[^"]*" title="id (\d+) · (user|assistant) · [^"]*">([^<]*)<', chips)
    # The default question and the tuned model's reply to it, as the template writes them.
    _, tokenizer = load_checkpoint(ROOT / "models" / "cute_chat.pth")
    conversation = [Message("user", "what color is the sky?"), Message("assistant", "the sky is blue.")]
    expected = template(tokenizer, conversation)
    assert [int(i) for _, i, _, _ in spans] == expected.ids
    assert [c == "learned" for c, _, _, _ in spans] == expected.learned
    learned = [text for c, _, _, text in spans if c == "learned"]
    assert learned == ["the", "sky", "is", "blue", ".", "&lt;|end|&gt;"], "the reply and its <|end|>, nothing else"
    assert all(role == "assistant" for c, _, role, _ in spans if c == "learned")
    assert any(f"only the {len(learned)} outlined tokens" in c.value for c in app.caption)


def test_the_chat_lesson_says_how_to_make_missing_chat_models(app, monkeypatch):
    from ui import state

    every = state.model_files
    monkeypatch.setattr(state, "model_files", lambda: [p for p in every() if p.stem != "cute_chat_base"])
    open_learn(app, lesson=str(chat_lesson_number()))
    no_exception(app)
    warning = next(w.value for w in app.warning if "chat models" in w.value)
    assert "`cute_chat_base.pth` is missing" in warning and "make run-chat" in warning
    assert not [t for t in app.text_input if t.key == "learn_chat_q"], "no question without both models"
    assert not [h for h in app.get("html") if "chat-chips" in h.proto.body]


@pytest.mark.parametrize("number", range(1, len(LESSONS) + 1))
def test_each_lesson_links_to_its_full_page_with_its_settings(app, number):
    open_learn(app, lesson=str(number))
    link = next(m.value for m in app.markdown if "The full page:" in m.value)
    target = re.search(r"\]\((\w+)\?([^)]*)\)", link)
    page, query = target.group(1), dict(parse_qsl(target.group(2)))
    assert page == LESSONS[number - 1].page and query["model"] == "cute_llm"
    for key in list(app.query_params):   # the link is a new address: the Learn page's parameters are not in it
        del app.query_params[key]
    for key, value in query.items():
        app.query_params[key] = value
    open_page(app, page)
    no_exception(app)
    # Every setting of the link is one the page reads: none is refused.
    assert not [i.value for i in app.info if i.value.startswith("The link")]
    if LESSONS[number - 1].title == "From logits to one token":
        assert (app.text_area(key="gen_prompt").value, app.session_state["gen_mode"],
                app.session_state["gen_temperature"]) == ("the cat sat on the", "Sampled", 1.0)
    if LESSONS[number - 1].title == "What the loss means":
        assert (app.radio(key="tr_tokenizer").value, app.number_input(key="tr_layers").value,
                app.number_input(key="tr_steps").value) == ("word", 1, 300)


def test_the_glossary_explains_each_term_the_app_shows_and_links_its_lesson(app):
    from cutellm.glossary import GLOSSARY

    for term in ("instruction tuning", "chat template", "loss mask"):
        assert GLOSSARY[term].lesson == "From a completer to an assistant"

    # The terms a learner met unexplained, each now in one place.
    for term in ("logits", "softmax", "loss", "perplexity", "ln V", "d_model", "head", "query / key / value",
                 "LayerNorm", "residual stream", "tied LM head", "AdamW", "warmup / cosine", "dropout", "overfitting",
                 "PCA", "bits per character", "beam width", "bf16", "gradient accumulation"):
        assert term in GLOSSARY and GLOSSARY[term].meaning.endswith(".")
    titles = {lesson.title for lesson in LESSONS}
    assert {t.lesson for t in GLOSSARY.values() if t.lesson} <= titles, "every lesson a term names exists"
    open_learn(app, term="perplexity")
    no_exception(app)
    line = next(i.value for i in app.info if i.value.startswith("**perplexity**"))
    number = 1 + [lesson.title for lesson in LESSONS].index("What the loss means")
    assert f"[lesson {number}](learn?lesson={number})" in line
    open_learn(app, term="loss mask")
    line = next(i.value for i in app.info if i.value.startswith("**loss mask**"))
    assert f"[lesson {chat_lesson_number()}](learn?lesson={chat_lesson_number()})" in line
    assert any(e.label.startswith(f"{len(GLOSSARY)} terms") for e in app.expander)
    open_learn(app, term="flux capacitor")
    assert any("The glossary has no 'flux capacitor'" in i.value for i in app.info)
    # Explore's pictures point to the term they rest on.
    open_page(app, "explore")
    app.session_state["ex_tab"] = "Logit lens"
    app.run()
    assert any("[What is logit lens?](learn?term=logit+lens)" in c.value for c in app.caption)


def test_the_help_where_a_term_appears_links_to_its_glossary_line(app):
    from cutellm.glossary import GLOSSARY
    from ui.train.settings_form import GLOSSARY_TERMS

    assert set(GLOSSARY_TERMS.values()) <= set(GLOSSARY)
    open_page(app, "train")
    assert "[What is d_model?](learn?term=d_model)" in app.number_input(key="tr_d_model").help
    assert "learn?term=learning+rate" in app.number_input(key="tr_lr").help
    open_page(app, "generate")
    assert "[What is temperature?](learn?term=temperature)" in app.slider(key="gen_temperature").help
    open_page(app, "fill_blanks")
    assert "learn?term=beam+width" in app.slider(key="fill_beam").help


def test_a_stale_address_does_not_take_the_learner_back_a_lesson(app):
    open_learn(app, lesson="1")
    button(app, "Next lesson").click().run()
    app.query_params["lesson"] = "1"   # a rerun sent before the browser took the new address
    app.run()
    assert header(app).startswith("2 · ") and app.query_params["lesson"] == "2"
