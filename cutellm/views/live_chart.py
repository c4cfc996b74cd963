"""The live loss chart as a small SVG drawing: training loss (each batch and smoothed), validation loss, and the two
reference losses as dashed lines; for a toy task, the held-out accuracy on a second axis (0-100%, on the right).

The Train page redraws it every 2 s while a job trains. A chart library in the browser (Plotly, Vega) costs the
training run CPU at each redraw; one SVG string of ~600 points costs ~1 ms to write here and almost nothing to
swap into the page (bench/README.md, "Speed, round six"). The colours and the smoothing (`curve.smoothed_curve`) are
those of `charts.loss_figure`, the interactive chart of a finished run.
"""

from __future__ import annotations

import html
import math
from typing import Sequence

from ..training import StepMetrics
from .charts import PALETTE
from .curve import Baselines, smoothed_curve

LIVE_SERIES = {   # series -> colour, in legend order
    "train (each batch)": PALETTE["muted"], "train (smoothed)": PALETTE["primary"], "validation": PALETTE["accent"],
    "uniform guess (ln V)": "#636E72", "unigram (word frequencies)": PALETTE["secondary"],
}
ACCURACY_SERIES, ACCURACY_COLOUR = "held-out accuracy (right)", PALETTE["special"]   # a toy task's runs only
# The page shows the chart as an image (Streamlit's HTML sanitizer drops inline SVG), where text cannot take the
# page's colour: a grey that reads on a light and on a dark theme.
INK = "#808495"
HEIGHT = 340
LEFT, RIGHT, BOTTOM = 64, 16, 44   # margins around the plot area, in pixels; the legend's rows set the top one
RIGHT_AXIS = 48                    # the right margin when the accuracy axis is drawn
LEGEND_ROW = 18


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round values (1, 2 or 5 times a power of ten apart) that cover [lo, hi] with about `count` ticks."""
    if not hi > lo:
        return [lo]
    raw = (hi - lo) / max(1, count - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 12) for i in range(int((hi - first) / step + 1e-9) + 1)]


def _number(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 0
    return f"{value:,.{decimals}f}"


def live_loss_svg(history: Sequence[StepMetrics], baselines: Baselines | None = None, width: int = 900,
                  max_points: int = 300, accuracy: Sequence[tuple[int, float]] | None = None) -> str:
    """The chart, `width` pixels wide (it scales to its box). Training points are thinned to `max_points`, the
    moving average reading every step; each validation point says its step and loss on hover. `accuracy`: (step,
    share of exact answers) of a toy task, drawn against a 0-100% axis on the right."""
    width = max(320, min(4000, int(width)))
    right = RIGHT_AXIS if accuracy else RIGHT

    curve = smoothed_curve([(m.step, m.train_loss) for m in history], max_points)
    raw, smooth = [(s, v) for s, v, _ in curve], [(s, a) for s, _, a in curve]
    val = [(m.step, m.val_loss) for m in history if m.val_loss is not None]
    rules = ([("uniform guess (ln V)", baselines.uniform), ("unigram (word frequencies)", baselines.unigram)]
             if baselines is not None else [])

    # The legend: one entry per series drawn, in rows across the top.
    legend, at, row = [], LEFT, 0
    drawn = ["train (each batch)", "train (smoothed)", "validation", *(name for name, _ in rules),
             *([ACCURACY_SERIES] if accuracy else [])]
    for name in drawn:
        colour = {**LIVE_SERIES, ACCURACY_SERIES: ACCURACY_COLOUR}[name]
        item_w = 30 + 6.5 * len(name)
        if at + item_w > width - right and at > LEFT:
            at, row = LEFT, row + 1
        dash = ' stroke-dasharray="6 4"' if name in dict(rules) else ""
        top_y = 12 + LEGEND_ROW * row
        legend.append(f'<line x1="{at}" x2="{at + 18}" y1="{top_y}" y2="{top_y}" stroke="{colour}" '
                      f'stroke-width="2.5"{dash}/><text x="{at + 24}" y="{top_y + 4}" fill="{INK}">'
                      f'{html.escape(name)}</text>')
        at += item_w + 8
    top = 12 + LEGEND_ROW * (row + 1)
    plot_w, plot_h = width - LEFT - right, HEIGHT - top - BOTTOM

    losses = [y for _, y in raw + val if math.isfinite(y)] + [y for _, y in rules]
    lo, hi = (min(losses), max(losses)) if losses else (0.0, 1.0)
    pad = (hi - lo) * 0.05 or 0.5
    lo, hi = lo - pad, hi + pad
    steps = [s for s, _ in raw] + [s for s, _ in accuracy or ()]
    x0, x1 = (min(steps), max(steps)) if steps else (0, 1)
    x1 = max(x1, x0 + 1)

    def x(step: float) -> float:
        return LEFT + plot_w * (step - x0) / (x1 - x0)

    def y(loss: float) -> float:
        return top + plot_h * (hi - min(hi, max(lo, loss))) / (hi - lo)

    def line(points: list[tuple[int, float]], colour: str, stroke: float) -> str:
        shown = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in points if math.isfinite(v))
        return (f'<polyline points="{shown}" fill="none" stroke="{colour}" stroke-width="{stroke}" '
                f'stroke-linejoin="round"/>') if shown else ""

    parts = [f'<svg class="live-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {HEIGHT}" '
             f'width="100%" role="img" aria-label="training and validation loss by step" '
             f'style="font: 12px sans-serif; overflow: visible">']
    # Steps are whole numbers: before the first steps the axis spans 0-1, and 0.2, 0.4, ... would read "0 0 0 1".
    y_ticks, x_ticks = nice_ticks(lo, hi, 6), [t for t in nice_ticks(x0, x1, 8) if float(t).is_integer()]
    y_step = y_ticks[1] - y_ticks[0] if len(y_ticks) > 1 else 1.0
    for t in y_ticks:
        parts.append(f'<line x1="{LEFT}" x2="{width - right}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="{INK}" '
                     f'stroke-opacity="0.12"/><text x="{LEFT - 6}" y="{y(t) + 4:.1f}" text-anchor="end" '
                     f'fill="{INK}" fill-opacity="0.7">{_number(t, y_step)}</text>')
    for t in x_ticks:
        parts.append(f'<text x="{x(t):.1f}" y="{top + plot_h + 16}" text-anchor="middle" fill="{INK}" '
                     f'fill-opacity="0.7">{t:,.0f}</text>')
    parts.append(f'<line x1="{LEFT}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" '
                 f'stroke="{INK}" stroke-opacity="0.4"/>'
                 f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle" fill="{INK}">'
                 f'step</text><text transform="translate(14 {top + plot_h / 2:.1f}) rotate(-90)" '
                 f'text-anchor="middle" fill="{INK}">loss (cross-entropy per token)</text>')
    for name, loss in rules:
        parts.append(f'<line class="rule" x1="{LEFT}" x2="{width - right}" y1="{y(loss):.1f}" y2="{y(loss):.1f}" '
                     f'stroke="{LIVE_SERIES[name]}" stroke-width="1.5" stroke-dasharray="6 4">'
                     f'<title>{html.escape(name)}: {loss:.3f}</title></line>')
    parts.append(line(raw, LIVE_SERIES["train (each batch)"], 1))
    parts.append(line(smooth, LIVE_SERIES["train (smoothed)"], 2.5))
    parts.append(line(val, LIVE_SERIES["validation"], 2))
    parts += [f'<circle class="val" cx="{x(s):.1f}" cy="{y(v):.1f}" r="3.5" fill="{LIVE_SERIES["validation"]}">'
              f'<title>step {s:,}: validation loss {v:.3f}</title></circle>' for s, v in val if math.isfinite(v)]
    if accuracy:
        colour = ACCURACY_COLOUR

        def y_acc(share: float) -> float:
            return top + plot_h * (1 - min(1.0, max(0.0, share)))

        for t in (0.0, 0.5, 1.0):
            parts.append(f'<text x="{width - right + 6}" y="{y_acc(t) + 4:.1f}" fill="{colour}">{t:.0%}</text>')
        shown = " ".join(f"{x(s):.1f},{y_acc(a):.1f}" for s, a in accuracy)
        parts.append(f'<polyline class="accuracy" points="{shown}" fill="none" stroke="{colour}" stroke-width="2" '
                     f'stroke-linejoin="round"/>')
        parts += [f'<circle class="acc" cx="{x(s):.1f}" cy="{y_acc(a):.1f}" r="3" fill="{colour}">'
                  f'<title>step {s:,}: {a:.0%} of held-out problems exact</title></circle>' for s, a in accuracy]
    parts += legend
    parts.append("</svg>")
    return "".join(parts)
