"""Generate: continue a prompt with the active model, greedy or sampled, and see each word's probability."""

import pandas as pd
import streamlit as st

from cutellm import stream_generate
from ui import state
from ui.notices import warn_unknown_words
from ui.text import generated_html

MAX_TOKENS_UI = 200

state.keep({"gen_prompt": "once upon a time", "gen_mode": "Sampled", "gen_max_tokens": 30,
            "gen_temperature": 0.8, "gen_top_k": 40, "gen_top_p": 0.95, "gen_seed": 1, "gen_result": None})

st.title("Generate")
st.caption("The model reads your prompt and predicts one token at a time; each new token is added to the text and "
           "the model predicts again.")
active = state.active_model()
tokenizer = active.tokenizer

st.text_area("Prompt", key="gen_prompt", height=90,
             help="Text for the model to continue. It only reads the last "
                  f"{active.model.config.block_size} tokens.")
warn_unknown_words(tokenizer, st.session_state.gen_prompt)

left, right = st.columns([1, 2])
with left:
    st.radio("Decoding", ["Greedy", "Sampled"], key="gen_mode", horizontal=True,
             help="Greedy always takes the most likely token (same output every time). Sampled draws tokens at "
                  "random according to their probabilities.")
    state.clamp("gen_max_tokens", 1, MAX_TOKENS_UI, "New tokens")
    st.slider("New tokens", 1, MAX_TOKENS_UI, key="gen_max_tokens",
              help=f"How many tokens to generate (at most {MAX_TOKENS_UI} at a time).")
with right:
    if st.session_state.gen_mode == "Sampled":
        a, b = st.columns(2)
        top_k_max = min(200, tokenizer.vocab_size)
        state.clamp("gen_temperature", 0.05, 2.0, "Temperature")
        state.clamp("gen_top_k", 1, top_k_max, "Top-k")
        state.clamp("gen_top_p", 0.05, 1.0, "Top-p")
        state.clamp("gen_seed", 0, 2**31 - 1, "Seed")
        a.slider("Temperature", 0.05, 2.0, step=0.05, key="gen_temperature",
                 help="Below 1 sharpens the distribution (safer words), above 1 flattens it (more surprising).")
        a.number_input("Seed", 0, 2**31 - 1, step=1, key="gen_seed",
                       help="The same seed with the same settings gives the same text.")
        b.slider("Top-k", 1, top_k_max, key="gen_top_k",
                 help="Sample only among the k most likely tokens.")
        b.slider("Top-p", 0.05, 1.0, step=0.05, key="gen_top_p",
                 help="Sample only among the most likely tokens whose probabilities add up to p (1 = no limit).")
    else:
        st.caption("Greedy decoding needs no other settings: it always picks the most likely next token.")

def run_generation() -> dict:
    sampled = st.session_state.gen_mode == "Sampled"
    prompt = st.session_state.gen_prompt
    tokens = list(stream_generate(
        active.model, tokenizer, prompt, int(st.session_state.gen_max_tokens),
        temperature=float(st.session_state.gen_temperature) if sampled else 0.0,
        top_k=int(st.session_state.gen_top_k) if sampled else None,
        top_p=float(st.session_state.gen_top_p) if sampled and st.session_state.gen_top_p < 1 else None,
        seed=int(st.session_state.gen_seed) if sampled else None))
    return {"prompt": prompt, "tokens": tokens}


if st.button("Generate", type="primary", icon=":material/play_arrow:"):
    state.compute_result("gen_result", active, run_generation)

result = state.kept_result("gen_result", active)
if result:
    tokens = result["tokens"]
    st.html(generated_html(tokenizer, result["prompt"], [t.token_id for t in tokens]))
    st.caption("Grey: your prompt (as the model reads it) · highlighted: generated.")
    table = pd.DataFrame({
        "#": range(1, len(tokens) + 1),
        "token": [t.text for t in tokens],
        "probability": [t.prob for t in tokens],
        "top alternatives": ["  ".join(f"{w} {p:.0%}" for w, p in t.alternatives) for t in tokens],
    })
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "probability": st.column_config.ProgressColumn("probability", min_value=0.0, max_value=1.0, format="%.3f",
                                                       help="The model's probability for the chosen token"),
        "top alternatives": st.column_config.TextColumn(help="The model's 5 most likely tokens at that step")})
