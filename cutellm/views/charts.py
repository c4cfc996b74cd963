"""Plotly figures for the Explore page and `make visualize`, drawn from `inspection.py` data (this module only draws).

Every builder takes the data object `inspection` returns and gives back a `plotly.graph_objects.Figure`:

    architecture_figure(architecture_summary(model))
    logits_figure(next_token_table(model, tokenizer, text), position=None)
    prediction_heatmap_figure(prediction_heatmap(model, tokenizer, text))
    embedding_figure(embedding_pca(model, tokenizer, n_components=2 or 3, highlight="cat"))
    attention_figure(attention_maps(model, tokenizer, text), layer=None, head=None)
    logit_lens_figure(logit_lens(model, tokenizer, text))
    sampling_figure(sampling_steps(logits, settings), tokenizer.token, drawn=token_id)
    loss_figure(result.history)            # training and validation loss (the Train page's results)
    runs_figure([Run(name, meta, model_config), ...])   # several runs' loss curves overlaid

Plotly renders a subset of HTML in hover labels, tick labels and titles, so every piece of corpus or user text goes
through `label()` (HTML-escaped, whitespace made visible): a token "<b>x</b>" shows as those characters, never as
bold text or markup. Colours come from `PALETTE` and `COLORSCALE`, defined once below.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from ..sampling import SamplingSteps
from ..training import StepMetrics
from .curve import smoothed_curve
from .inspection import Architecture, AttentionMaps, LogitLens, PredictionHeatmap

if TYPE_CHECKING:  # views sit below the lab: the Run type is only named here, never imported at run time
    from ..lab.runs import Run

# One palette for every figure.
PALETTE = {
    "primary": "#6C5CE7",      # ordinary bars and points
    "accent": "#E84393",       # the actual next token, the highlighted word
    "secondary": "#00A884",    # neighbours of the highlighted word
    "special": "#E17055",      # <pad>, <unk>, <mask>
    "muted": "#B2BEC3",
    "text": "#2D3436",
    "grid": "#E9ECEF",
    "background": "#FFFFFF",
}
# Fill colours of the architecture boxes, by component kind.
BOX_COLOURS = {
    "embedding": "#DCEBFF", "attention": "#E6E1FF", "mlp": "#D5F5EA", "layernorm": "#FFF4D1", "head": "#FFE1DA",
    "other": "#ECEFF1",
}
# Probability / attention weight: 0 is almost white, 1 is the primary purple at its deepest.
COLORSCALE = [[0.0, "#F7F5FF"], [0.25, "#CFC7FF"], [0.6, "#8E7CF0"], [1.0, "#3B2A9E"]]
FONT = dict(family="Inter, system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", size=13, color=PALETTE["text"])



@dataclass(frozen=True)
class View:
    """A figure's title and its two-sentence "what am I looking at" note (shared by the Explore page and the export)."""

    title: str
    explanation: str


VIEWS = {
    "architecture": View(
        "Architecture",
        "Each box is one part of this model, in the order the numbers flow through it, with the shape of the tensor "
        "it reads and writes (T = number of tokens) and how many learned parameters it holds. Hover a box for what it "
        "does; a model with more layers draws more blocks."),
    "logits": View(
        "Next-token probabilities",
        "At every position the model reads the words so far and gives a probability to every word in its "
        "vocabulary; these are its top guesses. The pink bar is the word that really comes next in the text."),
    "heatmap": View(
        "Prediction heatmap",
        "Each row is a position in the text and each column a candidate next word; the darker the cell, the more "
        "probable the model finds that word there. Hover a cell for the exact probability."),
    "embeddings": View(
        "Word embeddings",
        "Every word is a vector of numbers the model learned; PCA squeezes those vectors onto the two (or three) "
        "directions where they differ most, so words the model treats alike land close together. \"PC1 (7% of "
        "variance)\" means the first direction shows 7% of how the vectors differ: the flat picture hides the rest. "
        "Hover a point for its frequency and its nearest neighbours, measured in the full embedding space."),
    "attention": View(
        "Attention",
        "Each square shows, for one head of one layer, how much each word (row) draws from each earlier word "
        "(column); every row adds up to 1. The upper triangle is blank because a causal model may never look at "
        "words that come later."),
    "logit_lens": View(
        "Logit lens",
        "What the model would predict if it stopped after each layer: the bottom row reads the raw embeddings, the "
        "top row is its real prediction. With the output head tied to the embedding table, the bottom row mostly "
        "names the input token itself (a row matches itself best); watch the guesses move to the next token as "
        "information flows up through the blocks."),
}

# Whitespace tokens (character models) would be invisible: show a visible stand-in.
_VISIBLE = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍", "": "∅"}


