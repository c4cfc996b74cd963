"""Toy tasks (cutellm.tasks): generated problems with exact answers, a held-out split by question, greedy answers
scored exactly, a copy model that learns its rule, and clear refusals (unknown task, a context too short, a model
of another task or of text)."""

from __future__ import annotations

import random
import re
from dataclasses import replace

import pytest
import torch
from conftest import SHIPPED_MODEL

from cutellm import ConfigError, load_checkpoint
from cutellm.__main__ import main
from cutellm.lab.samples import SampleSpec, take_sample
from cutellm.tasks import (END, SEPARATOR, TASKS, check_fits, check_model_for, evaluate_task, get_task,
                           held_out_problems, solve, solve_all, task_configs, task_corpus, well_formed)

COPY_STEPS = 500   # the copy preset found its rule in 250-500 steps for every seed tried (1, 2, 1337)


def lines_of(text: str) -> list[tuple[str, str]]:
    return [tuple(line.split(SEPARATOR)) for line in text.splitlines()]


@pytest.mark.parametrize("name", TASKS)
def test_a_corpus_is_the_same_for_a_seed_and_keeps_its_sizes(name):
    task = TASKS[name]
    text = task_corpus(task, 300, seed=3)
    assert text == task_corpus(task, 300, seed=3) != task_corpus(task, 300, seed=4)
    assert text.count(END) == 300 and text.endswith(END)
    for question, answer in lines_of(text):
        assert answer == task.answer(question)
        assert len(question) + len(answer) + 2 <= task.longest   # "=" and the line break
    longest = max(len(line) + 1 for line in task_corpus(task, 4000, seed=0).splitlines())
    assert longest == task.longest, "Task.longest is the longest line a corpus holds"


def test_each_task_answers_its_rule():
    assert TASKS["copy"].line("bfa") == "bfa=bfa\n"
    assert TASKS["reverse"].answer("abcc") == "ccba"
    assert TASKS["sort"].answer("dbca") == "abcd"
    assert TASKS["add"].answer("047+385") == "0432" and TASKS["add"].answer("999+999") == "1998"
    assert [TASKS["brackets"].answer(q) for q in ("(()())", ")(", "(()", "()()")] == ["y", "n", "n", "y"]
    assert well_formed("") and not well_formed("())(")
    rng = random.Random(0)
    copies = [TASKS["copy"].question(rng) for _ in range(200)]
    assert all(len(set(q)) == len(q) and 3 <= len(q) <= 6 for q in copies), "copy letters are all different"
    sums = [TASKS["add"].question(rng) for _ in range(200)]
    assert all(re.fullmatch(r"\d{3}\+\d{3}", q) for q in sums)


@pytest.mark.parametrize("name", TASKS)
def test_no_held_out_problem_is_in_any_training_corpus(name):
    task = TASKS[name]
    held_out = {q for q, _ in held_out_problems(task, 200)}
    assert len(held_out) >= 30
    for seed in (0, 1, 7):
        trained = {q for q, _ in lines_of(task_corpus(task, 2000, seed=seed))}
        assert not trained & held_out


def test_unknown_tasks_and_short_contexts_are_refused_with_the_numbers():
    with pytest.raises(ConfigError, match="unknown task 'mul': choose one of copy, reverse, sort, add, brackets"):
        get_task("mul")
    with pytest.raises(ConfigError, match="up to 14 characters .* context holds 12: use a block size of at least 15"):
        check_fits(TASKS["copy"], 12)
    with pytest.raises(ConfigError, match="block size of at least 16"):
        task_configs(TASKS["brackets"], model=dict(block_size=15))
    model_config, train_config = task_configs(TASKS["add"], train=dict(max_steps=7))
    assert (model_config.positions, train_config.max_steps, train_config.warmup_steps) == ("rope", 7, 50)


@pytest.fixture(scope="module")
def copy_model(tmp_path_factory):
    """A copy model trained through the CLI with the task's preset, shortened to COPY_STEPS."""
    out = tmp_path_factory.mktemp("tasks") / "copy.pth"
    assert main(["train", "--task", "copy", "--steps", str(COPY_STEPS), "--out", str(out), "--log-every",
                 "100000"]) == 0
    return out


