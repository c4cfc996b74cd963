"""bench/lessons.py's fields exist with sane values (one lesson, one repeat; no timing is asserted)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

spec = importlib.util.spec_from_file_location("bench_lessons", Path(__file__).resolve().parents[1] / "bench" /
                                              "lessons.py")
lessons = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = lessons
spec.loader.exec_module(lessons)


def test_the_benchmark_times_a_lesson_view():
    result = lessons.measure([1], repeat=1, train=False)
    (row,) = result["lessons"]
    assert row["lesson"] == 1 and row["title"] == "Text becomes tokens"
    assert 0 < row["draw_s"] < 60 and result["slowest_draw_s"] == row["draw_s"]
    assert "train_s" not in row and result["repeat"] == 1