def label(text: str | None) -> str:
    """Corpus or user text, safe to put in a Plotly label: HTML-escaped, with whitespace made visible.

    quote=False because Plotly decodes &amp; &lt; &gt; but not &quot;, and a quote cannot break anything here.
    """
    if text is None:
        return "—"
    return html.escape(_VISIBLE.get(text, text), quote=False)


# plotly_white keeping the defaults of only the trace types drawn here (it has 30 kinds): every figure carries a copy
# of its template, and the live loss chart is rebuilt every refresh while training, where copying and validating the
# whole template took two thirds of the build time and most of the JSON sent to the browser (bench/README.md).
_WHITE = pio.templates["plotly_white"]
_TRACE_KINDS = ("scatter", "scatter3d", "bar", "heatmap")
_TEMPLATE = go.layout.Template(layout=_WHITE.layout,
                               data={kind: _WHITE.data[kind] for kind in _TRACE_KINDS})


def _style(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(
        template=_TEMPLATE, title=dict(text=title, x=0.01, xanchor="left", font=dict(size=17)), height=height,
        font=FONT, paper_bgcolor=PALETTE["background"], plot_bgcolor=PALETTE["background"],
        margin=dict(l=60, r=30, t=80, b=50), hoverlabel=dict(bgcolor="white", font=dict(family=FONT["family"])),
    )
    return fig


def _swatch(colour: str, text: str) -> str:
    return f"<span style='color:{colour}'>■</span> {text}"


# ---------------------------------------------------------------------------------------------------------------
# Architecture


_BOX_H, _GAP, _WIDTH = 1.0, 0.55, 10.0


def _box_trace(x0: float, x1: float, y0: float, y1: float, kind: str, name: str, hover: str) -> go.Scatter:
    # A closed polygon filled "toself" with hoveron="fills": the whole box shows the hover label, not only a corner.
    return go.Scatter(x=[x0, x1, x1, x0, x0], y=[y0, y0, y1, y1, y0], mode="lines", fill="toself",
                      fillcolor=BOX_COLOURS.get(kind, BOX_COLOURS["other"]), line=dict(color="#8C8FA3", width=1.2),
                      hoveron="fills", text=hover, hoverinfo="text", name=name, showlegend=False)


def architecture_figure(arch: Architecture) -> go.Figure:
    """One box per component, top to bottom in data-flow order, labelled with shapes and parameter counts.

    Attention boxes show one small cell per head, each block's boxes sit on a shaded band, and a dashed line joins
    the LM head to the token embedding whose weights it shares. Hovering a box explains it.
    """
    fig = go.Figure()
    shapes: list[dict] = []
    annotations: list[dict] = []
    label_x, label_y, label_text = [], [], []
    placed: list[tuple[float, float, float, float]] = []  # (x0, x1, y0, y1) of each box, in component order

    y = 0.0
    comps = list(arch.components)
    i = 0
    while i < len(comps):
        c = comps[i]
        if c.kind == "embedding" and i + 1 < len(comps) and comps[i + 1].kind == "embedding":
            # Token and position embeddings side by side: they are added together.
            pair = [(c, 0.0, _WIDTH / 2 - 0.35), (comps[i + 1], _WIDTH / 2 + 0.35, _WIDTH)]
            for comp, x0, x1 in pair:
                placed.append((x0, x1, y - _BOX_H, y))
            annotations.append(dict(x=_WIDTH / 2, y=y - _BOX_H / 2, text="<b>+</b>", showarrow=False,
                                    font=dict(size=20)))
            i += 2
        else:
            placed.append((0.0, _WIDTH, y - _BOX_H, y))
            i += 1
        y -= _BOX_H + _GAP

    for comp, (x0, x1, y0, y1) in zip(comps, placed):
        hover = (f"<b>{label(comp.name)}</b><br>{label(comp.input_shape)} → {label(comp.output_shape)}<br>"
                 f"{comp.params:,} parameters<br><br>{_wrap(label(comp.details))}")
        fig.add_trace(_box_trace(x0, x1, y0, y1, comp.kind, comp.name, hover))
        heads = f" · {comp.heads} heads" if comp.heads else ""
        label_x.append((x0 + x1) / 2)
        label_y.append(y1 - 0.36 if comp.heads else (y0 + y1) / 2)
        label_text.append(f"<b>{label(comp.name)}</b>{heads}<br>{label(comp.input_shape)} → "
                          f"{label(comp.output_shape)} · {comp.params:,} params")
        if comp.heads:
            # One little cell per head along the bottom of the attention box.
            width = (x1 - x0 - 1.0) / comp.heads
            for h in range(comp.heads):
                hx0 = x0 + 0.5 + h * width
                shapes.append(dict(type="rect", x0=hx0 + 0.05, x1=hx0 + width - 0.05, y0=y0 + 0.08, y1=y0 + 0.3,
                                   fillcolor=PALETTE["primary"], opacity=0.35, line=dict(width=0), layer="above"))

    # Shaded band behind each block's attention + MLP, labelled on the left.
    for layer in sorted({c.layer for c in comps if c.layer is not None}):
        rows = [p for c, p in zip(comps, placed) if c.layer == layer]
        top, bottom = max(p[3] for p in rows) + 0.15, min(p[2] for p in rows) - 0.15
        shapes.append(dict(type="rect", x0=-1.3, x1=_WIDTH + 0.15, y0=bottom, y1=top, fillcolor=PALETTE["grid"],
                           line=dict(width=0), layer="below"))
        annotations.append(dict(x=-0.65, y=(top + bottom) / 2, text=f"<b>Block {layer}</b>", showarrow=False,
                                textangle=-90, font=dict(color=PALETTE["primary"])))

    # Arrows between consecutive rows (the embeddings' row counts once).
    row_tops = sorted({p[3] for p in placed}, reverse=True)
    for upper, lower in zip(row_tops, row_tops[1:]):
        annotations.append(dict(x=_WIDTH / 2, y=lower, ax=_WIDTH / 2, ay=upper - _BOX_H, xref="x", yref="y",
                                axref="x", ayref="y", showarrow=True, arrowhead=2, arrowsize=1, arrowwidth=1.5,
                                arrowcolor="#8C8FA3", text=""))
    annotations.append(dict(x=_WIDTH / 2, y=row_tops[0] + 0.35, showarrow=False,
                            text=f"token ids: up to {arch.block_size} tokens (T ≤ {arch.block_size})"))
    annotations.append(dict(x=_WIDTH / 2, y=min(p[2] for p in placed) - 0.35, showarrow=False,
                            text=f"next-token probabilities: softmax over {arch.vocab_size:,} tokens at each position"))

    # The LM head reuses the token embedding matrix: a dashed connector down the left side joins the two.
    tied = [p for c, p in zip(comps, placed) if c.kind == "head"] if arch.tied_head else []
    if tied:
        tok, head = placed[0], tied[0]
        xl = -1.75
        shapes.append(dict(type="path", path=f"M {tok[0]},{(tok[2] + tok[3]) / 2} L {xl},{(tok[2] + tok[3]) / 2} "
                                             f"L {xl},{(head[2] + head[3]) / 2} L {head[0]},{(head[2] + head[3]) / 2}",
                           line=dict(color=PALETTE["accent"], width=1.5, dash="dot")))
        annotations.append(dict(x=xl - 0.3, y=(tok[3] + head[2]) / 2, text="same weights (tied)", showarrow=False,
                                textangle=-90, font=dict(color=PALETTE["accent"], size=12)))

    fig.add_trace(go.Scatter(x=label_x, y=label_y, mode="text", text=label_text, hoverinfo="skip",
                             showlegend=False, textfont=dict(size=12.5, color=PALETTE["text"])))
    bottom = min(p[2] for p in placed)
    fig.update_layout(shapes=shapes, annotations=annotations)
    fig.update_xaxes(visible=False, range=[-2.4, _WIDTH + 0.4], fixedrange=True)
    fig.update_yaxes(visible=False, range=[bottom - 0.8, 0.8], fixedrange=True)
    title = (f"Architecture: {arch.design}, {arch.n_layers} blocks × {arch.n_heads} heads, d_model {arch.d_model}, "
             f"{arch.total_params:,} parameters")
    return _style(fig, title, height=int(110 + 62 * (abs(bottom) + 1.6)))


def _wrap(text: str, width: int = 60) -> str:
    """Break a long hover sentence into lines of about `width` characters (Plotly does not wrap)."""
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return "<br>".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# Next-token predictions


def _position_bars(rows: pd.DataFrame) -> tuple[go.Bar, list[str]]:
    """One position's horizontal bars, best first, and their tick labels."""
    rows = rows.sort_values("rank")
    # Ranks run 1..k; a row out of sequence is the actual next token from beyond the top-k: say how far it was.
    ticks = [label(c) if r == k + 1 else f"{label(c)} (#{r})"
             for k, (c, r) in enumerate(zip(rows["candidate"], rows["rank"]))]
    colours = [PALETTE["accent"] if a else PALETTE["primary"] for a in rows["is_actual_next"]]
    hover = [f"<b>{label(c)}</b><br>probability {p:.3f} · rank {r}"
             + ("<br>the word that actually comes next" if a else "")
             for c, p, r, a in zip(rows["candidate"], rows["prob"], rows["rank"], rows["is_actual_next"])]
    bar = go.Bar(x=rows["prob"].tolist(), y=list(range(len(rows))), orientation="h", marker_color=colours,
                 hovertext=hover, hoverinfo="text", text=[f"{p:.2f}" for p in rows["prob"]], textposition="outside",
                 cliponaxis=False, showlegend=False, customdata=rows["candidate"].tolist())
    return bar, ticks


def _context(rows: pd.DataFrame) -> str:
    t = int(rows["position"].iloc[0])
    return f"{t}: after “{label(rows['input_token'].iloc[0])}”"


def logits_figure(table: pd.DataFrame, position: int | None = None, columns: int = 4) -> go.Figure:
    """Next-token probability bars from `inspection.next_token_table`: one small chart per position, or only
    `position`'s. The token that actually comes next is drawn in the accent colour (a row ranked beyond the
    table's top-k is labelled with its rank).
    """
    positions = sorted(table["position"].unique()) if position is None else [position]
    if position is not None and position not in set(table["position"]):
        raise ValueError(f"position {position} is not in the table (positions 0..{table['position'].max()})")
    groups = [table[table["position"] == t] for t in positions]
    n_cols = 1 if len(groups) == 1 else min(columns, len(groups))
    n_rows = math.ceil(len(groups) / n_cols)
    # One position: the figure title names it, so no subplot title.
    titles = [_context(g) for g in groups] if position is None else None
    fig = make_subplots(rows=n_rows, cols=n_cols, subplot_titles=titles,
                        horizontal_spacing=0.12 if n_cols > 1 else 0.02, vertical_spacing=min(0.12, 0.5 / n_rows))
    for k, rows in enumerate(groups):
        bar, ticks = _position_bars(rows)
        r, c = k // n_cols + 1, k % n_cols + 1
        fig.add_trace(bar, row=r, col=c)
        fig.update_yaxes(tickvals=list(range(len(ticks))), ticktext=ticks, autorange="reversed",
                         row=r, col=c)
        fig.update_xaxes(range=[0, 1.15], showticklabels=False, showgrid=False, row=r, col=c)
    fig.update_annotations(font_size=12)
    title = ("Next-token probabilities at each position   "
             f"<span style='font-size:12px'>{_swatch(PALETTE['accent'], 'the word that actually comes next')}"
             f"   {_swatch(PALETTE['primary'], 'other candidates')}</span>")
    if position is not None:
        token = label(groups[0]["input_token"].iloc[0])
        title = (f"What comes after “{token}” (position {position})?   "
                 f"<span style='font-size:12px'>{_swatch(PALETTE['accent'], 'actual next word')}</span>")
    height = 120 + n_rows * (40 + 24 * max(len(g) for g in groups))
    fig = _style(fig, title, height)
    fig.update_layout(margin=dict(l=90, r=30, t=90, b=30), bargap=0.25)
    return fig


def prediction_heatmap_figure(data: PredictionHeatmap) -> go.Figure:
    """Rows: positions of the text (the token just read); columns: candidate next tokens; colour: probability."""
    n_pos, n_cand = data.probs.shape
    hover = [[f"after “{label(data.tokens[t])}” (position {t})<br>next = “{label(data.candidates[c])}”: "
              f"<b>{data.probs[t, c]:.3f}</b><br>actually next: “{label(data.actual_next[t])}”"
              for c in range(n_cand)] for t in range(n_pos)]
    fig = go.Figure(go.Heatmap(
        z=data.probs, x=list(range(n_cand)), y=list(range(n_pos)), zmin=0, zmax=1, colorscale=COLORSCALE,
        hovertext=hover, hoverinfo="text", xgap=1, ygap=1, colorbar=dict(title="prob", thickness=12)))
    fig.update_xaxes(tickvals=list(range(n_cand)), ticktext=[label(c) for c in data.candidates], tickangle=-45,
                     title="candidate next token")
    fig.update_yaxes(tickvals=list(range(n_pos)), ticktext=[f"{label(t)} ({i})" for i, t in enumerate(data.tokens)],
                     autorange="reversed", title="after reading")
    fig = _style(fig, "Prediction heatmap: which words the model expects next", 200 + 26 * n_pos)
    fig.update_layout(margin=dict(l=110, r=30, t=60, b=110))
    return fig


# ---------------------------------------------------------------------------------------------------------------
# Embeddings


def _embedding_groups(frame: pd.DataFrame) -> list[tuple[str, pd.Series, dict]]:
    """(legend name, row mask, marker style) for each kind of point, drawn in this order (later on top)."""
    highlight = frame["is_highlight"].astype(bool)
    neighbour = frame["is_neighbour"].astype(bool) & ~highlight
    special = frame["is_special"].astype(bool) & ~highlight & ~neighbour
    ordinary = ~(highlight | neighbour | special)
    return [
        ("words", ordinary, dict(color=PALETTE["primary"], opacity=0.55, symbol="circle")),
        ("special tokens", special, dict(color=PALETTE["special"], opacity=0.95, symbol="diamond")),
        ("nearest neighbours", neighbour, dict(color=PALETTE["secondary"], opacity=1.0, symbol="circle")),
        ("highlighted word", highlight, dict(color=PALETTE["accent"], opacity=1.0, symbol="star")),
    ]


def _embedding_hover(rows: pd.DataFrame) -> list[str]:
    out = []
    for token, tid, freq, special, neigh, sims in zip(rows["token"], rows["id"], rows["frequency"], rows["is_special"],
                                                      rows["neighbours"], rows["neighbour_sims"]):
        near = ", ".join(f"{label(n)} {s:.2f}" for n, s in zip(neigh, sims)) or "—"
        kind = " · special token" if special else ""
        out.append(f"<b>{label(token)}</b> (id {tid}{kind})<br>seen {freq:,}× in the corpus<br>"
                   f"nearest: {near}")
    return out


def embedding_figure(frame: pd.DataFrame) -> go.Figure:
    """Scatter of `inspection.embedding_pca`: 2D (go.Scatter: box/lasso selection works) or 3D (go.Scatter3d) by whether
    the frame has a `z` column; a 2D frame's `attrs["axis_ranges"]`, when set, fixes the axes. Hover shows the word, its corpus frequency and its nearest neighbours; special tokens
    are diamonds; the highlighted word (a star) and its neighbours are coloured and labelled. Each point's
    `customdata` is its raw token, so a Streamlit selection lists the tokens directly.
    """
    three_d = "z" in frame.columns
    ratios = frame.attrs.get("explained_variance_ratio", ())
    axis_titles = [f"PC{k + 1}" + (f" ({ratios[k]:.0%} of variance)" if k < len(ratios) else "")
                   for k in range(3 if three_d else 2)]
    fig = go.Figure()
    for name, mask, style in _embedding_groups(frame):
        rows = frame[mask]
        if rows.empty:
            continue
        emphasised = name in ("highlighted word", "nearest neighbours")
        size = (5 + 2.2 * np.log10(1 + rows["frequency"].to_numpy())).round(2)
        if name == "special tokens":
            size = np.maximum(size, 10)  # never seen in the corpus counts, but they must stay visible
        if emphasised:
            size = size + (9 if name == "highlighted word" else 4)
        marker = dict(size=(size * (0.7 if three_d else 1)).tolist(), color=style["color"], opacity=style["opacity"],
                      symbol=style["symbol"], line=dict(width=0.5 if not three_d else 0, color="white"))
        if three_d and style["symbol"] == "star":
            marker["symbol"] = "diamond"  # Scatter3d has no star marker
        common = dict(mode="markers+text" if emphasised else "markers", name=name, marker=marker,
                      text=[label(t) for t in rows["token"]] if emphasised else None,
                      hovertext=_embedding_hover(rows), hoverinfo="text", customdata=rows["token"].tolist())
        if three_d:
            fig.add_trace(go.Scatter3d(x=rows["x"].tolist(), y=rows["y"].tolist(), z=rows["z"].tolist(), **common))
        else:
            fig.add_trace(go.Scatter(x=rows["x"].tolist(), y=rows["y"].tolist(), textposition="top center", **common))
    title = f"Word embeddings: {len(frame):,} tokens, PCA to {'3' if three_d else '2'}D"
    fig = _style(fig, title, 620 if three_d else 560)
    fig.update_layout(legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0.01), margin=dict(t=100))
    if three_d:
        fig.update_layout(scene=dict(xaxis_title=axis_titles[0], yaxis_title=axis_titles[1],
                                     zaxis_title=axis_titles[2], aspectmode="cube",
                                     # a little further out than Plotly's default so the axis titles fit
                                     camera=dict(eye=dict(x=1.6, y=1.6, z=1.3))),
                          margin=dict(l=0, r=0, b=0))
    else:
        ranges = frame.attrs.get("axis_ranges", {})  # a training snapshot on its final map's scale
        fig.update_xaxes(title=axis_titles[0], zeroline=False, gridcolor=PALETTE["grid"], range=ranges.get("x"))
        fig.update_yaxes(title=axis_titles[1], zeroline=False, gridcolor=PALETTE["grid"], range=ranges.get("y"))
        fig.update_layout(hovermode="closest")
    return fig


