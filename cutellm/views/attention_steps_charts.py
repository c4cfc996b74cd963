"""The Plotly figure for attention derived step by step (the Explore page and `make visualize`), drawn from
`attention_steps.py` data: each visible token's score beside its weight, so the softmax's work is in plain view."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .attention_steps import AttentionSteps
from .charts import PALETTE, View, _style, label

VIEWS = {
    "attention_steps": View(
        "Attention, step by step",
        "One row of the attention map, computed in front of you: the chosen token's query is multiplied with every "
        "earlier token's key (q·k), divided by the square root of the head size, and the softmax turns those scores "
        "into weights that add up to 1. A score a little higher than the rest takes most of the weight."),
}


def attention_steps_figure(steps: AttentionSteps) -> go.Figure:
    """Horizontal bars, one row per visible token (top to bottom in text order): the scaled score q·k/√d on the left,
    the weight after the softmax on the right. Later tokens a causal model may not see are left out (their score is
    minus infinity, their weight 0)."""
    tokens = [f"{j} {label(t)}" for j, t in enumerate(steps.tokens[:len(steps.weights)])]
    scores, weights = steps.scores.tolist(), steps.weights.tolist()
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.06,
                        subplot_titles=("score  q·k / √d", "weight  softmax(score)"))
    # Scores are often negative: their numbers go inside the bars, where they cannot run into the token labels.
    fig.add_trace(go.Bar(x=scores, y=tokens, orientation="h", marker_color=PALETTE["muted"],
                         text=[f"{s:.2f}" for s in scores], textposition="inside", insidetextanchor="middle",
                         hovertext=[f"<b>{t}</b><br>q·k = {d:.3f}<br>÷ √{steps.head_dim} = {s:.3f}"
                                    for t, d, s in zip(tokens, steps.dots.tolist(), scores)], hoverinfo="text"), 1, 1)
    fig.add_trace(go.Bar(x=weights, y=tokens, orientation="h", marker_color=PALETTE["primary"],
                         text=[f"{w:.2f}" for w in weights], textposition="outside", cliponaxis=False,
                         hovertext=[f"<b>{t}</b><br>weight {w:.3f}" for t, w in zip(tokens, weights)],
                         hoverinfo="text"), 1, 2)
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(range=[0, 1.15], row=1, col=2)
    masked = f" · {steps.masked} later token{'s' if steps.masked != 1 else ''} masked" if steps.masked else ""
    title = (f"Layer {steps.layer + 1}, head {steps.head + 1}: what “{label(steps.tokens[steps.position])}” "
             f"(position {steps.position}) looks at{masked}")
    fig = _style(fig, title, 140 + 30 * len(tokens))
    fig.update_layout(showlegend=False, margin={"l": 110, "r": 40, "t": 90, "b": 40})
    return fig
