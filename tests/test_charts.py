"""Figure builders (cutellm.views.charts): the right traces, labels and hover text, and corpus text always escaped."""

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest
import torch

from cutellm import CuteLLM, ModelConfig, SimpleWordTokenizer
from cutellm.views import charts
from cutellm.views import inspection as insp
from cutellm.tokenizer import SPECIAL_TOKENS
from cutellm.training import StepMetrics

TEXT = "the cat sat on the mat and the dog ran"
EVIL = "<b>x</b>"
# A vocabulary can hold any string (an uploaded checkpoint carries its own): markup must show as text.
WORDS = ["the", "cat", "sat", "on", "mat", "and", "dog", "ran", ".", EVIL, "<script>alert(1)</script>", "a&b"]


def make(n_layers: int = 2):
    tok = SimpleWordTokenizer([*SPECIAL_TOKENS, *WORDS], {w: 10 * (len(WORDS) - i) for i, w in enumerate(WORDS)})
    # The word regex would split "<b>x</b>" into pieces: let the word "evil" stand for that token in test texts.
    tok.tokenize = lambda text, _orig=tok.tokenize: [EVIL if t == "evil" else t for t in _orig(text)]
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=tok.vocab_size, d_model=16, n_heads=2, n_layers=n_layers, block_size=16,
                      dropout=0.0)
    return CuteLLM(cfg).eval(), tok


@pytest.fixture(scope="module")
def mt():
    return make()


def rendered_strings(fig: go.Figure) -> list[str]:
    """Every string in the figure that Plotly may render as (HTML-ish) text; customdata is data, never rendered."""
    out: list[str] = []

    def walk(node, key: str = "") -> None:
        if key == "customdata":
            return
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, dict):
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, np.ndarray):
            if node.dtype.kind == "O" or node.dtype.kind == "U":
                for v in node.ravel():
                    walk(v, key)
        elif isinstance(node, (list, tuple)):
            for v in node:
                walk(v, key)

    walk(fig.to_plotly_json())
    return out


def assert_escaped(fig: go.Figure) -> None:
    texts = rendered_strings(fig)
    assert not any(EVIL in t or "<script" in t for t in texts)
    assert any("&lt;b&gt;x&lt;/b&gt;" in t for t in texts)


def test_label_escapes_markup_and_shows_whitespace():
    assert charts.label("<b>x</b>") == "&lt;b&gt;x&lt;/b&gt;"
    assert charts.label('say "hi" & go') == 'say "hi" &amp; go'   # Plotly does not decode &quot;
    assert charts.label(" ") == "␣" and charts.label("\n") == "↵" and charts.label(None) == "—"


@pytest.mark.parametrize("n_layers", [2, 4])
def test_architecture_draws_one_hoverable_box_per_component(n_layers):
    model, _ = make(n_layers)
    arch = insp.architecture_summary(model)
    fig = charts.architecture_figure(arch)
    boxes = [t for t in fig.data if t.fill == "toself"]
    assert len(boxes) == len(arch.components)
    assert all(t.hoveron == "fills" and "parameters" in t.text for t in boxes)
    labels = next(t for t in fig.data if t.mode == "text").text
    for comp, text in zip(arch.components, labels):
        assert f"{comp.params:,} params" in text and comp.output_shape in text
    assert f"{arch.total_params:,}" in fig.layout.title.text


def test_architecture_of_a_deeper_model_has_more_boxes():
    counts = [sum(t.fill == "toself" for t in charts.architecture_figure(insp.architecture_summary(make(n)[0])).data)
              for n in (2, 4)]
    assert counts[1] == counts[0] + 4


def test_logits_one_bar_chart_per_position_with_actual_next_highlighted(mt):
    model, tok = mt
    table = insp.next_token_table(model, tok, TEXT, top_k=3)
    fig = charts.logits_figure(table)
    n = table["position"].nunique()
    assert len(fig.data) == n and all(isinstance(t, go.Bar) for t in fig.data)
    assert len([a for a in fig.layout.annotations if "after" in a.text]) == n
    for bar, (_, rows) in zip(fig.data, table.groupby("position")):
        rows = rows.sort_values("rank")
        expected = [charts.PALETTE["accent"] if a else charts.PALETTE["primary"] for a in rows["is_actual_next"]]
        assert list(bar.marker.color) == expected
        np.testing.assert_allclose(bar.x, rows["prob"])
    # Every position but the last has exactly one highlighted bar (the actual next token, from beyond top-3 if need be)
    highlighted = [list(b.marker.color).count(charts.PALETTE["accent"]) for b in fig.data]
    assert highlighted == [1] * (n - 1) + [0]


