"""Export every Explore figure to one self-contained HTML page (and PNG snapshots when an image engine is installed).

    python -m cutellm visualize --model models/cute_llm.pth --out docs/ --text "the cat sat on the mat"

writes `docs/model_visualizations.html`: plotly.js is inlined once at the top and every figure follows, so the file
opens offline with no network access. PNGs go to `docs/images/` only if `kaleido` can be imported (it is not a
requirement); otherwise they are skipped and `ExportResult.note` says why. The same model and text always produce
the same file, byte for byte (fixed figure ids, no dates, no randomness).
"""

from __future__ import annotations

import html
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from . import ablation, ablation_charts, attention_steps, attention_steps_charts, charts

from ..errors import PromptError
from ..inference import encode_context
from ..model import CuteLLM
from ..tokenizer import Tokenizer
from . import inspection

HTML_NAME = "model_visualizations.html"
IMAGES_DIR = "images"
# The 3D embedding map shows only the most frequent words: 1,000 points in 3D are a fog, and the file stays small.
TOP_WORDS_3D = 400
_PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}


@dataclass(frozen=True)
class Section:
    """One figure of the page: `key` names its div and PNG, `title` and `explanation` come from charts.VIEWS."""

    key: str
    title: str
    explanation: str
    figure: go.Figure


@dataclass(frozen=True)
class ExportResult:
    html_path: Path
    images: tuple[Path, ...]     # PNG snapshots written (empty when skipped)
    note: str | None             # why the PNGs were skipped, if they were


def build_sections(model: CuteLLM, tokenizer: Tokenizer, text: str = inspection.DEFAULT_TEXT,
                   highlight: str | None = inspection.DEFAULT_HIGHLIGHT) -> list[Section]:
    """Every figure for `text`, in reading order.

    An unknown `highlight` raises PromptError, except the default word, which is quietly left out (a character-level
    model has no "cat").
    """
    if highlight == inspection.DEFAULT_HIGHLIGHT:
        try:
            inspection.token_id(tokenizer, highlight)
        except PromptError:
            highlight = None

    def view(key: str, figure: go.Figure, suffix: str = "") -> Section:
        v = charts.VIEWS[key]
        return Section(f"{key}_{suffix.lower()}" if suffix else key, f"{v.title} ({suffix})" if suffix else v.title,
                       v.explanation, figure)

    sections = [
        view("architecture", charts.architecture_figure(inspection.architecture_summary(model))),
        view("logits", charts.logits_figure(inspection.next_token_table(model, tokenizer, text, top_k=5))),
        view("heatmap", charts.prediction_heatmap_figure(inspection.prediction_heatmap(model, tokenizer, text))),
        view("embeddings", charts.embedding_figure(inspection.embedding_pca(model, tokenizer, 2, highlight=highlight)),
             "2D"),
        view("embeddings", charts.embedding_figure(inspection.embedding_pca(
            model, tokenizer, 3, top_n=TOP_WORDS_3D, highlight=highlight)), "3D"),
        view("attention", charts.attention_figure(inspection.attention_maps(model, tokenizer, text))),
        _attention_steps_section(model, tokenizer, text),
        view("logit_lens", charts.logit_lens_figure(inspection.logit_lens(model, tokenizer, text))),
    ]
    return sections + _ablation_sections(model, tokenizer, text)


def _attention_steps_section(model: CuteLLM, tokenizer: Tokenizer, text: str) -> Section:
    """The last token's row of the first layer's first head, derived step by step."""
    v = attention_steps_charts.VIEWS["attention_steps"]
    steps = attention_steps.derive_attention(model, tokenizer, text, layer=0, head=0)
    return Section("attention_steps", v.title, v.explanation, attention_steps_charts.attention_steps_figure(steps))


def _ablation_sections(model: CuteLLM, tokenizer: Tokenizer, text: str) -> list[Section]:
    """The head importance table on `text`, then the most important head switched off at the text's last token.
    None for a text of one token (a loss needs two)."""
    if len(encode_context(model, tokenizer, text)) < 2:
        return []
    table = ablation.head_importance(model, tokenizer, text)
    heads = table[table["kind"] == "head"]
    top = heads.loc[heads["increase"].idxmax()]
    effect = ablation.ablation_effect(model, tokenizer, text, ablation.Part("head", int(top["layer"]) - 1,
                                                                             int(top["head"]) - 1))
    v, e = ablation_charts.VIEWS["head_importance"], ablation_charts.VIEWS["ablation"]
    return [Section("head_importance", v.title, v.explanation, ablation_charts.head_importance_figure(table)),
            Section("ablation", f"{e.title}: {effect.part.label}", e.explanation,
                    ablation_charts.ablation_figure(effect))]


