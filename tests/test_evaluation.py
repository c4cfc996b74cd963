"""The blank-filling score: the file format, accuracy equal to a hand count, and the project's evaluation phrases
kept out of the training corpus."""

from __future__ import annotations

import itertools
import json
import re


from cutellm import save_checkpoint
from cutellm.__main__ import main
from cutellm.lab.evaluation import load_blanks_file, parse_blanks_file

from conftest import CORPUS, ROOT

EVAL_FILE = ROOT / "data" / "blanks_eval.txt"


def test_the_format_groups_answers_per_blank():
    items = parse_blanks_file("# a comment\n\nthe ___ sat | Cat, dog\nthe ___ ___ on the mat | cat ; sat, slept\n")
    assert [(i.line, i.phrase, i.answers) for i in items] == [
        (3, "the ___ sat", (("cat", "dog"),)), (4, "the ___ ___ on the mat", (("cat",), ("sat", "slept")))]


def test_accuracy_equals_a_hand_count(tiny, tmp_path, capsys):
    model, tok, _, result = tiny
    path = save_checkpoint(tmp_path / "tiny.pth", model, tok, {"corpus": "tiny"})
    phrases = tmp_path / "phrases.txt"
    phrases.write_text("the cat sat on the ___ | mat\n"          # right
                       "the ___ sat on the mat | dog\n"          # wrong: the model says "cat"
                       "the ___ ___ on the mat | cat ; sat\n"    # right, right
                       "the dog ran to the ___ | park, garden\n")  # right
    out = tmp_path / "eval.json"
    assert main(["evaluate-blanks", str(phrases), "--model", str(path), "--out", str(out)]) == 0
    report = capsys.readouterr().out
    saved = json.loads(out.read_text())
    # 5 blanks, 4 right at top-1; 3 of the 4 phrases fully right.
    assert (saved["phrases"], saved["blanks"], saved["top1_accuracy"], saved["phrase_accuracy"]) == (4, 5, 0.8, 0.75)
    assert "80.0%" in report and "75.0%" in report
    miss = [r for r in saved["results"] if not all(r["top1"])]
    assert len(miss) == 1 and miss[0]["line"] == 2 and miss[0]["predicted"] == ["cat"]
    assert "line 2: the cat sat on the mat" in report
    top5 = [hit for r in saved["results"] for hit in r["top5"]]
    assert saved["top5_accuracy"] == sum(top5) / 5 >= 0.8


def test_the_projects_phrases_are_many_and_not_from_the_training_corpus():
    items = load_blanks_file(EVAL_FILE)
    assert len(items) >= 60 and sum(len(i.answers) > 1 for i in items) >= 5
    corpus = re.sub(r"\s+", " ", CORPUS.read_text(encoding="utf-8").lower())
    for item in items:
        for words in itertools.product(*item.answers):
            filled = item.phrase
            for word in words:
                filled = filled.replace("___", word, 1)
            assert filled.lower() not in corpus, f"line {item.line} is in the training corpus: {filled!r}"