def test_a_copy_model_learns_its_rule(copy_model, capsys):
    model, tokenizer, meta = load_checkpoint(copy_model, with_meta=True)
    assert (meta["task"], meta["corpus"], tokenizer.kind) == ("copy", "task:copy", "char")
    score = evaluate_task(model, tokenizer, TASKS["copy"], 200)
    assert score.problems == 200 and score.accuracy >= 0.9
    assert main(["evaluate-task", "copy", "--model", str(copy_model), "-n", "50"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert re.fullmatch(r"copy: \d+\.\d% exact \(\d+ of 50 held-out problems\)", first)


def test_the_accuracy_is_a_count_of_exact_answers(copy_model):
    """On a model that gets some right and some wrong (a copy model asked to copy letters that repeat, which it
    never saw), the score is a hand count of the answers solve() gives one by one."""
    model, tokenizer = load_checkpoint(copy_model)
    task = replace(TASKS["copy"], question=TASKS["reverse"].question)
    score = evaluate_task(model, tokenizer, task, 60)
    problems = held_out_problems(task, 60)
    answers = [solve(model, tokenizer, q, max_chars=8) for q, _ in problems]
    right = sum(a == expected for a, (_, expected) in zip(answers, problems))
    assert 0 < right < 60, "the check needs both right and wrong answers"
    assert score.accuracy == right / 60
    assert [q for q, _, _ in score.misses] == [q for (q, e), a in zip(problems, answers) if a != e]


@pytest.mark.parametrize("trained", [True, False])
def test_batched_answers_equal_one_at_a_time(copy_model, trained):
    """solve_all (questions batched by length) is the speed trick; solve is the idea: same answers."""
    model, tokenizer = load_checkpoint(copy_model)
    if not trained:
        torch.manual_seed(0)
        for p in model.parameters():
            p.data.normal_(0, 0.3)
    questions = [q for q, _ in held_out_problems(TASKS["copy"], 40)] + ["ab", "hgfedcba"]
    for max_chars in (3, 8):
        assert solve_all(model, tokenizer, questions, max_chars) == [solve(model, tokenizer, q, max_chars)
                                                                     for q in questions]


def test_a_model_of_another_task_or_of_text_is_refused(copy_model, capsys):
    _, tokenizer, meta = load_checkpoint(copy_model, with_meta=True)
    with pytest.raises(ConfigError, match="trained on the copy task, not on the add task: .* --task add"):
        check_model_for(TASKS["add"], meta, tokenizer)
    check_model_for(TASKS["copy"], meta, tokenizer)
    assert main(["evaluate-task", "reverse", "--model", str(copy_model)]) == 2
    assert "trained on the copy task, not on the reverse task" in capsys.readouterr().err
    assert main(["evaluate-task", "copy", "--model", str(SHIPPED_MODEL)]) == 2
    assert "trained on text (training_data.txt), not on the copy task" in capsys.readouterr().err
    assert main(["evaluate-task", "copy", "--model", str(copy_model), "-n", "0"]) == 2
    with pytest.raises(SystemExit):
        main(["train", "--task", "mul"])
    assert "invalid choice: 'mul'" in capsys.readouterr().err


def test_a_stopped_task_run_says_how_to_resume_it(tmp_path, capsys):
    out = tmp_path / "add.pth"
    assert main(["train", "--task", "add", "--steps", "20", "--stop-at-step", "10", "--out", str(out)]) == 0
    assert f"--resume {out} --task add" in capsys.readouterr().out
    assert main(["train", "--task", "add", "--resume", str(out), "--out", str(out)]) == 0
    assert load_checkpoint(out, with_meta=True)[2]["steps"] == 20


def test_a_live_sample_of_a_task_model_is_its_held_out_accuracy(copy_model):
    model, tokenizer = load_checkpoint(copy_model)
    ticks = iter([10.0, 10.5])
    sample = take_sample(model, tokenizer, SampleSpec(), 40, task="copy", clock=lambda: next(ticks))
    score = evaluate_task(model, tokenizer, TASKS["copy"], 100)
    assert (sample.step, sample.accuracy, sample.seconds) == (40, score.accuracy, 0.5)
    first_question, expected, _ = score.answers[0]
    assert sample.continuation.startswith(f"{first_question}={expected} ✓")
    assert take_sample(model, tokenizer, SampleSpec(), 40).accuracy is None   # a text run has none
