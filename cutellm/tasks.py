"""Toy tasks with exact answers: text whose rule a learner can watch the model find.

Stories teach a model style, and nobody can say exactly what it learned. A task can: every line of its corpus is one
problem, `question=answer`, and a model that has found the rule answers a question it never saw.

    copy      abfe=abfe          repeat a sequence of different letters (solved by "induction" heads: find the
                                 letter just written in the question, copy the one after it)
    reverse   abfe=efba          the same letters, last first
    sort      fbae=abef          the letters in alphabetical order
    add       047+385=0432       two numbers of up to 3 digits, written with all their digits
    brackets  (()())=y           is this string of up to 12 brackets well formed? y or n

Problems are generated from a seed (nothing is downloaded), one tokenizer token per character. The held-out problems
are chosen by the question itself (a hash of it, `is_held_out`), so no held-out question can ever appear in a
training corpus, whatever the seed or the size. `solve` answers greedily; `evaluate_task` counts exact answers.
"""

from __future__ import annotations

import functools
import random
import zlib
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

import torch

from .config import ModelConfig, TrainConfig
from .errors import ConfigError
from .model import CuteLLM, evaluating
from .tokenizer import Tokenizer

SEPARATOR = "="   # between the question and its answer
END = "\n"        # after the answer: one problem per line
HELD_OUT_SHARE = 10   # one question in 10 (by hash) is kept for evaluation


def _letters(rng: random.Random, low: int = 3, high: int = 6, alphabet: str = "abcdefgh") -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(low, high)))


def _different_letters(rng: random.Random, low: int = 3, high: int = 6, alphabet: str = "abcdefgh") -> str:
    # No letter twice: "the letter after the c in the question" is then always one letter, the rule an induction
    # head carries out. With repeats allowed the same preset reached 70% in 3,000 steps instead of 100% in 500.
    return "".join(rng.sample(alphabet, rng.randint(low, high)))


def _brackets(rng: random.Random) -> str:
    # Half built well formed (so "y" is as common as "n"), half random.
    n = rng.randint(1, 6)
    if rng.random() < 0.5:
        text, depth = "", 0
        while len(text) < 2 * n:
            if depth and (rng.random() < 0.5 or depth + len(text) >= 2 * n):
                text, depth = text + ")", depth - 1
            else:
                text, depth = text + "(", depth + 1
        return text
    return "".join(rng.choice("()") for _ in range(2 * n))


