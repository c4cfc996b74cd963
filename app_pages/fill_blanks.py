"""Fill the blanks: write ___ where a word is missing and see the model's ranked guesses, for any tokenizer."""

import pandas as pd
import streamlit as st

from cutellm import complete_phrase
from cutellm.completion import DEFAULT_BEAM, count_blanks
from ui import share, state
from ui.notices import warn_unknown_words
from ui.text import glossary_link, highlighted

EXAMPLES = ["the cat sat on the ___", "the ___ sat on the mat", "the ___ ___ on the mat", "the cow eats ___",
            "the sky is ___ and the sun is ___", "she put the cup on the ___.", "once upon a ___, there was a little ___."]

state.keep({"fill_phrase": EXAMPLES[0], "fill_top_k": 5, "fill_beam": DEFAULT_BEAM, "fill_result": None})


def use_example() -> None:
    choice = st.session_state.get("fill_example")
    if choice:
        st.session_state.fill_phrase = choice
        st.session_state.fill_example = None


st.title("Fill the blanks")
share.sync([share.Param("phrase", "fill_phrase", share.text(500))])
st.caption("Each word the model knows is tried in the blank, and the model scores the whole sentence, so the words "
           "after the blank count too. Several blanks are searched together: the best combination wins, not the "
           "best word for each blank on its own.")
active = state.active_model()
words = active.meta.get("words")

st.pills("Examples", EXAMPLES, key="fill_example", on_change=use_example,
         help="Click an example to put it in the box.")
st.text_input("Phrase", key="fill_phrase",
              help="Write ___ (three underscores) for each missing word, up to 10 blanks.")
a, b = st.columns(2)
state.clamp("fill_top_k", 1, 20, "Candidates per blank")
a.slider("Candidates per blank", 1, 20, key="fill_top_k")
state.clamp("fill_beam", 1, 32, "Combinations kept")
b.slider("Combinations kept (beam width)", 1, 32, key="fill_beam",
         help="With several blanks, the search keeps this many best partial fillings from one blank to the next. "
              "1 fills the blanks one by one, left to right, each looking only at the words before it. "
              + glossary_link("beam width"))

phrase = st.session_state.fill_phrase
if count_blanks(phrase) == 0:
    st.info("Add a blank: write `___` (three underscores) where a word is missing, e.g. `the cat sat on the ___`.",
            icon=":material/lightbulb:")
warn_unknown_words(active.tokenizer, phrase)
if not words:
    st.caption(f"{active.name} was saved without its corpus's word list, so the candidates are the words its "
               f"{active.tokenizer.kind} vocabulary holds.")

if st.button("Fill the blanks", type="primary", icon=":material/auto_fix_high:", disabled=not count_blanks(phrase)):
    state.compute_result("fill_result", active, lambda: {"completion": complete_phrase(
        active.model, active.tokenizer, phrase, top_k=int(st.session_state.fill_top_k), words=words,
        beam_width=int(st.session_state.fill_beam)), "top_k": int(st.session_state.fill_top_k),
        "beam": int(st.session_state.fill_beam)})

result = state.kept_result("fill_result", active)
if result:
    completion = result["completion"]
    # A result always says which input it belongs to: after an edit, the last result is marked as the old one's.
    if completion.text != phrase:
        st.info(f"Below: the result for the previous phrase, *{completion.text}*. Press **Fill the blanks** for "
                "the phrase above.", icon=":material/history:")
    elif (result.get("top_k"), result.get("beam")) != (st.session_state.fill_top_k, st.session_state.fill_beam):
        st.info(f"Below: the result for {result.get('top_k')} candidates per blank and {result.get('beam')} "
                "combinations kept. Press **Fill the blanks** for the new settings.", icon=":material/history:")
    st.html(highlighted([(text, "new" if filled else "prompt") for text, filled in completion.segments()]))
    if len(completion.blanks) > 1:
        st.markdown("**The most likely sentences**")
        st.dataframe(pd.DataFrame({"sentence": [s.text for s in completion.sentences],
                                   "probability": [s.prob for s in completion.sentences]}),
                     hide_index=True, width="stretch", column_config={
                         "probability": st.column_config.ProgressColumn(
                             "probability", min_value=0.0, max_value=1.0, format="%.3f",
                             help="Among the complete fillings the search kept")})
        st.caption("Each blank's candidates below are ranked with the other blanks filled as in the best sentence.")
    columns = st.columns(min(3, len(completion.blanks)))
    for blank in completion.blanks:
        with columns[blank.index % len(columns)]:
            st.markdown(f"**Blank {blank.index + 1}**")
            frame = pd.DataFrame({"word": [c.word for c in blank.candidates],
                                  "probability": [c.prob for c in blank.candidates]})
            st.dataframe(frame, hide_index=True, width="stretch", column_config={
                "probability": st.column_config.ProgressColumn("probability", min_value=0.0, max_value=1.0,
                                                               format="%.3f")})