# ---------------------------------------------------------------------------------------------------------------
# Attention and logit lens


def masked_attention(att: AttentionMaps, layer: int, head: int) -> np.ndarray:
    """One head's (T, T) weights with the future (above the diagonal) set to NaN in a causal model, so Plotly leaves
    those cells blank instead of painting them as 0."""
    w = att.weights[layer, head].astype(float).copy()
    if att.causal:
        w[np.triu_indices_from(w, k=1)] = np.nan
    return w


def _attention_heatmap(att: AttentionMaps, layer: int, head: int) -> go.Heatmap:
    w = masked_attention(att, layer, head)
    n = len(att.tokens)
    words = [f"“{label(t)}” ({i})" for i, t in enumerate(att.tokens)]
    hover = [[f"layer {layer + 1} · head {head + 1}<br>{words[i]} reads {words[j]}<br>weight <b>{w[i, j]:.3f}</b>"
              for j in range(n)] for i in range(n)]
    # One shared colour axis (0..1) for every head; hoverongaps=False: the blank future has no hover label.
    return go.Heatmap(z=w, x=list(range(n)), y=list(range(n)), coloraxis="coloraxis", hovertext=hover,
                      hoverinfo="text", hoverongaps=False, xgap=1, ygap=1)


def attention_figure(att: AttentionMaps, layer: int | None = None, head: int | None = None) -> go.Figure:
    """Attention heatmaps: rows are the reading position (query), columns the position read (key); a row sums to 1.

    `layer`/`head` are 0-based; give both for one heatmap, only `layer` for that layer's heads, neither for the grid
    of every layer (rows) and head (columns). In a causal model the upper triangle (the future) is left blank.
    """
    layers = range(att.n_layers) if layer is None else [layer]
    heads = range(att.n_heads) if head is None else [head]
    for name, value, limit in (("layer", layer, att.n_layers), ("head", head, att.n_heads)):
        if value is not None and not 0 <= value < limit:
            raise ValueError(f"{name} must be from 0 to {limit - 1}, got {value}")
    layers, heads = list(layers), list(heads)
    titles = [f"layer {l + 1} · head {h + 1}" for l in layers for h in heads]
    fig = make_subplots(rows=len(layers), cols=len(heads), subplot_titles=titles, horizontal_spacing=0.04,
                        vertical_spacing=0.12 / max(1, len(layers) - 1) if len(layers) > 1 else 0.1)
    n = len(att.tokens)
    ticks = [label(t) for t in att.tokens]
    for r, l in enumerate(layers, start=1):
        for c, h in enumerate(heads, start=1):
            fig.add_trace(_attention_heatmap(att, l, h), row=r, col=c)
            fig.update_xaxes(tickvals=list(range(n)), ticktext=ticks, tickangle=-60, tickfont=dict(size=9),
                             showgrid=False, row=r, col=c)
            fig.update_yaxes(tickvals=list(range(n)), ticktext=ticks, autorange="reversed", tickfont=dict(size=9),
                             showgrid=False, showticklabels=(c == 1), row=r, col=c)
    fig.update_layout(coloraxis=dict(colorscale=COLORSCALE, cmin=0, cmax=1,
                                     colorbar=dict(title="weight", thickness=12)))
    fig.update_annotations(font_size=12)
    cell = 300 if len(heads) == 1 else 230
    title = "Attention: which earlier words each word looks at"
    if att.causal:
        title += "<br><span style='font-size:12px'>blank upper triangle = the future, which a causal model " \
                 "cannot see</span>"
    fig = _style(fig, title, 140 + cell * len(layers) + (60 if len(heads) == 1 else 0))
    fig.update_layout(margin=dict(l=80, r=30, t=110, b=70))
    return fig


