"""How long does each Learn lesson take to draw on the shipped model? Its page run, through Streamlit's AppTest.

    python bench/lessons.py [--repeat 5] [--out bench/lessons.json]

Opens the Learn page on each lesson in a fresh AppTest session (the shipped model active), runs it once to warm the
caches, then `--repeat` more times, and reports the median time of one page run: what the learner waits for when a
lesson opens or a setting changes. The lessons that train models inside the lesson are timed twice: drawing
(the slower of before the button and after, with the trained model's figures) and the training their button
starts (one run each), since that wait is of another kind. Prints
a table and writes JSON. The target (issue 30) is 0.5 s per lesson view on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streamlit.testing.v1 import AppTest  # noqa: E402  (after the path is set)

from ui.learn.lessons import LESSONS  # noqa: E402

TRAINING_BUTTONS = {"What the loss means": "Train a tiny model", "Overfitting": "Train on",
                    "Why causal": "Train both", "Does a bigger model help?": "Train three sizes",
                    "GPT-2 or Llama: one part at a time": "Train both",
                    "Watch a rule being learned": "Train a copy model"}


def _open(number: int) -> AppTest:
    app = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=300)
    app.query_params["lesson"] = str(number)
    app.run()
    app.switch_page("app_pages/learn.py").run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def _timed(step) -> float:
    began = time.perf_counter()
    step()
    return time.perf_counter() - began


def measure(lessons: list[int], repeat: int, train: bool = True) -> dict:
    rows = []
    for number in lessons:
        title = LESSONS[number - 1].title
        app = _open(number)
        draw = statistics.median(_timed(app.run) for _ in range(repeat))
        row = {"lesson": number, "title": title, "draw_s": round(draw, 4)}
        if train and title in TRAINING_BUTTONS:
            button = next(b for b in app.button if b.label.startswith(TRAINING_BUTTONS[title]))
            row["train_s"] = round(_timed(button.click().run), 3)
            assert not app.exception, [e.value for e in app.exception]
            # The lesson with its trained model's figures, as it draws from then on.
            row["draw_s"] = round(max(draw, statistics.median(_timed(app.run) for _ in range(repeat))), 4)
        rows.append(row)
    return {"host": platform.processor() or platform.machine(), "repeat": repeat, "lessons": rows,
            "slowest_draw_s": max(r["draw_s"] for r in rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "bench" / "lessons.json"))
    args = parser.parse_args()
    result = measure(list(range(1, len(LESSONS) + 1)), args.repeat)
    print(f"{'lesson':<34} {'draw (median)':>14} {'training':>10}")
    for r in result["lessons"]:
        train = f"{r['train_s']:.1f} s" if "train_s" in r else ""
        print(f"{r['lesson']} · {r['title']:<30} {1000 * r['draw_s']:>11.0f} ms {train:>10}")
    print(f"slowest lesson view: {1000 * result['slowest_draw_s']:.0f} ms (target 500 ms)")
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