def well_formed(text: str) -> bool:
    depth = 0
    for c in text:
        depth += 1 if c == "(" else -1
        if depth < 0:
            return False
    return depth == 0


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    question: Callable[[random.Random], str]
    answer: Callable[[str], str]
    longest: int                   # characters of the longest problem line, END included
    # The preset: a model and a recipe that learn the rule in about a minute on 2 CPU cores (README, "Toy tasks").
    model: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    problems: int = 4000           # training problems in the corpus
    # What to look for in its attention (Explore), once the rule is learned.
    attention_hint: str = ("Pick a character after the =: which characters of the question does it look at, in "
                           "each layer? The answer can only come from there.")

    def line(self, question: str) -> str:
        return f"{question}{SEPARATOR}{self.answer(question)}{END}"

    def preset(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The model and training fields of this task's preset: the tasks' shared ones, then its own."""
        return {**TASK_MODEL, **self.model}, {**TASK_TRAIN, **self.train}


def _add_question(rng: random.Random) -> str:
    # Zero-padded, so each digit sits at the same distance from the digits it is added to: the model can find
    # them by position, as a person lines the numbers up in columns.
    return f"{rng.randint(0, 999):03d}+{rng.randint(0, 999):03d}"


def _add(question: str) -> str:
    a, b = question.split("+")
    return f"{int(a) + int(b):04d}"


# Steps per task: what the default run needs to reach the accuracy README records (measured, 2 CPU cores).
TASKS: dict[str, Task] = {t.name: t for t in (
    Task("copy", "repeat a sequence of 3-6 different letters", _different_letters, lambda q: q, longest=14,
         train=dict(max_steps=1000), attention_hint=(
             "An induction head, in two steps. Layer 1: find a head where each letter looks at the letter just "
             "before it. Layer 2: find a head where each letter after the = looks at the letter that followed the "
             "same letter in the question (from the = itself: the question's first letter). That is the letter it "
             "writes next.")),
    Task("reverse", "a sequence of 3-6 letters, last first", _letters, lambda q: q[::-1], longest=14,
         train=dict(max_steps=2000)),
    Task("sort", "a sequence of 3-6 letters in alphabetical order", _letters, lambda q: "".join(sorted(q)),
         longest=14, train=dict(max_steps=2500)),
    Task("add", "the sum of two numbers of up to 3 digits", _add_question, _add, longest=13,
         train=dict(max_steps=3000)),
    Task("brackets", "is a string of up to 12 brackets well formed? y or n", _brackets,
         lambda q: "y" if well_formed(q) else "n", longest=15, train=dict(max_steps=1500)),
)}
# Rotary positions: a problem starts anywhere in a window, so its rule is about relative places ("the letter 5
# back"), which RoPE gives every head directly: the copy preset reached 99.5% with RoPE and 20.5% with learned
# absolute positions in its 1,000 steps. No dropout: the rule, not the noise, is what there is to learn.
TASK_MODEL = dict(d_model=64, n_heads=4, n_layers=2, block_size=32, dropout=0.0, positions="rope")
TASK_TRAIN = dict(batch_size=32, max_steps=1500, learning_rate=3e-3)
# Beneath the settings the Train page shows: a short warm-up for short runs, and GPT-2's weight decay (the text
# recipe's stronger 0.5 holds back overfitting a small corpus; here the held-out problems measure that directly).
TASK_RECIPE = dict(warmup_steps=50, weight_decay=0.1)


def for_task(task: Task, model_config: ModelConfig, train_config: TrainConfig) -> tuple[ModelConfig, TrainConfig]:
    """The configs a run on `task` trains with: these, with the task recipe beneath them; refused when a problem
    would not fit in the context."""
    check_fits(task, model_config.block_size)
    return model_config, replace(train_config, **TASK_RECIPE)


def task_configs(task: Task, model: Mapping[str, Any] | None = None, train: Mapping[str, Any] | None = None
                 ) -> tuple[ModelConfig, TrainConfig]:
    """The task's preset, with `model` / `train` fields given on top (the CLI's flags)."""
    preset_model, preset_train = task.preset()
    return for_task(task, ModelConfig(**{**preset_model, **(model or {})}),
                    TrainConfig(**{**preset_train, **(train or {})}))


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}: choose one of {', '.join(TASKS)}")
    return TASKS[name]


def is_held_out(question: str) -> bool:
    """Whether `question` belongs to the evaluation problems: decided by its text alone, for every seed and size."""
    return zlib.crc32(question.encode()) % HELD_OUT_SHARE == 0


def _questions(name: str, question: Callable[[random.Random], str], n: int, seed: int, held_out: bool) -> list[str]:
    rng = random.Random(f"{name}:{seed}:{held_out}")
    out, seen = [], set()
    for _ in range(200 * n):
        if len(out) == n:
            break
        q = question(rng)
        if is_held_out(q) == held_out and (not held_out or q not in seen):   # held-out problems are distinct
            seen.add(q)
            out.append(q)
    return out


def task_corpus(task: Task, n: int | None = None, seed: int = 0) -> str:
    """The training text: `n` problems (the task's default count), one per line, none of them held out."""
    return "".join(task.line(q) for q in _questions(task.name, task.question, n or task.problems, seed, held_out=False))


def held_out_problems(task: Task, n: int = 200, seed: int = 0) -> list[tuple[str, str]]:
    """Up to `n` distinct evaluation problems as (question, answer). Drawn once per task and size: a task run asks
    for the same ones at every evaluation."""
    return list(_held_out(task.name, task.question, task.answer, n, seed))


@functools.lru_cache(maxsize=64)
def _held_out(name: str, question: Callable, answer: Callable, n: int, seed: int) -> tuple[tuple[str, str], ...]:
    return tuple((q, answer(q)) for q in _questions(name, question, n, seed, held_out=True))


def task_example(task: Task) -> str:
    """One held-out problem with its answer, `question=answer`: a text to look inside a task model with (Explore)."""
    question, answer = held_out_problems(task, 1)[0]
    return f"{question}{SEPARATOR}{answer}"


def check_fits(task: Task, block_size: int) -> None:
    """A problem must fit in the context, with the end of the one before it (which tells the model one begins)."""
    if task.longest + 1 > block_size:
        raise ConfigError(f"a {task.name} problem takes up to {task.longest} characters plus the line break before "
                          f"it, {task.longest + 1} tokens, and the context holds {block_size}: use a block size of "
                          f"at least {task.longest + 1}")


def solve(model: CuteLLM, tokenizer: Tokenizer, question: str, max_chars: int = 8) -> str:
    """The model's answer to `question`: greedily, one character at a time, up to the end of the line (at most
    `max_chars` characters). The line break before the question tells the model a problem begins."""
    ids = tokenizer.encode(END + question + SEPARATOR)
    end = tokenizer.encode(END)[0]
    out: list[int] = []
    with evaluating(model):
        for _ in range(max_chars):
            window = (ids + out)[-model.config.block_size:]
            logits, _ = model(torch.tensor([window], device=model.device))   # (1, T, vocab)
            token = int(logits[0, -1].argmax())
            if token == end:
                break
            out.append(token)
    return tokenizer.decode(out)


# -- the speed trick, fenced off: solve() for many questions in a few batched passes (tests pin it to solve) -------
def solve_all(model: CuteLLM, tokenizer: Tokenizer, questions: list[str], max_chars: int = 8) -> list[str]:
    """[solve(q) for q in questions], batched: questions whose prompts have the same number of tokens are answered
    together, so every row of a batch has its prompt at the same positions and no padding changes what the model
    reads. Live accuracy during training asks this at every evaluation (a few batches instead of ~1,000 passes)."""
    end = tokenizer.encode(END)[0]
    prompts = [tokenizer.encode(END + q + SEPARATOR) for q in questions]
    by_length: dict[int, list[int]] = {}
    for i, ids in enumerate(prompts):
        by_length.setdefault(len(ids), []).append(i)
    answers: list[str] = [""] * len(questions)
    with evaluating(model):
        for rows in by_length.values():
            ids = torch.tensor([prompts[i] for i in rows], device=model.device)        # (n, T)
            for _ in range(max_chars):
                logits, _ = model(ids[:, -model.config.block_size:])                 # (n, T, vocab)
                ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], 1)    # (n, T + 1)
                if bool((ids[:, len(prompts[rows[0]]):] == end).any(1).all()):      # every row has ended
                    break
            for i, row in zip(rows, ids.tolist()):
                answer = row[len(prompts[i]):]
                answers[i] = tokenizer.decode(answer[:answer.index(end)] if end in answer else answer)
    return answers