def logit_lens_figure(lens: LogitLens) -> go.Figure:
    """Layers (bottom: embedding, top: last block) x positions; each cell names the token the model would predict
    there if it stopped at that layer, coloured by its probability. Correct predictions are bold."""
    n_layers, n_pos = lens.top_probs.shape
    correct = np.array([[lens.top_tokens[l, t] == lens.actual_next[t] for t in range(n_pos)]
                        for l in range(n_layers)])
    text = [[f"<b>{label(lens.top_tokens[l, t])}</b>" if correct[l, t] else label(lens.top_tokens[l, t])
             for t in range(n_pos)] for l in range(n_layers)]
    hover = [[f"{label(lens.layer_labels[l])}, after “{label(lens.tokens[t])}” ({t})<br>"
              f"predicts “{label(lens.top_tokens[l, t])}” with p = <b>{lens.top_probs[l, t]:.3f}</b><br>"
              f"actually next: “{label(lens.actual_next[t])}”" for t in range(n_pos)] for l in range(n_layers)]
    fig = go.Figure(go.Heatmap(
        z=lens.top_probs, x=list(range(n_pos)), y=list(range(n_layers)), zmin=0, zmax=1, colorscale=COLORSCALE,
        text=text, texttemplate="%{text}", textfont=dict(size=11), hovertext=hover, hoverinfo="text", xgap=2,
        ygap=2, colorbar=dict(title="prob", thickness=12)))
    fig.update_xaxes(tickvals=list(range(n_pos)), ticktext=[label(t) for t in lens.tokens], tickangle=-45,
                     title="input token (position)")
    fig.update_yaxes(tickvals=list(range(n_layers)), ticktext=[label(x) for x in lens.layer_labels], title="")
    fig = _style(fig, "Logit lens: the prediction after each layer (bold = the word that actually comes next)",
                 170 + 60 * n_layers)
    fig.update_layout(margin=dict(l=90, r=30, t=80, b=80))
    return fig


