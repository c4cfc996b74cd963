"""The live loss chart (an SVG string): what it draws, thinning, reference lines, runs that diverge."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest

from cutellm.views.curve import Baselines
from cutellm.views.live_chart import ACCURACY_COLOUR, ACCURACY_SERIES, LIVE_SERIES, live_loss_svg, nice_ticks
from cutellm.training import StepMetrics

SVG = "{http://www.w3.org/2000/svg}"


def history(steps: int, every: int = 100, loss=lambda s: 3 + 2 * math.exp(-s / 300)) -> list[StepMetrics]:
    return [StepMetrics(s, steps, 1, loss(s), loss(s) + 0.1 if s % every == 0 else None, 1e-3, 2e4, s / 100)
            for s in range(1, steps + 1)]


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)   # well-formed, or this raises


def points(line: ET.Element) -> list[tuple[float, float]]:
    return [tuple(map(float, p.split(","))) for p in line.get("points").split()]


def tick_x(root: ET.Element, step: int) -> float:
    """Where the x axis's tick for `step` is drawn."""
    return float(next(t for t in root.iter(f"{SVG}text") if t.text == f"{step:,}").get("x"))


def test_draws_training_validation_and_reference_lines():
    root = parse(live_loss_svg(history(1000), Baselines(uniform=6.9, unigram=4.2), width=800))
    assert root.get("viewBox") == "0 0 800 340"
    raw, smooth, val = root.findall(f"{SVG}polyline")
    assert [line.get("stroke") for line in (raw, smooth, val)] == [LIVE_SERIES["train (each batch)"],
                                                                  LIVE_SERIES["train (smoothed)"],
                                                                  LIVE_SERIES["validation"]]
    # One hoverable marker per evaluation, saying its step and loss.
    marks = [c.find(f"{SVG}title").text for c in root.findall(f"{SVG}circle")]
    assert marks[0] == "step 100: validation loss " + f"{3 + 2 * math.exp(-1 / 3) + 0.1:.3f}" and len(marks) == 10
    # Steps run left to right; a higher loss is drawn higher (a smaller y); both reference lines are dashed.
    xs = [x for x, _ in points(raw)]
    assert xs == sorted(xs) and points(raw)[0][1] < points(raw)[-1][1]
    drawn = root.findall(f"{SVG}line[@class='rule']")
    assert len(drawn) == 2 and all(r.get("stroke-dasharray") for r in drawn)
    rules = {r.find(f"{SVG}title").text.split(":")[0]: float(r.get("y1")) for r in drawn}
    assert rules["uniform guess (ln V)"] < rules["unigram (word frequencies)"] < points(raw)[-1][1]
    legend = [t.text for t in root.iter(f"{SVG}text")]
    assert all(name in legend for name in LIVE_SERIES) and "step" in legend


def test_training_points_are_thinned_and_the_last_step_is_kept():
    root = parse(live_loss_svg(history(5000), max_points=300))
    raw = points(root.findall(f"{SVG}polyline")[0])
    assert 250 <= len(raw) <= 301
    assert raw[-1][0] == pytest.approx(tick_x(root, 5000))


def test_before_the_first_step_only_the_reference_lines_show():
    root = parse(live_loss_svg([], Baselines(uniform=4.16, unigram=3.5)))
    assert not root.findall(f"{SVG}polyline") and not root.findall(f"{SVG}circle")
    assert len(root.findall(f"{SVG}line[@class='rule']")) == 2
    # The step axis labels whole steps only, each once.
    steps = [t.text for t in root.iter(f"{SVG}text") if t.get("text-anchor") == "middle" and t.get("x")
             and t.text != "step"]
    assert steps == ["0", "1"], steps
    # Without baselines, the legend leaves them out.
    legend = [t.text for t in parse(live_loss_svg(history(10))).iter(f"{SVG}text")]
    assert "train (smoothed)" in legend and not any(name.startswith("uni") for name in legend)


def test_a_run_that_diverges_draws_its_finite_points_only():
    svg = live_loss_svg(history(50, every=10, loss=lambda s: float("nan") if s > 40 else 3.0 - s / 100))
    assert "nan" not in svg.lower() and "inf" not in svg.lower()
    assert len(points(parse(svg).findall(f"{SVG}polyline")[0])) == 40


def test_width_is_kept_within_bounds():
    for asked, drawn in [(100, 320), (1234, 1234), (10 ** 6, 4000)]:
        assert parse(live_loss_svg(history(20), width=asked)).get("viewBox") == f"0 0 {drawn} 340"


def test_the_legend_wraps_on_a_narrow_chart():
    def rows(width: int) -> int:
        root = parse(live_loss_svg(history(20), Baselines(6.9, 4.2), width=width))
        return len({t.get("y") for t in root.iter(f"{SVG}text") if t.text in LIVE_SERIES})

    assert rows(1400) == 1 and rows(400) >= 3


@pytest.mark.parametrize("lo, hi", [(2.87, 7.1), (0.001, 0.004), (1, 5000), (3.0, 3.02)])
def test_nice_ticks_are_round_and_cover_the_range(lo, hi):
    ticks = nice_ticks(lo, hi, 6)
    assert 3 <= len(ticks) <= 11 and lo <= ticks[0] and ticks[-1] <= hi
    step = ticks[1] - ticks[0]
    assert any(abs(step / 10 ** math.floor(math.log10(step)) - m) < 1e-6 for m in (1, 2, 5)), step
    assert ticks[0] - lo < step and hi - ticks[-1] < step


def test_a_toy_task_draws_its_held_out_accuracy_on_a_right_axis():
    accuracy = [(100, 0.0), (200, 0.05), (300, 0.9), (400, 1.0)]
    root = parse(live_loss_svg(history(400), Baselines(uniform=2.6, unigram=2.1), width=800, accuracy=accuracy))
    line = root.find(f"{SVG}polyline[@class='accuracy']")
    assert line.get("stroke") == ACCURACY_COLOUR
    xs, ys = zip(*points(line))
    # Drawn at the steps of the loss curve's x axis; 100% at the top of the plot, 0% at its bottom.
    assert xs[-1] == pytest.approx(tick_x(root, 400), abs=0.2)
    assert ys[0] > ys[1] > ys[2] > ys[3]
    right_axis = {t.text: float(t.get("y")) for t in root.iter(f"{SVG}text") if t.get("fill") == ACCURACY_COLOUR}
    assert set(right_axis) == {"0%", "50%", "100%"} and right_axis["100%"] < right_axis["0%"]
    marks = [c.find(f"{SVG}title").text for c in root.findall(f"{SVG}circle[@class='acc']")]
    assert marks[2] == "step 300: 90% of held-out problems exact"
    assert ACCURACY_SERIES in [t.text for t in root.iter(f"{SVG}text")]
    # A text run's chart has no accuracy axis.
    plain = parse(live_loss_svg(history(400), width=800))
    assert plain.find(f"{SVG}polyline[@class='accuracy']") is None
