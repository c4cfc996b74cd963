"""The instruction-tuning data (data/chat_train.jsonl, data/chat_eval.jsonl), read with plain `json`: its shape, its
words and lengths, an evaluation set kept apart from training, and the generator that wrote it (tools/make_chat_data.py)
still writing the same bytes."""

from __future__ import annotations

import json
import re
import string
from pathlib import Path

import pytest

from cutellm.tokenizer import SimpleWordTokenizer
from tools import make_chat_data

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT / "data" / "chat_train.jsonl"
EVAL = ROOT / "data" / "chat_eval.jsonl"
CORPUS = ROOT / "data" / "training_data.txt"
WORD_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def read_jsonl(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n") and "\r" not in text
    return [json.loads(line) for line in text.splitlines()]


def normalise(text: str) -> str:
    """Lower case, whitespace collapsed, trailing punctuation stripped: how questions are compared."""
    return re.sub(r"\s+", " ", text.lower()).strip().rstrip(string.punctuation + " ")


@pytest.fixture(scope="module")
def train() -> list[dict]:
    return read_jsonl(TRAIN)


@pytest.fixture(scope="module")
def evals() -> list[dict]:
    return read_jsonl(EVAL)


@pytest.fixture(scope="module")
def corpus() -> str:
    return CORPUS.read_text(encoding="utf-8")


def user_messages(train: list[dict]) -> list[str]:
    return [m["content"] for c in train for m in c["messages"] if m["role"] == "user"]


def test_there_are_enough_conversations_and_questions(train, evals):
    assert len(train) >= 500
    assert len(evals) >= 60
    two_turn = sum(len(c["messages"]) == 4 for c in train)
    assert 0.2 <= two_turn / len(train) <= 0.45  # about a third


def test_training_conversations_alternate_user_and_assistant(train):
    for c in train:
        assert set(c) == {"messages"}
        roles = [m["role"] for m in c["messages"]]
        assert roles in (["user", "assistant"], ["user", "assistant", "user", "assistant"]), c
        for m in c["messages"]:
            assert set(m) == {"role", "content"} and isinstance(m["content"], str) and m["content"].strip(), c
    assert len({json.dumps(c) for c in train}) == len(train)  # no conversation twice


def test_answers_are_one_short_sentence(train):
    for c in train:
        for m in c["messages"]:
            if m["role"] == "assistant":
                assert 3 <= len(WORD_RE.findall(m["content"])) <= 12, m["content"]


def test_evaluation_lines_are_one_question_with_lower_case_words_to_accept(evals):
    for line in evals:
        assert set(line) == {"messages", "accept"}
        [message] = line["messages"]
        assert message["role"] == "user" and message["content"].strip()
        assert line["accept"], line
        for word in line["accept"]:
            assert isinstance(word, str) and word == word.lower() and WORD_RE.fullmatch(word), line
    questions = [normalise(line["messages"][0]["content"]) for line in evals]
    assert len(set(questions)) == len(questions)


def test_evaluation_questions_are_never_training_questions(train, evals):
    asked = {normalise(q) for q in user_messages(train)}
    for line in evals:
        question = normalise(line["messages"][0]["content"])
        assert question not in asked, question
        assert not any(question in q for q in asked), question  # not even inside a longer one


def test_evaluation_questions_are_not_in_the_corpus(evals, corpus):
    flat = re.sub(r"\s+", " ", corpus.lower())
    for line in evals:
        assert normalise(line["messages"][0]["content"]) not in flat


def test_each_evaluation_answer_is_taught_by_some_training_answer(train, evals):
    taught = {w for c in train for m in c["messages"] if m["role"] == "assistant"
              for w in WORD_RE.findall(m["content"].lower())}
    for line in evals:
        assert taught & set(line["accept"]), line


def test_every_word_is_a_word_of_the_corpus(train, evals, corpus):
    vocabulary = set(WORD_RE.findall(corpus.lower()))
    texts = [m["content"] for c in train + evals for m in c["messages"]]
    texts += [w for line in evals for w in line["accept"]]
    unknown = sorted({w for t in texts for w in WORD_RE.findall(t.lower())} - vocabulary)
    assert unknown == []


def test_conversations_fit_the_token_budget(train, evals):
    def cost(messages):
        return sum(len(SimpleWordTokenizer._split(m["content"])) + 2 for m in messages)

    assert max(cost(c["messages"]) for c in train) <= 60
    assert max(cost(line["messages"]) for line in evals) <= 24


def test_every_fact_is_stated_by_the_corpus(corpus):
    flat = re.sub(r"\s+", " ", corpus.lower())
    facts = [f for f in make_chat_data.FACTS if f.group not in ("chat", "unknown")]
    assert len(facts) >= 100
    for f in facts:
        assert f.support, f.key
        for phrase in f.support:
            assert phrase in flat, (f.key, phrase)


def test_the_files_are_what_the_generator_writes(tmp_path, capsys):
    assert make_chat_data.main(["--check"]) == 0
    # The check notices a change: a regenerated copy with one byte more is reported out of date.
    assert make_chat_data.main(["--data-dir", str(tmp_path)]) == 0
    assert (tmp_path / "chat_train.jsonl").read_bytes() == TRAIN.read_bytes()
    assert (tmp_path / "chat_eval.jsonl").read_bytes() == EVAL.read_bytes()
    with (tmp_path / "chat_eval.jsonl").open("a", encoding="utf-8") as f:
        f.write("\n")
    assert make_chat_data.main(["--check", "--data-dir", str(tmp_path)]) == 1
    assert "chat_eval.jsonl is out of date" in capsys.readouterr().err
