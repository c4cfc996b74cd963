"""Reading a run while it trains: the loss against two baselines, perplexity, an overfitting notice, live samples."""

from __future__ import annotations

import streamlit as st

from cutellm.curve import Baselines, overfitting, perplexity
from cutellm.jobs import JobSnapshot

from .text import code_span

BASELINE_HELP = ("**Uniform guess**: every token equally likely, loss ln V. **Unigram**: each token as likely as it "
                 "is frequent in your training text, ignoring what came before. **Perplexity** = e^loss: a "
                 "perplexity of N means the model is as unsure as if it picked among N equally likely tokens. "
                 "*N times better* compares perplexities: the unigram model's divided by yours.")


def _ppl(loss: float) -> str:
    value = perplexity(loss)
    return f"{value:,.1f}" if value < 10_000 else f"{value:,.0f}"


def reading(snap: JobSnapshot, baselines: Baselines) -> None:
    """One sentence on where the loss stands, and the overfitting notice when it applies."""
    last = snap.latest
    if last is None:
        st.caption(f"Reference lines: a uniform guess scores {baselines.uniform:.2f} (perplexity "
                   f"{_ppl(baselines.uniform)}), guessing by word frequency {baselines.unigram:.2f} (perplexity "
                   f"{_ppl(baselines.unigram)}).", help=BASELINE_HELP)
        return
    loss, which = (snap.last_val_loss, "validation") if snap.last_val_loss is not None else (last.train_loss,
                                                                                              "training")
    times = baselines.times_better(loss)
    if times >= 1.05:
        verdict = (f"your model is now **{times:,.1f} times better than guessing by word frequency** (perplexity "
                   f"{_ppl(loss)} against {_ppl(baselines.unigram)})")
    elif loss < baselines.uniform:
        verdict = (f"better than a uniform guess ({_ppl(baselines.uniform)}), not yet better than guessing by word "
                   f"frequency ({_ppl(baselines.unigram)}): it is still learning which tokens are common")
    else:
        verdict = f"no better than a uniform guess yet (perplexity {_ppl(baselines.uniform)})"
    st.markdown(f"{which.capitalize()} loss **{loss:.3f}** = perplexity **{_ppl(loss)}**: {verdict}.",
                help=BASELINE_HELP)
    notice = overfitting(snap.history)
    if notice is not None:
        st.warning(f"**Overfitting.** The validation loss has risen at each of the last 3 evaluations (from "
                   f"{notice.best_val_loss:.3f} at step {notice.since_step:,} to {notice.last_val_loss:.3f}) while "
                   "the training loss keeps falling: the model is memorising its training text rather than learning "
                   "what carries over to new text. Try more text, some dropout (0.1-0.2), or fewer epochs; the "
                   "weights at the lowest validation loss generalised best.", icon=":material/trending_up:")


def live_samples(snap: JobSnapshot) -> None:
    """What the model wrote at each evaluation, newest first."""
    if not snap.samples:
        if snap.running:
            st.caption("Live samples appear here at each evaluation: the model continues your prompt and fills "
                       "your blank.")
        return
    st.markdown("**Live samples** · at each evaluation, newest first: the prompt's greedy continuation · the blank "
                "filled")
    # One element for the whole list: the panel redraws every element at each refresh, and a run collects ~40.
    with st.container(height=min(300, 40 + 34 * len(snap.samples)), border=True, key="live_samples"):
        st.markdown("\n\n".join(f"step {s.step:,}: {code_span(s.continuation)} · {code_span(s.filled)}"
                                  for s in reversed(snap.samples)))
