"""The standalone HTML export (cutellm.views.visualize) and the `visualize` CLI command."""

import pytest
import torch

from cutellm import CuteLLM, ModelConfig, SimpleWordTokenizer, save_checkpoint
from cutellm.views import ablation_charts, attention_steps_charts, charts, visualize
from cutellm.__main__ import main

from conftest import TINY_TEXT

TEXT = "the cat sat on the mat"


@pytest.fixture(scope="module")
def mt():
    tok = SimpleWordTokenizer.from_text(TINY_TEXT, vocab_size=64)
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=tok.vocab_size, d_model=32, n_heads=4, n_layers=2, block_size=16, dropout=0.0)
    return CuteLLM(cfg).eval(), tok


@pytest.fixture(scope="module")
def page(mt, tmp_path_factory):
    """(result, html) of one export without PNGs."""
    model, tok = mt
    out = tmp_path_factory.mktemp("vis")
    result = visualize.export_html(model, tok, out, text="the <b>cat</b> sat on the mat", images=False)
    return result, result.html_path.read_text(encoding="utf-8")


def test_export_is_one_self_contained_page(page):
    result, html = page
    assert result.html_path.name == "model_visualizations.html"
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    # plotly.js inlined exactly once, then one newPlot per figure; nothing loaded from the network
    assert html.count("Plotly.newPlot(") == 10
    assert "cdn.plot.ly" not in html and "<script src" not in html.lower() and "<link" not in html.lower()
    assert html.count('<script type="text/javascript">') == 1
    assert len(html) < 10_000_000


def test_export_has_every_title_and_explanation(page):
    _, html = page
    for view in [*charts.VIEWS.values(), *ablation_charts.VIEWS.values(), *attention_steps_charts.VIEWS.values()]:
        assert f"<h2>{view.title}" in html
        assert view.explanation.replace("'", "&#x27;").replace('"', "&quot;") in html
    assert "Word embeddings (2D)" in html and "Word embeddings (3D)" in html


def test_export_escapes_the_input_text(page):
    _, html = page
    assert "the <b>cat</b>" not in html
    assert "the &lt;b&gt;cat&lt;/b&gt; sat on the mat" in html


def test_export_is_deterministic(mt, tmp_path):
    model, tok = mt
    a = visualize.export_html(model, tok, tmp_path / "a", text=TEXT, images=False).html_path.read_bytes()
    b = visualize.export_html(model, tok, tmp_path / "b", text=TEXT, images=False).html_path.read_bytes()
    assert a == b


def test_pngs_are_skipped_cleanly_without_an_image_engine(mt, tmp_path, monkeypatch):
    model, tok = mt
    monkeypatch.setattr(visualize, "image_engine_available", lambda: False)
    result = visualize.export_html(model, tok, tmp_path, text=TEXT)
    assert result.images == () and "skipped" in result.note and result.html_path.exists()
    assert not (tmp_path / "images").exists()


def test_pngs_are_written_when_an_engine_is_there(mt, tmp_path, monkeypatch):
    model, tok = mt
    monkeypatch.setattr(visualize, "image_engine_available", lambda: True)
    monkeypatch.setattr("plotly.graph_objects.Figure.write_image",
                        lambda self, path, **kw: open(path, "wb").write(b"\x89PNG fake"))
    result = visualize.export_html(model, tok, tmp_path, text=TEXT)
    assert result.note is None and len(result.images) == 10
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == sorted(p.name for p in result.images)

    def broken(self, path, **kw):
        raise RuntimeError("no Chrome")

    monkeypatch.setattr("plotly.graph_objects.Figure.write_image", broken)
    result = visualize.export_html(model, tok, tmp_path / "again", text=TEXT)
    assert result.images == () and "no Chrome" in result.note


def test_cli_visualize(mt, tmp_path, capsys):
    model, tok = mt
    ckpt = save_checkpoint(tmp_path / "m.pth", model, tok)
    env = str(tmp_path / "none.env")
    out = tmp_path / "docs"
    assert main(["--env-file", env, "visualize", "--model", str(ckpt), "--out", str(out), "--text", TEXT,
                 "--no-images"]) == 0
    assert "model_visualizations.html" in capsys.readouterr().out
    assert (out / "model_visualizations.html").stat().st_size > 1_000_000
    assert main(["--env-file", env, "visualize", "--model", str(ckpt), "--out", str(out), "--text", "  "]) == 2
    assert "empty" in capsys.readouterr().err
    assert main(["--env-file", env, "visualize", "--model", str(ckpt), "--out", str(out), "--highlight",
                 "zebra"]) == 2
    assert "zebra" in capsys.readouterr().err
