"""Showing user and model text literally.

Streamlit's markdown turns `$x$` into LaTeX, `:smile:` into an emoji and `<b>` into HTML (when allowed). User prompts
and generated words must appear exactly as typed, so they go through one of these helpers, never raw into markdown.
"""

from __future__ import annotations

import html
import re


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


TEXT_STYLES = """
<style>
.cute-text { font-size: 1.15rem; line-height: 1.8; padding: 0.75rem 1rem; border-radius: 0.5rem;
             background: rgba(127, 127, 127, 0.08); white-space: pre-wrap; word-break: break-word; }
.cute-text .prompt { color: #64748b; }
.cute-text .new { background: rgba(99, 102, 241, 0.18); border-radius: 0.25rem; padding: 0 0.15rem;
                  font-weight: 600; }
.cute-text .unk { text-decoration: underline wavy #f59e0b; }
</style>
"""
