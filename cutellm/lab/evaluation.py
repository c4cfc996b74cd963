"""A score for blank filling: how often a model puts an accepted word in each `___` of a file of phrases.

File format (data/blanks_eval.txt is the project's own):

    # comments and blank lines are skipped
    the hungry cat drank the ___ | milk, water
    the ___ ___ on the little chair | cat, dog; sat, slept

A phrase, then " | ", then the accepted answers: one group per blank, separated by ";", each group's alternatives
separated by ",". Matching ignores case.

Every blank counts once. It is right at top-1 when the best filling (`complete_phrase`, joint over the phrase's
blanks) puts an accepted word in it, and at top-5 when an accepted word is among its 5 best candidates (the other
blanks fixed to the best filling). A phrase is right when all its blanks are right at top-1.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from ..completion import DEFAULT_BEAM, complete_phrase, count_blanks
from ..errors import CorpusError
from ..model import CuteLLM
from ..tokenizer import Tokenizer

TOP_K = 5


@dataclass(frozen=True)
class BlankItem:
    """One line of an evaluation file."""

    line: int                        # 1-based line number in the file
    phrase: str
    answers: tuple[tuple[str, ...], ...]   # per blank, the accepted words (lower-cased)


@dataclass
class BlankResult:
    line: int
    phrase: str
    filled: str
    answers: list[list[str]]
    predicted: list[str]             # the best filling's word per blank
    top: list[list[str]]             # per blank, its TOP_K candidates
    top1: list[bool]                 # per blank
    top5: list[bool]


@dataclass
class Evaluation:
    model: str
    file: str
    phrases: int
    blanks: int
    top1_accuracy: float             # over blanks
    top5_accuracy: float
    phrase_accuracy: float           # phrases with every blank right at top-1
    results: list[BlankResult] = field(default_factory=list)

    @property
    def misses(self) -> list[BlankResult]:
        return [r for r in self.results if not all(r.top1)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_blanks_file(text: str, name: str = "the file") -> list[BlankItem]:
    """The phrases of an evaluation file; CorpusError (naming the line) for a line that does not follow the format."""
    items = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if " | " not in line:
            raise CorpusError(f"{name}, line {number}: expected 'phrase with ___ | answers', got {line!r}")
        phrase, answer_text = (part.strip() for part in line.rsplit(" | ", 1))
        groups = tuple(tuple(w.strip().lower() for w in group.split(",") if w.strip())
                       for group in answer_text.split(";"))
        n = count_blanks(phrase)
        if n == 0:
            raise CorpusError(f"{name}, line {number}: the phrase has no ___ blank")
        if len(groups) != n or not all(groups):
            raise CorpusError(f"{name}, line {number}: the phrase has {n} blank(s) but {len(groups)} group(s) of "
                              "answers; separate the groups with ';' and the words of a group with ','")
        items.append(BlankItem(number, phrase, groups))
    if not items:
        raise CorpusError(f"{name} has no phrases to evaluate")
    return items


def load_blanks_file(path: str | os.PathLike) -> list[BlankItem]:
    p = Path(path)
    if not p.is_file():
        raise CorpusError(f"evaluation file '{p}' does not exist")
    return parse_blanks_file(p.read_text(encoding="utf-8"), f"'{p}'")


def evaluate_blanks(model: CuteLLM, tokenizer: Tokenizer, items: Iterable[BlankItem], *, words=None,
                    beam_width: int = DEFAULT_BEAM, model_name: str = "", file_name: str = "",
                    progress: Callable[[int, int], None] | None = None) -> Evaluation:
    """Fill every phrase and score each blank against its accepted answers."""
    items = list(items)
    results = []
    for k, item in enumerate(items):
        completion = complete_phrase(model, tokenizer, item.phrase, top_k=TOP_K, words=words, beam_width=beam_width)
        predicted = [b.best.word for b in completion.blanks]
        top = [[c.word for c in b.candidates] for b in completion.blanks]
        accepted = [set(group) for group in item.answers]
        results.append(BlankResult(
            line=item.line, phrase=item.phrase, filled=completion.filled_text,
            answers=[list(group) for group in item.answers], predicted=predicted, top=top,
            top1=[p.lower() in ok for p, ok in zip(predicted, accepted)],
            top5=[any(w.lower() in ok for w in ws) for ws, ok in zip(top, accepted)]))
        if progress is not None:
            progress(k + 1, len(items))
    n_blanks = sum(len(r.top1) for r in results)
    return Evaluation(model=model_name, file=file_name, phrases=len(results), blanks=n_blanks,
                      top1_accuracy=sum(sum(r.top1) for r in results) / n_blanks,
                      top5_accuracy=sum(sum(r.top5) for r in results) / n_blanks,
                      phrase_accuracy=sum(all(r.top1) for r in results) / len(results), results=results)


def format_report(ev: Evaluation, max_misses: int = 40) -> str:
    lines = [f"{ev.model or 'model'} on {ev.file or 'the phrases'}: {ev.phrases} phrases, {ev.blanks} blanks",
             f"  top-1 accuracy  {ev.top1_accuracy:6.1%}   (the best filling's word is accepted)",
             f"  top-5 accuracy  {ev.top5_accuracy:6.1%}   (an accepted word is among the 5 best)",
             f"  phrases right   {ev.phrase_accuracy:6.1%}   (every blank right at top-1)"]
    misses = ev.misses
    if misses:
        lines.append(f"misses ({len(misses)}):")
        for r in misses[:max_misses]:
            wrong = [f"{p!r} (wanted {'/'.join(a)}; top-5: {', '.join(t)})"
                     for p, a, t, ok in zip(r.predicted, r.answers, r.top, r.top1) if not ok]
            lines.append(f"  line {r.line}: {r.filled}  <- " + "; ".join(wrong))
        if len(misses) > max_misses:
            lines.append(f"  ... and {len(misses) - max_misses} more (all in the JSON)")
    return "\n".join(lines)


def write_evaluation(ev: Evaluation, path: str | os.PathLike) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(ev.to_dict(), indent=2, ensure_ascii=False) + "\n")
    return out
