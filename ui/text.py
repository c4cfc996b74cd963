"""Showing user and model text literally (and a text's tokens as coloured chips).

Streamlit's markdown turns `$x$` into LaTeX, `:smile:` into an emoji and `<b>` into HTML (when allowed). User prompts
and generated words must appear exactly as typed, so they go through one of these helpers, never raw into markdown.
"""

from __future__ import annotations

import base64
import html
import os
import re
from urllib.parse import urlencode
from typing import TYPE_CHECKING, Sequence

from cutellm.inference import GeneratedToken

if TYPE_CHECKING:
    import pandas as pd


def code_span(text: str) -> str:
    """Markdown inline code showing `text` literally (no LaTeX, emoji or HTML inside code spans)."""
    text = text.replace("\n", " ")
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def words_list(words: list[str], limit: int = 12) -> str:
    """A markdown list of words as code spans, e.g. for unknown words."""
    shown = ", ".join(code_span(w) for w in words[:limit])
    return shown + (f" and {len(words) - limit} more" if len(words) > limit else "")


def html_text(text: str) -> str:
    """Text escaped for `st.html` (which renders HTML without any markdown processing); newlines kept."""
    return html.escape(text).replace("\n", "<br>")


def highlighted(parts: list[tuple[str, str | None]]) -> str:
    """HTML for text segments, each with an optional CSS class from `TEXT_STYLES` (e.g. 'prompt', 'new')."""
    spans = [f'<span class="{cls}">{html_text(t)}</span>' if cls else html_text(t) for t, cls in parts]
    return f'<div class="cute-text">{"".join(spans)}</div>'


def generated_html(tokenizer, prompt: str, new_ids: list[int]) -> str:
    """The prompt (as the model reads it, greyed) followed by the generated tokens (highlighted), for `st.html`."""
    prompt_part = tokenizer.continue_text(prompt, [])
    full = tokenizer.continue_text(prompt, new_ids)
    new_part = full[len(prompt_part):] if full.startswith(prompt_part) else full
    return highlighted([(prompt_part, "prompt"), (new_part, "new")])


def token_pieces(tokenizer, prompt: str, new_ids: Sequence[int]) -> tuple[str, list[str]]:
    """The prompt as the model reads it, and the text each new token adds; joined they are exactly
    `continue_text(prompt, new_ids)`. A token that rewrites the end of the text so far (a byte-level token completing
    a character the one before began) takes those characters over."""
    head, pieces = tokenizer.continue_text(prompt, []), []
    for k in range(1, len(new_ids) + 1):
        full = tokenizer.continue_text(prompt, list(new_ids[:k]))
        shown = head + "".join(pieces)
        excess = len(shown) - len(os.path.commonprefix([shown, full]))
        for i in range(len(pieces) - 1, -1, -1):
            if not excess:
                break
            cut = min(excess, len(pieces[i]))
            pieces[i], excess = pieces[i][:len(pieces[i]) - cut], excess - cut
        head = head[:len(head) - excess]
        pieces.append(full[len(head) + sum(map(len, pieces)):])
    return head, pieces


def tint_class(prob: float) -> str:
    """One of five tint classes (p0 faint .. p4 strong) for a token's probability."""
    return f"p{sum(prob >= t for t in (0.1, 0.25, 0.5, 0.8))}"


def _hover(token: GeneratedToken) -> str:
    alternatives = ", ".join(f"{w} {p:.0%}" for w, p in token.alternatives)
    return html.escape(f"{token.text}: probability {token.prob:.1%}\ntop alternatives: {alternatives}", quote=True)


def tinted_html(tokenizer, prompt: str, tokens: Sequence[GeneratedToken]) -> str:
    """The prompt (greyed) then each generated token tinted by the model's probability for it; hovering a token shows
    that probability and the top alternatives. For `st.html`."""
    head, pieces = token_pieces(tokenizer, prompt, [t.token_id for t in tokens])
    spans = "".join(f'<span class="tok {tint_class(t.prob)}" title="{_hover(t)}">{html_text(piece)}</span>'
                    for t, piece in zip(tokens, pieces) if piece)
    return f'<div class="cute-text"><span class="prompt">{html_text(head)}</span><span class="new tinted">{spans}</span></div>'


TEXT_STYLES = """
<style>
.cute-text { font-size: 1.15rem; line-height: 1.8; padding: 0.75rem 1rem; border-radius: 0.5rem;
             background: rgba(127, 127, 127, 0.08); white-space: pre-wrap; word-break: break-word; }
.cute-text .prompt { color: #64748b; }
.cute-text .new { background: rgba(99, 102, 241, 0.18); border-radius: 0.25rem; padding: 0 0.15rem;
                  font-weight: 600; }
.cute-text .unk { text-decoration: underline wavy #f59e0b; }
.cute-text .new.tinted { background: none; padding: 0; }
.cute-text .tok { border-radius: 0.25rem; padding: 0 0.05rem; cursor: help; }
.cute-text .tok.p0 { background: rgba(99, 102, 241, 0.06); }
.cute-text .tok.p1 { background: rgba(99, 102, 241, 0.14); }
.cute-text .tok.p2 { background: rgba(99, 102, 241, 0.24); }
.cute-text .tok.p3 { background: rgba(99, 102, 241, 0.36); }
.cute-text .tok.p4 { background: rgba(99, 102, 241, 0.50); }
</style>
"""