@dataclass(frozen=True)
class TaskScore:
    task: str
    answers: tuple[tuple[str, str, str], ...]   # (question, expected, answered) per held-out problem

    @property
    def problems(self) -> int:
        return len(self.answers)

    @property
    def misses(self) -> list[tuple[str, str, str]]:
        return [a for a in self.answers if a[1] != a[2]]

    @property
    def accuracy(self) -> float:
        """Exact answers / problems."""
        return sum(expected == answered for _, expected, answered in self.answers) / max(1, len(self.answers))


def evaluate_task(model: CuteLLM, tokenizer: Tokenizer, task: Task, n: int = 200, seed: int = 0) -> TaskScore:
    """Solve `n` held-out problems greedily; an answer counts only when it is exactly right."""
    problems = held_out_problems(task, n, seed)
    longest = max(len(expected) for _, expected in problems)
    answered = solve_all(model, tokenizer, [q for q, _ in problems], max_chars=longest + 2)
    return TaskScore(task.name, tuple((q, expected, a) for (q, expected), a in zip(problems, answered)))


def check_model_for(task: Task, meta: Mapping[str, Any], tokenizer: Tokenizer) -> None:
    """Refuse a model that was not trained on `task` (another task, or text), with the reason."""
    trained_on = meta.get("task")
    if trained_on != task.name:
        what = f"the {trained_on} task" if trained_on else f"text ({meta.get('corpus', 'a corpus')})"
        raise ConfigError(f"this model was trained on {what}, not on the {task.name} task: train one with "
                          f"python -m cutellm train --task {task.name}")
    missing = {c for q, a in held_out_problems(task, 20) for c in task.line(q)} - set(tokenizer.token_to_id)
    if missing:
        raise ConfigError(f"this model's vocabulary lacks {''.join(sorted(missing))!r}, which {task.name} "
                          "problems use")
