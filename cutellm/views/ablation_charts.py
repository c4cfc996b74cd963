"""Plotly figures for "Switch parts off" (the Explore tab and `make visualize`), drawn from `ablation.py` data.

    ablation_figure(ablation_effect(model, tokenizer, text, Part("head", 0, 1), position=None))
    head_importance_figure(head_importance(model, tokenizer, text))

`VIEWS` holds the titles and the notes the page and the export show beside them. Styled like `charts.py` (its
palette, template and `label()` for every piece of user or corpus text).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .ablation import AblationEffect, head_matrix
from .charts import FONT, PALETTE, View, _style, _swatch, label

VIEWS = {
    "ablation": View(
        "Switch parts off",
        "Pick one attention head, a layer's whole attention or a layer's MLP and switch it off: its output is "
        "multiplied by 0 for this pass, the weights stay as they are. Compare the loss on your text and the guesses "
        "for the next word with and without it; every other page keeps using the intact model."),
    "head_importance": View(
        "Head importance",
        "Rows are layers, columns heads; each cell is how much the loss rises when that head alone is switched off. "
        "Purple: the model needs the head; green: it did better without it; near white: the head hardly matters "
        "here. One text answers for that text only: the validation sample averages many windows of the corpus."),
}

BEFORE, AFTER = PALETTE["muted"], PALETTE["primary"]
# Loss increase: green below 0 (better without the part), white at 0, deepening purple above.
DIVERGING = [[0.0, "#00A884"], [0.5, "#FFFFFF"], [0.75, "#8E7CF0"], [1.0, "#3B2A9E"]]


def ablation_figure(effect: AblationEffect) -> go.Figure:
    """Grouped bars per candidate next token at the effect's position: probability with the model intact (grey) and
    with the part switched off (purple). The token that really comes next is marked in its tick label."""
    rows = effect.candidates
    ticks = [f"<b>{label(c)}</b> ✓" if a else label(c) for c, a in zip(rows["candidate"], rows["is_actual_next"])]
    y = list(range(len(rows)))

    def bars(column: str, rank: str, name: str, colour: str) -> go.Bar:
        hover = [f"<b>{label(c)}</b><br>{name}: probability {p:.3f} · rank {r}"
                 for c, p, r in zip(rows["candidate"], rows[column], rows[rank])]
        return go.Bar(x=rows[column].tolist(), y=y, orientation="h", name=name, marker_color=colour,
                      hovertext=hover, hoverinfo="text", text=[f"{p:.2f}" for p in rows[column]],
                      textposition="outside", cliponaxis=False)

    fig = go.Figure([bars("prob_before", "rank_before", "intact", BEFORE),
                     bars("prob_after", "rank_after", f"{effect.part.label} off", AFTER)])
    top = float(max(rows["prob_before"].max(), rows["prob_after"].max(), 0.05))
    fig.update_xaxes(range=[0, min(1.0, top) * 1.2], title="probability of coming next", showgrid=False)
    fig.update_yaxes(tickvals=y, ticktext=ticks, autorange="reversed")
    actual = ("   <span style='font-size:12px'>✓ the word that actually comes next</span>"
              if bool(rows["is_actual_next"].any()) else "")
    title = (f"After “{label(effect.input_token)}” (position {effect.position}): "
             f"{_swatch(BEFORE, 'intact')}  {_swatch(AFTER, label(effect.part.label) + ' off')}{actual}")
    fig = _style(fig, title, 150 + 46 * len(rows))
    fig.update_layout(barmode="group", bargap=0.25, bargroupgap=0.05, showlegend=False,
                      margin={"l": 100, "r": 40, "t": 70, "b": 50})
    return fig


def head_importance_figure(frame: pd.DataFrame) -> go.Figure:
    """Layers (rows, layer 1 on top) x heads (columns) of a `head_importance` table, coloured by the loss increase
    when that head alone is switched off; each cell prints it."""
    matrix = head_matrix(frame)
    n_layers, n_heads = matrix.shape
    heads = frame[frame["kind"] == "head"].set_index(["layer", "head"])
    before = float(frame["loss_before"].iloc[0]) if len(frame) else float("nan")
    cells = [[heads.loc[(layer, head)] if (layer, head) in heads.index else None for head in range(1, n_heads + 1)]
             for layer in range(1, n_layers + 1)]
    text = [["" if row is None else f"{row['increase']:+.3f}" for row in line] for line in cells]
    hover = [["" if row is None else f"layer {layer} head {head} off<br>loss {row['loss_before']:.3f} → "
              f"{row['loss_after']:.3f} (<b>{row['increase']:+.3f}</b>)" for head, row in enumerate(line, 1)]
             for layer, line in enumerate(cells, 1)]
    # Symmetric colour range, so 0 is white whatever the numbers.
    reach = float(np.nanmax(np.abs(matrix))) if matrix.size and np.isfinite(matrix).any() else 1.0
    reach = reach or 1.0
    fig = go.Figure(go.Heatmap(
        z=matrix, x=list(range(n_heads)), y=list(range(n_layers)), zmin=-reach, zmax=reach, colorscale=DIVERGING,
        text=text, texttemplate="%{text}", textfont={"size": 13, "family": FONT["family"]}, hovertext=hover,
        hoverinfo="text", xgap=3, ygap=3, colorbar={"title": "loss<br>increase", "thickness": 12}))
    fig.update_xaxes(tickvals=list(range(n_heads)), ticktext=[f"head {h}" for h in range(1, n_heads + 1)],
                     side="top")
    fig.update_yaxes(tickvals=list(range(n_layers)), ticktext=[f"layer {l}" for l in range(1, n_layers + 1)],
                     autorange="reversed")
    measured = frame.attrs.get("measured_on", "text")
    where = (f"{frame.attrs.get('windows', 0)} validation windows" if measured == "windows" else "the text")
    title = f"Head importance: loss increase with one head off (intact loss {before:.3f} on {where})"
    fig = _style(fig, title, 170 + 70 * n_layers)
    fig.update_layout(margin={"l": 80, "r": 30, "t": 100, "b": 30})
    return fig