def test_logits_for_one_position(mt):
    model, tok = mt
    table = insp.next_token_table(model, tok, TEXT, top_k=4, include_actual=False)
    fig = charts.logits_figure(table, position=2)
    assert len(fig.data) == 1 and len(fig.data[0].x) == 4
    assert "sat" in fig.layout.title.text
    with pytest.raises(ValueError):
        charts.logits_figure(table, position=99)


def test_prediction_heatmap_hover_names_token_position_and_prob(mt):
    model, tok = mt
    data = insp.prediction_heatmap(model, tok, TEXT, top_k=2)
    fig = charts.prediction_heatmap_figure(data)
    (hm,) = fig.data
    assert isinstance(hm, go.Heatmap) and np.asarray(hm.z).shape == data.probs.shape
    cell = hm.hovertext[1][0]
    assert "position 1" in cell and f"{data.probs[1, 0]:.3f}" in cell and charts.label(data.candidates[0]) in cell
    assert list(fig.layout.xaxis.ticktext) == [charts.label(c) for c in data.candidates]


@pytest.mark.parametrize("n", [2, 3])
def test_embedding_scatter_traces_hover_and_customdata(mt, n):
    model, tok = mt
    frame = insp.embedding_pca(model, tok, n_components=n, highlight="cat")
    fig = charts.embedding_figure(frame)
    kind = go.Scatter if n == 2 else go.Scatter3d
    assert all(isinstance(t, kind) for t in fig.data)
    assert [t.name for t in fig.data] == ["words", "special tokens", "nearest neighbours", "highlighted word"]
    assert sum(len(t.x) for t in fig.data) == len(frame)
    by_name = {t.name: t for t in fig.data}
    assert list(by_name["highlighted word"].customdata) == ["cat"]
    assert set(by_name["special tokens"].customdata) == set(SPECIAL_TOKENS)
    assert by_name["special tokens"].marker.symbol != by_name["words"].marker.symbol
    assert by_name["highlighted word"].marker.color == charts.PALETTE["accent"]
    hover = by_name["highlighted word"].hovertext[0]
    row = frame[frame.token == "cat"].iloc[0]
    assert "cat" in hover and f"seen {row.frequency:,}×" in hover
    assert all(charts.label(w) in hover for w in row.neighbours)
    # customdata keeps the raw token (what a selection should list); hover shows it escaped
    tokens = [c for t in fig.data for c in t.customdata]
    assert EVIL in tokens
    assert_escaped(fig)


def test_embedding_without_highlight_has_no_emphasis_traces(mt):
    model, tok = mt
    fig = charts.embedding_figure(insp.embedding_pca(model, tok, top_n=5, include_special=False))
    assert [t.name for t in fig.data] == ["words"] and len(fig.data[0].x) == 5


def test_attention_grid_masks_the_future_with_nan(mt):
    model, tok = mt
    att = insp.attention_maps(model, tok, TEXT)
    fig = charts.attention_figure(att)
    assert len(fig.data) == att.n_layers * att.n_heads and all(isinstance(t, go.Heatmap) for t in fig.data)
    z = np.asarray(fig.data[0].z, dtype=float)
    n = len(att.tokens)
    assert np.isnan(z[np.triu_indices(n, k=1)]).all() and not np.isnan(z[np.tril_indices(n)]).any()
    assert all(t.hoverongaps is False for t in fig.data)
    assert [a.text for a in fig.layout.annotations[:2]] == ["layer 1 · head 1", "layer 1 · head 2"]
    one = charts.attention_figure(att, layer=1, head=0)
    assert len(one.data) == 1 and one.layout.annotations[0].text == "layer 2 · head 1"
    assert len(charts.attention_figure(att, layer=0).data) == att.n_heads
    with pytest.raises(ValueError):
        charts.attention_figure(att, layer=5)


def test_logit_lens_heatmap_shows_the_predicted_token_in_each_cell(mt):
    model, tok = mt
    lens = insp.logit_lens(model, tok, TEXT)
    fig = charts.logit_lens_figure(lens)
    (hm,) = fig.data
    assert np.asarray(hm.z).shape == (model.config.n_layers + 1, len(lens.tokens))
    assert hm.texttemplate == "%{text}"
    flat = [cell.replace("<b>", "").replace("</b>", "") for row in hm.text for cell in row]
    assert flat == [charts.label(t) for t in lens.top_tokens.ravel()]
    assert list(fig.layout.yaxis.ticktext) == ["embedding", "block 1", "block 2"]


