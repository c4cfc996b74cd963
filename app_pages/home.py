"""Home: what CuteGPT is, the pipeline from text to words, and a one-minute tour."""

import pandas as pd
import streamlit as st

from cutellm import CuteLLMError, next_token_distribution
from ui import state

st.title("CuteGPT")
st.markdown("A playground to **see** how a language model is made. Train a tiny GPT on a text, watch it learn, ask it "
            "to continue your sentences, and look inside it. Everything runs right here, on this computer's CPU.")

st.page_link("app_pages/learn.py", label="New here? Start with lesson 1 on the Learn page", icon=":material/school:")

st.subheader("From text to words, in five steps")
steps = st.columns(5)
pipeline = [
    (":material/description:", "Text", "A corpus: the only thing the model ever learns from."),
    (":material/token:", "Tokens", "Text is cut into tokens (words and punctuation) and each gets a number."),
    (":material/neurology:", "Model", "A transformer mixes each token with the ones before it — never after."),
    (":material/bar_chart:", "Logits", "For every position: a score for each token of the vocabulary."),
    (":material/chat:", "Words", "Softmax turns scores into probabilities; we pick one and repeat."),
]
for col, (icon, title, text) in zip(steps, pipeline):
    with col.container(border=True):
        st.markdown(f"#### {icon} {title}")
        st.caption(text)

active = state.active_model()
st.subheader("Try it on the active model")
sentence = "the cat sat on the"
ids = active.tokenizer.encode(sentence)
st.markdown(f"The text `{sentence}` becomes the tokens below; the model then scores every possible next token.")
left, right = st.columns(2)
left.dataframe(pd.DataFrame({"token": [active.tokenizer.token(i) for i in ids], "id": ids}), hide_index=True,
               width="stretch")
try:
    dist = next_token_distribution(active.model, active.tokenizer, sentence, top_k=5)
    right.dataframe(pd.DataFrame(dist, columns=["next token", "probability"]), hide_index=True, width="stretch",
                    column_config={"probability": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0,
                                                                                  format="%.3f")})
except CuteLLMError as err:
    right.info(f"This model cannot read the example sentence: {err}")

st.subheader("A one-minute tour")
tour = [
    ("app_pages/train.py", "Train", ":material/model_training:",
     "Pick the bundled stories or your own text, choose a size, press Train and watch the loss chart fall live."),
    ("app_pages/runs.py", "Runs", ":material/stacked_line_chart:",
     "Overlay the loss curves of your runs and see which settings made the difference."),
    ("app_pages/generate.py", "Generate", ":material/edit_note:",
     "Type a prompt; see which words the model adds and how sure it was of each."),
    ("app_pages/chat.py", "Chat", ":material/chat:",
     "Ask the instruction-tuned model a question, and see the same network before its tuning answer beside it."),
    ("app_pages/fill_blanks.py", "Fill the blanks", ":material/format_underlined:",
     "Write `the ___ sat on the mat` and see the model's ranked guesses."),
    ("app_pages/explore.py", "Explore", ":material/biotech:",
     "Look inside: the architecture, what it predicts at each word, where words sit in embedding space, attention."),
]
for path, label, icon, text in tour:
    with st.container(border=True):
        st.page_link(path, label=label, icon=icon)
        st.caption(text)