# ---------------------------------------------------------------------------------------------------------------
# Sampling stages (the Generate page's step-by-step mode)

# What each stage of `sampling.sampling_steps` does, for the learner ("what am I looking at").
STAGE_VIEWS = {
    "model": View(
        "The model",
        "The model's own probability for every token that could come next (its softmax). Nothing is chosen yet: "
        "the stages to the right reshape these numbers, then one token is drawn from the last of them."),
    "temperature": View(
        "Temperature",
        "Divides the model's scores before the softmax. Below 1 the likely tokens get even likelier: safe, but the "
        "text gets dull and can loop (temperature 0 always takes the top token). Above 1 the distribution flattens "
        "and rare tokens get a real chance: more surprising, and more often nonsense."),
    "top-k": View(
        "Top-k",
        "Keeps only the k most likely tokens and shares their probability out again so it adds up to 1. It cuts the "
        "long tail of unlikely tokens, but always keeps exactly k, whether the model is sure or unsure."),
    "top-p": View(
        "Top-p",
        "Keeps the fewest tokens whose probabilities add up to p, then renormalises. It adapts to how sure the "
        "model is: when one token has most of the mass only it survives; when the model hesitates, many do."),
}


def _stage_title(name: str, steps: SamplingSteps) -> str:
    s = steps.settings
    if name == "model":
        return "the model"
    if name == "temperature":
        return "temperature 0 (greedy)" if s.temperature == 0 else f"temperature {s.temperature:g}"
    if name == "top-k":
        return "top-k off" if s.top_k is None else f"top-k {s.top_k}"
    return "top-p off" if s.top_p is None or s.top_p >= 1 else f"top-p {s.top_p:g}"


