"""Reading a run while it trains, as HTML for the live view: the loss against two baselines, perplexity, an
overfitting notice, the live samples. Everything shown from the run (numbers, model text) is escaped."""

from __future__ import annotations

import html

from cutellm.views.curve import Baselines, overfitting, perplexity
from cutellm.lab.jobs import JobSnapshot

BASELINE_HELP = ("Uniform guess: every token equally likely, loss ln V. Unigram: each token as likely as it is "
                 "frequent in your training text, ignoring what came before. Perplexity = e^loss: a perplexity of N "
                 "means the model is as unsure as if it picked among N equally likely tokens. \"N times better\" "
                 "compares perplexities: the unigram model's divided by yours.")
_HELP = f' <span class="live-help" title="{html.escape(BASELINE_HELP)}">?</span>'


def _ppl(loss: float) -> str:
    value = perplexity(loss)
    return f"{value:,.1f}" if value < 10_000 else f"{value:,.0f}"


def code(text: str) -> str:
    """Model text shown literally, on one line."""
    return f"<code>{html.escape(text.replace(chr(10), ' '))}</code>"


def reading_html(snap: JobSnapshot, baselines: Baselines) -> str:
    """One sentence on where the loss stands, and the overfitting notice when it applies."""
    last = snap.latest
    if last is None:
        return (f'<p class="live-caption">Reference lines: a uniform guess scores {baselines.uniform:.2f} '
                f'(perplexity {_ppl(baselines.uniform)}), guessing by word frequency {baselines.unigram:.2f} '
                f'(perplexity {_ppl(baselines.unigram)}).{_HELP}</p>')
    loss, which = (snap.last_val_loss, "validation") if snap.last_val_loss is not None else (last.train_loss,
                                                                                              "training")
    times = baselines.times_better(loss)
    if times >= 1.05:
        verdict = (f"your model is now <b>{times:,.1f} times better than guessing by word frequency</b> (perplexity "
                   f"{_ppl(loss)} against {_ppl(baselines.unigram)})")
    elif loss < baselines.uniform:
        verdict = (f"better than a uniform guess ({_ppl(baselines.uniform)}), not yet better than guessing by word "
                   f"frequency ({_ppl(baselines.unigram)}): it is still learning which tokens are common")
    else:
        verdict = f"no better than a uniform guess yet (perplexity {_ppl(baselines.uniform)})"
    out = f"<p>{which.capitalize()} loss <b>{loss:.3f}</b> = perplexity <b>{_ppl(loss)}</b>: {verdict}.{_HELP}</p>"
    notice = overfitting(snap.history)
    if notice is not None:
        out += (f'<div class="live-warning" role="status"><b>Overfitting.</b> The validation loss has risen at each '
                f'of the last 3 evaluations (from {notice.best_val_loss:.3f} at step {notice.since_step:,} to '
                f'{notice.last_val_loss:.3f}) while the training loss keeps falling: the model is memorising its '
                "training text rather than learning what carries over to new text. Try more text, some dropout "
                "(0.1-0.2), or fewer epochs; the weights at the lowest validation loss generalised best.</div>")
    return out


def samples_html(snap: JobSnapshot) -> str:
    """What the model wrote at each evaluation, newest first."""
    if snap.samples and snap.samples[-1].accuracy is not None:   # a toy task's answers
        lines = "".join(f'<div class="sample">step {s.step:,}: <b>{s.accuracy:.0%}</b> exact · {code(s.continuation)}'
                        "</div>" for s in reversed(snap.samples))
        return ("<p><b>Held-out problems</b> · at each evaluation, newest first: the share answered exactly, and the "
                f'first answers (✓ right, ✗ wrong with the right one)</p><div class="live-samples">{lines}</div>')
    if not snap.samples:
        return ('<p class="live-caption">Live samples appear here at each evaluation: the model continues your prompt '
                'and fills your blank (for a toy task: answers problems it never trained on).</p>'
                ) if snap.running else ""
    lines = "".join(f'<div class="sample">step {s.step:,}: {code(s.continuation)} · {code(s.filled)}</div>'
                    for s in reversed(snap.samples))
    return ("<p><b>Live samples</b> · at each evaluation, newest first: the prompt's greedy continuation · the blank "
            f'filled</p><div class="live-samples">{lines}</div>')
