"""Generate: continue a prompt with the active model, streamed token by token, or step by step through sampling."""

import streamlit as st

from cutellm import CuteLLMError
from cutellm.inference import encode_prompt
from ui import sampling_form, share, state
from ui.generate import sampling_lab, streaming
from ui.notices import note_beyond_context, warn_unknown_words

MAX_TOKENS_UI = 200

state.keep({"gen_prompt": "once upon a time", "gen_mode": "Sampled", "gen_max_tokens": 30,
            "gen_temperature": 0.8, "gen_top_k": 40, "gen_top_p": 0.95, "gen_seed": 1, "gen_result": None,
            "gen_view": "Generate"})

st.title("Generate")
st.caption("The model reads your prompt and predicts one token at a time; each new token is added to the text and "
           "the model predicts again.")
share.sync([share.Param("prompt", "gen_prompt", share.text(2000)),
            share.choice("view", "gen_view", {"generate": "Generate", "step": sampling_lab.STEP_VIEW}),
            share.choice("mode", "gen_mode", {"greedy": "Greedy", "sampled": "Sampled"}),
            share.Param("temperature", "gen_temperature", share.number(0.05, 2.0)),
            share.Param("top_k", "gen_top_k", share.number(1, 200, whole=True)),
            share.Param("top_p", "gen_top_p", share.number(0.05, 1.0)),
            share.Param("seed", "gen_seed", share.number(0, 2**31 - 1, whole=True)),
            share.Param("tokens", "gen_max_tokens", share.number(1, MAX_TOKENS_UI, whole=True))])
active = state.active_model()
tokenizer = active.tokenizer
block = active.model.config.block_size

st.radio("Mode", ["Generate", sampling_lab.STEP_VIEW], key="gen_view", horizontal=True,
         on_change=sampling_lab.keep_grown_text, args=("gen_view", "gen_prompt"),
         help="Generate writes many tokens at once. Step by step shows how each sampling setting reshapes the "
              "model's next-token probabilities, and lets you add one token at a time or branch on another one.")
stepping = st.session_state.gen_view == sampling_lab.STEP_VIEW
st.text_area("Prompt", key="gen_prompt", height=90,
             help=f"Text for the model to continue. It only reads the last {block} tokens.")
prompt = st.session_state.gen_prompt
warn_unknown_words(tokenizer, prompt)
try:
    note_beyond_context(encode_prompt(tokenizer, prompt), block, "Your prompt")
except CuteLLMError:
    pass  # an unusable prompt is reported where it is used

left, right = st.columns([1, 2])
with left:
    sampling_form.decoding_radio("gen")
    if not stepping:
        state.clamp("gen_max_tokens", 1, MAX_TOKENS_UI, "New tokens")
        st.slider("New tokens", 1, MAX_TOKENS_UI, key="gen_max_tokens",
                  help=f"How many tokens to generate (at most {MAX_TOKENS_UI} at a time).")
sampling_form.sampling_widgets("gen", tokenizer.vocab_size, right)
s = st.session_state
settings = sampling_form.sampling_settings("gen")

if stepping:
    sampling_lab.step_panel(active, prompt, settings)
else:
    clicked = st.button("Generate", type="primary", icon=":material/play_arrow:")
    slot = st.empty()
    if clicked:
        state.compute_result("gen_result", active, lambda: streaming.stream_into(
            slot, active, prompt, settings, int(s.gen_max_tokens)))
    result = state.kept_result("gen_result", active)
    if result:
        streaming.show_result(slot, active, result)