def sampling_figure(steps: SamplingSteps, token_text, drawn: int | None = None, picked: int | None = None,
                    top_n: int = 20) -> go.Figure:
    """The next-token distribution at each sampling stage, side by side: bars for the model's `top_n` most likely
    tokens (the same rows in every panel), a token a stage removes greyed at the probability it had just before,
    the `drawn` token in the accent colour and a `picked` one (the learner's branch) in the secondary colour.
    `token_text(id)` gives a token's readable form. A drawn or picked token outside the top rows gets a row of its
    own, labelled with its rank."""
    ranking = [int(i) for i in steps.ranking]
    rows = ranking[:top_n]
    for extra in (drawn, picked):
        if extra is not None and extra not in rows:
            rows.append(int(extra))
    rank = {t: ranking.index(t) + 1 for t in rows}
    ticks = [label(token_text(t)) if rank[t] == k + 1 else f"{label(token_text(t))} (#{rank[t]})"
             for k, t in enumerate(rows)]
    fig = make_subplots(rows=1, cols=len(steps.stages), shared_yaxes=True, horizontal_spacing=0.03,
                        subplot_titles=[_stage_title(st.name, steps) for st in steps.stages])
    previous = None
    for col, stage in enumerate(steps.stages, start=1):
        xs, colours, texts, hover = [], [], [], []
        for t in rows:
            p = float(stage.probs[t])
            if stage.kept[t]:
                colour = (PALETTE["accent"] if t == drawn else PALETTE["secondary"] if t == picked
                          else PALETTE["primary"])
                xs.append(p), colours.append(colour), texts.append(f"{p:.2f}")
                hover.append(f"<b>{label(token_text(t))}</b><br>probability {p:.3f} · rank {rank[t]}"
                             + ("<br>drawn" if t == drawn else "") + ("<br>your pick" if t == picked else ""))
            elif previous is not None and previous.kept[t]:  # removed by this very stage
                before = float(previous.probs[t])
                xs.append(before), colours.append(PALETTE["muted"]), texts.append("cut")
                hover.append(f"<b>{label(token_text(t))}</b><br>removed by {stage.name} (had {before:.3f})")
            else:  # removed earlier (or can never be generated)
                xs.append(0.0), colours.append(PALETTE["muted"]), texts.append("")
                hover.append(f"<b>{label(token_text(t))}</b><br>removed earlier")
        fig.add_trace(go.Bar(x=xs, y=list(range(len(rows))), orientation="h", marker_color=colours,
                             hovertext=hover, hoverinfo="text", text=texts, textposition="outside",
                             cliponaxis=False, showlegend=False, customdata=rows), row=1, col=col)
        fig.update_xaxes(range=[0, max(max(xs), 1e-9) * 1.35], showticklabels=False, showgrid=False, row=1, col=col)
        previous = stage
    fig.update_yaxes(tickvals=list(range(len(rows))), ticktext=ticks, autorange="reversed")
    fig.update_annotations(font_size=13)
    title = ("The next token at each stage   <span style='font-size:12px'>"
             f"{_swatch(PALETTE['accent'], 'drawn')}   {_swatch(PALETTE['secondary'], 'your pick')}   "
             f"{_swatch(PALETTE['primary'], 'still in the running')}   {_swatch(PALETTE['muted'], 'removed')}</span>")
    fig = _style(fig, title, 150 + 22 * len(rows))
    fig.update_layout(margin=dict(l=110, r=30, t=90, b=20), bargap=0.25)
    return fig


