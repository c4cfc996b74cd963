"""Chat: talk to the active model through the chat template, see what it reads, and compare it with its base."""

import streamlit as st

from ui import share, state
from ui.chat import controls, conversation, seen
from ui.text import code_span, glossary_link

state.keep(controls.DEFAULTS)

st.title("Chat")
share.sync([])   # the active model travels in the URL, as on the other pages
st.caption(f"The conversation is written as one token sequence, each message between {code_span('<|user|>')} or "
           f"{code_span('<|assistant|>')} and {code_span('<|end|>')}; the model writes the reply after "
           f"{code_span('<|assistant|>')} until it writes {code_span('<|end|>')}. " + glossary_link("chat template"))
active = state.active_model()
controls.explain_model(active)
turns = conversation.history(active)
question = st.chat_input("Ask the model something", key="chat_input")   # pinned to the bottom wherever it is called

left, right = st.columns([1, 3], vertical_alignment="center")
left.button("New chat", icon=":material/add_comment:", on_click=conversation.clear, args=(active.key,),
            disabled=not turns and question is None, help="Forget this conversation with the active model.")
right.toggle("Compare with the base model", key="chat_compare",
             help="Ask each question to a second model too, side by side: by default the model the active one "
                  "was trained from.")
settings, budget = controls.sampling_controls(active.tokenizer.vocab_size)
partner = controls.compare_partner(active) if st.session_state.chat_compare else None

if not turns and question is None:
    st.caption("Type a message below, e.g. *what colour is the snow?*")
for turn in turns:
    conversation.draw_turn(turn)
if question is not None:
    conversation.ask(active, partner, turns, question, settings, budget)
if turns:
    seen.what_the_model_sees(turns[-1])