def test_every_figure_escapes_corpus_text(mt):
    model, tok = mt
    text = "the evil cat sat on the mat"
    assert EVIL in tok.tokenize(text)
    figs = [charts.logits_figure(insp.next_token_table(model, tok, text, top_k=tok.vocab_size)),
            charts.prediction_heatmap_figure(insp.prediction_heatmap(model, tok, text, top_k=tok.vocab_size)),
            charts.attention_figure(insp.attention_maps(model, tok, text)),
            charts.logit_lens_figure(insp.logit_lens(model, tok, text)),
            charts.embedding_figure(insp.embedding_pca(model, tok, highlight=EVIL))]
    for fig in figs:
        assert_escaped(fig)


def test_every_figure_is_styled_plotly_white_for_each_of_its_trace_kinds(mt):
    # The figures carry a trimmed copy of plotly_white (only the trace kinds drawn here, to keep the live chart
    # light): a trace kind missing from it would silently lose the house style.
    model, tok = mt
    text = "the cat sat on the mat"
    white = pio.templates["plotly_white"]
    history = [StepMetrics(step=i, total_steps=3, epoch=0, train_loss=3.0 - i / 2, val_loss=2.9 if i == 3 else None,
                           lr=1e-3, tokens_per_s=1e3, elapsed_s=i) for i in range(1, 4)]
    figs = [charts.architecture_figure(insp.architecture_summary(model)),
            charts.logits_figure(insp.next_token_table(model, tok, text)),
            charts.prediction_heatmap_figure(insp.prediction_heatmap(model, tok, text)),
            charts.attention_figure(insp.attention_maps(model, tok, text)),
            charts.logit_lens_figure(insp.logit_lens(model, tok, text)),
            charts.embedding_figure(insp.embedding_pca(model, tok)),
            charts.embedding_figure(insp.embedding_pca(model, tok, n_components=3)),
            charts.loss_figure(history)]
    kinds = set()
    for fig in figs:
        assert fig.layout.template.layout == white.layout
        for trace in fig.data:
            kinds.add(trace.type)
            assert fig.layout.template.data[trace.type] == white.data[trace.type], trace.type
    assert {"scatter", "scatter3d", "bar", "heatmap"} <= kinds


def test_views_have_titles_and_explanations():
    assert set(charts.VIEWS) == {"architecture", "logits", "heatmap", "embeddings", "attention", "logit_lens"}
    for view in charts.VIEWS.values():
        assert view.title and view.explanation.count(".") >= 2


def test_sampling_figure_greys_removed_tokens_and_marks_the_drawn_one(mt):
    from cutellm.sampling import SamplingSettings, sampling_steps
    _, tok = mt
    logits = torch.linspace(3, -3, tok.vocab_size)
    logits[list(tok.special_ids)] = float("-inf")
    steps = sampling_steps(logits, SamplingSettings(0.8, top_k=5, top_p=0.7))
    kept = [int(i) for i in np.flatnonzero(steps.final.kept)]
    fig = charts.sampling_figure(steps, tok.token, drawn=kept[-1], picked=kept[0], top_n=8)
    bars = [t for t in fig.data if t.type == "bar"]
    assert len(bars) == 4 and [len(b.x) for b in bars] == [8] * 4
    rows = list(bars[0].customdata)
    assert rows == [int(i) for i in steps.ranking[:8]]
    top_k, top_p = bars[2], bars[3]
    # Top-k removes ranks 6..8: greyed at the probability they had after temperature, labelled "cut".
    assert list(top_k.text[5:]) == ["cut"] * 3 and set(top_k.marker.color[5:]) == {charts.PALETTE["muted"]}
    assert top_k.x[5] == pytest.approx(float(steps.stage("temperature").probs[rows[5]]))
    assert top_p.marker.color[rows.index(kept[-1])] == charts.PALETTE["accent"]
    assert top_p.marker.color[rows.index(kept[0])] == charts.PALETTE["secondary"]
    assert sum(top_p.x[rows.index(t)] for t in kept) == pytest.approx(1.0, abs=1e-5)
    assert [a.text for a in fig.layout.annotations][:4] == ["the model", "temperature 0.8", "top-k 5", "top-p 0.7"]
    # A drawn token beyond the top rows gets its own row, labelled with its rank; token text is escaped.
    far = int(steps.ranking[10])
    fig = charts.sampling_figure(sampling_steps(logits, SamplingSettings(1.0)), tok.token, drawn=far, top_n=3)
    assert list(fig.data[0].customdata) == [*map(int, steps.ranking[:3]), far]
    assert fig.layout.yaxis.ticktext[-1].endswith("(#11)")
    evil = tok.token_to_id[EVIL]
    assert_escaped(charts.sampling_figure(sampling_steps(logits, SamplingSettings(1.0)), tok.token, drawn=evil, top_n=3))