# ---------------------------------------------------------------------------------------------------------------
# Training


def loss_figure(history: Sequence[StepMetrics], max_points: int = 2000, title: str | None = None) -> go.Figure:
    """Training loss per step (thin), its moving average (bold) and the validation loss (markers).

    Long runs are thinned to at most `max_points` training points so a live chart stays light in the browser; the
    moving average still reads every step.
    """
    curve = smoothed_curve([(m.step, m.train_loss) for m in history], max_points)
    steps, raw, smooth = [s for s, _, _ in curve], [v for _, v, _ in curve], [a for _, _, a in curve]
    val = [(m.step, m.val_loss) for m in history if m.val_loss is not None]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=steps, y=raw, mode="lines", name="train (each batch)",
                             line=dict(color=PALETTE["muted"], width=1),
                             hovertemplate="step %{x}<br>train loss %{y:.3f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=steps, y=smooth, mode="lines", name="train (smoothed)",
                             line=dict(color=PALETTE["primary"], width=2.5),
                             hovertemplate="step %{x}<br>smoothed train loss %{y:.3f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=[s for s, _ in val], y=[v for _, v in val], mode="lines+markers", name="validation",
                             line=dict(color=PALETTE["accent"], width=2), marker=dict(size=7),
                             hovertemplate="step %{x}<br>validation loss %{y:.3f}<extra></extra>"))
    _style(fig, title or "", 360)
    fig.update_layout(xaxis_title="step", yaxis_title="loss (cross-entropy)", hovermode="x unified",
                      margin=dict(l=60, r=20, t=50 if title else 20, b=45),
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0))
    return fig


