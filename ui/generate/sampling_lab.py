"""The Generate page's step-by-step mode: the next-token distribution under each sampling stage, one token at a time.

The learner's text is a prompt plus the tokens chosen so far, kept as token ids (re-encoding the text could split it
differently). The model runs once per text: its logits are kept, so moving a slider only redraws the stages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import streamlit as st
import torch

from cutellm.views import charts
from cutellm.errors import CuteLLMError
from cutellm.inference import GeneratedToken, describe_token, encode_prompt, next_token_logits
from cutellm.sampling import SamplingSettings, sampling_steps
from cutellm.tokenizer import Tokenizer

from ..notices import hint_repetition, note_beyond_context
from ..state import LoadedModel
from ..text import code_span, tinted_html

STEP_VIEW = "Step by step"
BRANCH_CHOICES = 8    # tokens offered to branch on (the model's most likely ones)
BARS = 20             # tokens drawn in each stage's bars


@dataclass
class Lab:
    model_key: str
    prompt: str
    prompt_ids: list[int]
    chosen: list[GeneratedToken] = field(default_factory=list)
    logits: torch.Tensor | None = None   # next_token_logits for `logits_ids`
    logits_ids: tuple[int, ...] = ()

    @property
    def ids(self) -> list[int]:
        return self.prompt_ids + [t.token_id for t in self.chosen]

    def text(self, tokenizer: Tokenizer) -> str:
        return tokenizer.continue_text(self.prompt, [t.token_id for t in self.chosen])


def current_lab() -> Lab | None:
    return st.session_state.get("gen_lab")


def _lab(active: LoadedModel, prompt: str) -> Lab:
    """The lab for this model and prompt: a fresh one (no tokens chosen) when either changed."""
    lab = current_lab()
    if lab is None or lab.model_key != active.key or lab.prompt != prompt:
        lab = Lab(active.key, prompt, encode_prompt(active.tokenizer, prompt))
        st.session_state.gen_lab = lab
    return lab


def keep_grown_text(view_key: str, prompt_key: str) -> None:
    """on_change of the view switch: leaving step mode, the grown text becomes the prompt."""
    lab, active = current_lab(), st.session_state.get("active_loaded")
    if st.session_state[view_key] != STEP_VIEW and lab is not None and lab.chosen and active is not None \
            and lab.model_key == active.key:
        st.session_state[prompt_key] = lab.text(active.tokenizer)


def _logits(active: LoadedModel, lab: Lab) -> torch.Tensor:
    ids = tuple(lab.ids)
    if lab.logits is None or lab.logits_ids != ids:
        lab.logits, lab.logits_ids = next_token_logits(active.model, active.tokenizer, ids), ids
    return lab.logits


def _append(lab: Lab, tokenizer: Tokenizer, token_id: int) -> None:
    lab.chosen.append(describe_token(tokenizer, lab.logits, token_id))
    st.session_state.gen_lab_pick = None


def _undo(lab: Lab) -> None:
    lab.chosen.pop()
    st.session_state.gen_lab_pick = None


def step_panel(active: LoadedModel, prompt: str, settings: SamplingSettings) -> None:
    """The text so far, Next token / Take this one / Undo, and the bars of every sampling stage under `settings`."""
    tokenizer = active.tokenizer
    try:
        lab = _lab(active, prompt)
        logits = _logits(active, lab)
        steps = sampling_steps(logits, settings)
    except CuteLLMError as err:
        st.error(str(err), icon=":material/error:")
        return
    # Step n draws with seed + n: the same settings and choices always draw the same tokens (Undo, then Next
    # token again, gives the token back).
    seed = (settings.seed or 0) + len(lab.chosen)
    drawn = steps.draw(None if settings.greedy else torch.Generator().manual_seed(seed))

    st.html(tinted_html(tokenizer, lab.prompt, lab.chosen))
    note_beyond_context(lab.ids, active.model.config.block_size, "The text so far")
    hint_repetition(tokenizer, [t.token_id for t in lab.chosen], not settings.greedy)

    options = [int(i) for i in steps.ranking[:BRANCH_CHOICES]]
    model_probs = steps.stage("model").probs
    a, b, c = st.columns([1.1, 0.8, 4.5])
    a.button("Next token", key="gen_lab_next", type="primary",
             icon=":material/skip_next:", on_click=_append, args=(lab, tokenizer, drawn),
             help="Append the token drawn from the last stage (highlighted in the bars).")
    b.button("Undo", key="gen_lab_undo", icon=":material/undo:", disabled=not lab.chosen, on_click=_undo,
             args=(lab,), help="Remove the last token you added.")
    if st.session_state.get("gen_lab_pick") not in options:
        st.session_state.gen_lab_pick = None  # a pick from another text or model
    with c:
        picked = st.pills("Or branch: pick any of the model's top tokens", options, key="gen_lab_pick",
                          format_func=lambda i: f"{tokenizer.token(i)} {model_probs[i]:.0%}",
                          help="Take a token the sampler did not draw, and carry on from there.")
        st.button("Take this one", key="gen_lab_take", icon=":material/call_split:", disabled=picked is None,
                  on_click=_append, args=(lab, tokenizer, picked),
                  help="Append the token you picked instead of the drawn one.")

    a.caption(f"It would add {code_span(tokenizer.token(drawn))} "
              f"(p = {steps.final.probs[drawn]:.2f} in the last stage).")
    st.plotly_chart(charts.sampling_figure(steps, tokenizer.token, drawn=drawn, picked=picked, top_n=BARS),
                    key="gen_lab_bars", config={"displaylogo": False})
    for col, stage in zip(st.columns(len(steps.stages)), steps.stages):
        view = charts.STAGE_VIEWS[stage.name]
        removed = f" Here it removes {len(stage.removed):,} tokens." if stage.removed else ""
        col.caption(f"**{view.title}.** {view.explanation}{removed}")
