"""Live samples: what the model writes at each evaluation point of a run, so a learner watches noise turn into text.

At every evaluation the training job (in its worker thread) continues a fixed prompt greedily for a few tokens and
fills one fixed blank. Greedy decoding and blank scoring draw no random numbers and run in eval mode, so taking
samples changes nothing about the training itself; the blank tries only the corpus's most frequent words, which keeps
the cost of a sample to tens of milliseconds. On top of that a sample is skipped while the samples so far have cost
more than `budget` (1%) of the training time: a tiny model that evaluates every few hundred milliseconds gets fewer
samples, and no run is more than ~1% slower for them (see README, "The Train page as a lab", for the measured cost).
A model trained on a toy task (cutellm.tasks) is asked its task instead: `TASK_SAMPLE_PROBLEMS` held-out problems in
a few batched passes, giving the accuracy the live view plots beside the loss and a few of its answers.
A model being instruction-tuned (cutellm.chat) answers `CHAT_QUESTIONS` instead: the replies show it learn to answer
and to stop.
That decision, `SampleSpec.due`, reads no clock: the job hands it two readings of its own clock (the training time
and the samples' cost), so a test with a clock it moves by hand checks the budget exactly, whatever the host's speed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable

from ..chat import Message, reply
from ..completion import complete_phrase
from ..errors import CuteLLMError
from ..inference import generate
from ..model import CuteLLM
from ..tasks import evaluate_task, get_task
from ..tokenizer import Tokenizer

DEFAULT_PROMPT = "the cat sat on the"
DEFAULT_BLANK = "the ___ sat on the mat"
SAMPLE_TOKENS = 12          # tokens of each continuation
SAMPLE_CANDIDATES = 100     # words tried in the blank: the corpus's most frequent
# The most that samples may cost, as a share of the training time. At 2% they were the largest part of what training
# in the app costs over the CLI; at 1% the CLI's default run still gets a sample about every 2 s, as often as the
# page redraws (bench/README.md, "Speed, round sixteen").
SAMPLE_BUDGET = 0.01
# A task run's accuracy is what the run is for, and its jump is a matter of a few evaluations: a task model may spend
# up to 10% on it (100 problems cost ~50 ms on 2 cores, ~12% of a copy run at every one of its 40 evaluations).
TASK_SAMPLE_BUDGET = 0.10
TASK_SAMPLE_PROBLEMS = 100  # held-out problems a task model answers at each sample
TASK_SAMPLE_SHOWN = 3       # of which the sample shows this many
CHAT_QUESTIONS = ("what color is the sky?", "hello!")   # what an instruction-tuned model is asked at each sample


@dataclass(frozen=True)
class SampleSpec:
    """What to sample at each evaluation: a prompt to continue and a phrase with one `___` to fill."""

    prompt: str = DEFAULT_PROMPT
    blank: str = DEFAULT_BLANK
    max_new_tokens: int = SAMPLE_TOKENS
    candidates: int = SAMPLE_CANDIDATES
    budget: float = SAMPLE_BUDGET
    task_budget: float = TASK_SAMPLE_BUDGET   # the budget of a toy task's run

    def due(self, spent_s: float, elapsed_s: float, last_step: bool, task: bool = False) -> bool:
        """Whether to take a sample now, having spent `spent_s` on samples in `elapsed_s` of run time (samples
        included), for a text run or a toy `task`'s. The run's last evaluation always gets one: it is what the model
        ended up writing."""
        budget = self.task_budget if task else self.budget
        return last_step or spent_s <= budget * max(0.0, elapsed_s - spent_s)


@dataclass(frozen=True)
class LiveSample:
    step: int
    continuation: str        # prompt + greedy continuation, or why there is none
    filled: str              # the phrase with its blank filled, or why it is not
    seconds: float = 0.0     # what taking this sample cost
    accuracy: float | None = None   # a task model's exact answers on held-out problems (None for text)


def take_sample(model: CuteLLM, tokenizer: Tokenizer, spec: SampleSpec, step: int,
                words: Iterable | None = None, *, task: str | None = None, chat: bool = False,
                clock: Callable[[], float] = time.perf_counter) -> LiveSample:
    """The model's greedy continuation of `spec.prompt` and its best filling of `spec.blank`, now, with what it cost
    on `clock`. A prompt or phrase the model cannot read (say, only unknown words) gives the reason instead of text.
    A model of the toy `task` answers held-out problems of it instead: the accuracy and the first few answers."""
    began = clock()
    if task is not None:
        score = evaluate_task(model, tokenizer, get_task(task), TASK_SAMPLE_PROBLEMS)
        shown = "  ".join(f"{q}={a or '∅'} {'✓' if a == expected else f'✗ ({expected})'}"
                          for q, expected, a in score.answers[:TASK_SAMPLE_SHOWN])
        return LiveSample(step, shown, f"{score.accuracy:.0%} of {score.problems} held-out problems exact",
                          clock() - began, accuracy=score.accuracy)
    if chat:
        answers = [_chat_answer(model, tokenizer, question, spec.max_new_tokens) for question in CHAT_QUESTIONS]
        return LiveSample(step, answers[0], answers[1], clock() - began)
    try:
        continuation = generate(model, tokenizer, spec.prompt, spec.max_new_tokens)
    except CuteLLMError as err:
        continuation = f"(no continuation: {err})"
    try:
        filled = complete_phrase(model, tokenizer, spec.blank, top_k=1, words=words, beam_width=1,
                                 max_candidates=spec.candidates).filled_text
    except CuteLLMError as err:
        filled = f"(no filling: {err})"
    return LiveSample(step, continuation, filled, clock() - began)


def _chat_answer(model: CuteLLM, tokenizer: Tokenizer, question: str, max_new_tokens: int) -> str:
    """`question → reply`, with ⏹ where the model wrote <|end|> (a reply without it ran out of tokens)."""
    r = reply(model, tokenizer, [Message("user", question)], max_new_tokens + 4)
    return f"{question} → {r.text}{' ⏹' if r.ended else ' …'}"