def runs_figure(runs: Sequence[Run], max_points: int = 1000, bits_per_char: bool = False) -> go.Figure:
    """Loss curves of several runs in one chart: smoothed training loss (lines) and validation loss (dotted, with
    markers), one colour per run. `bits_per_char` plots every curve in bits per character of its text instead of
    nats per token (`Run.curve_in_bits_per_char`; runs that did not record their tokens per character are left out),
    the only scale on which models with different tokenizers compare."""
    colours = [PALETTE["primary"], PALETTE["accent"], PALETTE["secondary"], PALETTE["special"], "#0984E3",
               "#6D214F", "#2D3436", "#FDCB6E"]
    unit = "bits per character" if bits_per_char else "loss"
    fig = go.Figure()
    for i, run in enumerate(runs):
        colour = colours[i % len(colours)]
        curve = run.curve_in_bits_per_char if bits_per_char else run.curve
        if not curve:
            continue
        smooth = smoothed_curve([(step, loss) for step, loss, _ in curve], max_points)
        xs, ys = [step for step, _, _ in smooth], [avg for _, _, avg in smooth]
        name = label(run.name)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=f"{name} · train", legendgroup=name,
                                 line=dict(color=colour, width=2.2),
                                 hovertemplate=f"{name}<br>step %{{x}}<br>train {unit} %{{y:.3f}}<extra></extra>"))
        val = [(s, v) for s, _, v in curve if v is not None]
        if val:
            fig.add_trace(go.Scatter(x=[s for s, _ in val], y=[v for _, v in val], mode="lines+markers",
                                     name=f"{name} · validation", legendgroup=name,
                                     line=dict(color=colour, width=1.5, dash="dot"), marker=dict(size=6),
                                     hovertemplate=f"{name}<br>step %{{x}}<br>validation {unit} %{{y:.3f}}"
                                                   "<extra></extra>"))
    _style(fig, "Loss curves of the chosen runs" + (", in bits per character" if bits_per_char else ""), 460)
    fig.update_layout(xaxis_title="step", yaxis_title="bits per character" if bits_per_char else
                      "loss (cross-entropy per token)", hovermode="closest",
                      legend=dict(orientation="h", yanchor="top", y=-0.18, x=0), margin=dict(b=110))
    return fig