def _offline_plotlyjs() -> str:
    # plotly.js names a CDN as the default source of map outlines (geo charts only, never drawn here). Point it at
    # a local path so the page references no network address at all.
    return get_plotlyjs().replace("https://cdn.plot.ly/un/", "topojson/")


_CSS = """
body { font-family: Inter, system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; color: #2D3436;
       max-width: 1150px; margin: 0 auto; padding: 24px 20px 60px; background: #FAFAFF; }
h1 { color: #6C5CE7; margin-bottom: 4px; }
.meta { color: #636E72; margin-top: 0; }
.input { background: #F0EDFF; border-radius: 8px; padding: 10px 14px; font-family: ui-monospace, monospace; }
section { background: white; border-radius: 12px; box-shadow: 0 1px 4px rgba(0,0,0,.08); padding: 12px 18px 18px;
          margin: 26px 0; }
section h2 { margin: 6px 0 2px; }
section p { color: #4A5358; margin: 4px 0 10px; line-height: 1.45; }
nav a { margin-right: 14px; color: #6C5CE7; text-decoration: none; }
"""


def render_html(model: CuteLLM, tokenizer: Tokenizer, sections: list[Section], text: str) -> str:
    """The whole page as a string: head with the inlined plotly.js, a summary, then one <section> per figure."""
    cfg = model.config
    ids = encode_context(model, tokenizer, text)
    read = " · ".join(charts.label(tokenizer.token(i)) for i in ids)  # label() escapes and shows whitespace
    nav = " ".join(f'<a href="#{s.key}">{html.escape(s.title)}</a>' for s in sections)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>CuteGPT: inside the model</title>",
        f"<style>{_CSS}</style>",
        f'<script type="text/javascript">{_offline_plotlyjs()}</script>',
        "</head><body>",
        "<h1>CuteGPT: inside the model</h1>",
        f'<p class="meta">{cfg.n_layers} blocks × {cfg.n_heads} heads, d_model {cfg.d_model}, context '
        f"{cfg.block_size} tokens, vocabulary {tokenizer.vocab_size:,} ({html.escape(tokenizer.kind)} tokens), "
        f"{model.num_parameters():,} parameters.</p>",
        f'<p>Input text:</p><p class="input">{html.escape(text)}</p>',
        f'<p>The {len(ids)} tokens the model reads (at most {cfg.block_size}; unknown words become &lt;unk&gt;):</p>'
        f'<p class="input">{read}</p>',
        f"<nav>{nav}</nav>",
    ]
    for s in sections:
        body = s.figure.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig-{s.key}",
                                config=_PLOTLY_CONFIG)
        parts.append(f'<section id="{s.key}"><h2>{html.escape(s.title)}</h2><p>{html.escape(s.explanation)}</p>'
                     f"{body}</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _write_atomic(path: Path, content: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(content, encoding="utf-8")
    os.replace(tmp, path)


def image_engine_available() -> bool:
    """Whether Plotly's static image engine (kaleido) is installed; it is optional, never a requirement."""
    return importlib.util.find_spec("kaleido") is not None


def write_images(sections: list[Section], folder: Path) -> tuple[tuple[Path, ...], str | None]:
    """PNG snapshot of each figure, if kaleido is importable and works; else no files and a note saying why."""
    if not image_engine_available():
        return (), "PNG snapshots skipped: no static image engine (pip install kaleido to get them)"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for s in sections:
        path = folder / f"{s.key}.png"
        try:
            s.figure.write_image(path, width=1100, height=s.figure.layout.height or 600)
        except Exception as err:  # kaleido fails in many ways (no Chrome, sandbox...): the HTML is what matters
            return tuple(written), f"PNG snapshots skipped: the image engine failed ({type(err).__name__}: {err})"
        written.append(path)
    return tuple(written), None


def export_html(model: CuteLLM, tokenizer: Tokenizer, out_dir: str | os.PathLike,
                text: str = inspection.DEFAULT_TEXT, highlight: str | None = inspection.DEFAULT_HIGHLIGHT,
                images: bool = True) -> ExportResult:
    """Write out_dir/model_visualizations.html (and out_dir/images/*.png when possible). Raises PromptError for a
    text the model cannot read."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sections = build_sections(model, tokenizer, text, highlight)
    path = out / HTML_NAME
    _write_atomic(path, render_html(model, tokenizer, sections, text))
    written, note = write_images(sections, out / IMAGES_DIR) if images else ((), None)
    return ExportResult(path, written, note)