def duration(seconds: float | None) -> str:
    """A time for people: "42s", "3m 05s", "1h 02m"; "–" when unknown."""
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


# Soft colours that tell neighbouring tokens apart (token i gets colour i mod len).
CHIP_COLOURS = ("#E6E1FF", "#D5F5EA", "#FFE8CC", "#DCEBFF", "#FFE1EC", "#EEF2C4")
CHIP_STYLE = """<style>
.cute-chips { line-height: 2.3; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 0.98rem; }
.cute-chips span { padding: 0.15rem 0.3rem; margin: 0 0.12rem; border-radius: 0.3rem; white-space: pre; }
.cute-chips span.unk { outline: 2px dashed #f59e0b; }
</style>"""


def chips_html(pieces: "pd.DataFrame") -> str:
    """`inspection.token_pieces` as coloured chips; hovering one shows its id and readable form."""
    spans = []
    for row in pieces.itertuples():
        shown = row.piece.replace(" ", "␣").replace("\n", "↵") if row.piece.strip() != row.piece else row.piece
        title = f"id {row.id} · {row.token}" + (" (not in the vocabulary: read as <unk>)" if row.unknown else "")
        spans.append(f'<span class="{"unk" if row.unknown else ""}" title="{html.escape(title)}" '
                     f'style="background:{CHIP_COLOURS[row.position % len(CHIP_COLOURS)]}">{html.escape(shown)}</span>')
    return f'{CHIP_STYLE}<div class="cute-chips">{"".join(spans)}</div>'


# A chat's tokens by role (blue: the user, green: the assistant, orange: a reply being written), control tokens dark;
# with a loss mask, the targets SFT learns outlined and the rest faded.
CHAT_CHIP_STYLE = """<style>
.cute-chips span.user { background: #DCEBFF; }
.cute-chips span.assistant { background: #D5F5EA; }
.cute-chips span.reply { background: #FFE8CC; outline: 1px dashed #b45309; }
.cute-chips span.control { background: #312e81; color: #fff; font-weight: 700; }
.cute-chips span.learned { outline: 2px solid #16a34a; font-weight: 700; }
.cute-chips span.read { opacity: 0.6; }
</style>"""
ZERO_WIDTH_SPACE = "\u200b"   # between chips: a long conversation may wrap there


def conversation_chips_html(tokenizer, ids: Sequence[int], roles: Sequence[str],
                            learned: Sequence[bool] | None = None, titles: Sequence[str] | None = None) -> str:
    """A templated conversation (cutellm.chat.template) as chips, one class per role ("user", "assistant" or
    "reply"), "control" for the chat's control tokens and "unk" for <unk>; with `learned` (the loss mask) each chip
    is also "learned" or "read". `titles` replace the hover texts (default: id and role)."""
    from cutellm.tokenizer import CHAT_TOKENS

    spans = []
    for k, (token_id, role) in enumerate(zip(ids, roles)):
        token = tokenizer.token(token_id)
        classes = ([] if learned is None else ["learned" if learned[k] else "read"]) + [role]
        classes += ["control"] * (token in CHAT_TOKENS) + ["unk"] * (token_id == tokenizer.unk_id)
        title = titles[k] if titles is not None else f"id {token_id} · {role}" + (
            "" if learned is None else " · learned: a target of the loss" if learned[k] else " · read, not learned")
        shown = token.replace(" ", "␣").replace("\n", "↵") if token.strip() != token else token
        spans.append(f'<span class="{" ".join(classes)}" title="{html.escape(title)}">{html.escape(shown)}</span>')
    return f'{CHIP_STYLE}{CHAT_CHIP_STYLE}<div class="cute-chips chat-chips">{ZERO_WIDTH_SPACE.join(spans)}</div>'


def glossary_link(term: str) -> str:
    """A markdown link to a term's line in the Learn page's glossary (cutellm/glossary.py)."""
    return f"[What is {term}?](learn?{urlencode({'term': term})})"


def svg_img(svg: str, alt: str, css_class: str = "") -> str:
    """An SVG drawing as an <img>: Streamlit's HTML sanitizer (DOMPurify, HTML profile) drops inline SVG, so a chart
    drawn as <svg> would not show in st.html."""
    return (f'<img class="{css_class}" alt="{html.escape(alt)}" style="width: 100%" '
            f'src="data:image/svg+xml;base64,{base64.b64encode(svg.encode()).decode()}">')
