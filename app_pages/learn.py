"""Learn: guided lessons on the active model, in a learner's order; each one live, with a Try this the page notices.

The lesson and the lessons done live in the URL (`?lesson=2&done=1`), so a reload, a bookmark or a link sent to
someone opens the same lesson."""

from urllib.parse import urlencode

import streamlit as st

from cutellm.glossary import GLOSSARY
from ui import state
from ui.learn.lessons import DEFAULTS, LESSONS

state.keep({**DEFAULTS})
st.session_state.setdefault("learn_done", set())


def _from_url() -> int:
    """The lesson the URL names (1-based), and the lessons it marks done; a bad value gets lesson 1 and a notice."""
    raw = st.query_params.get("lesson", "1")
    try:
        lesson = int(raw)
        if not 1 <= lesson <= len(LESSONS):
            raise ValueError
    except ValueError:
        st.info(f"There is no lesson {raw[:20]!r} (lessons are 1-{len(LESSONS)}): showing lesson 1.",
                icon=":material/info:")
        lesson = 1
    for part in st.query_params.get("done", "").split(","):
        if part.strip().isdigit() and 1 <= int(part) <= len(LESSONS):
            st.session_state.learn_done.add(int(part))
    return lesson


def _to_url(lesson: int) -> None:
    st.query_params["lesson"] = str(lesson)
    done = ",".join(str(n) for n in sorted(st.session_state.learn_done))
    if done:
        st.query_params["done"] = done
    elif "done" in st.query_params:
        del st.query_params["done"]


def _go(lesson: int) -> None:
    st.session_state.learn_lesson = lesson
    if "term" in st.query_params:   # a glossary link's term is shown once, not on every lesson after it
        del st.query_params["term"]
    _to_url(lesson)


st.title("Learn")
st.caption("Short lessons in order, each computed live from the active model (the one in the sidebar). Do each "
           "lesson's *Try this*: the page notices, and ticks it off. Every term is in the glossary at the bottom.")
LESSON_OF = {lesson.title: n for n, lesson in enumerate(LESSONS, 1)}


def term_line(name: str) -> str:
    term = GLOSSARY[name]
    shown = f" *Live in [lesson {LESSON_OF[term.lesson]}](learn?lesson={LESSON_OF[term.lesson]}).*" \
        if term.lesson else ""
    return f"**{name.replace('<', '&lt;')}**: {term.meaning}{shown}"


asked = st.query_params.get("term")   # "" opens the glossary; a term shows its line here too
if asked:
    if asked in GLOSSARY:
        st.info(term_line(asked), icon=":material/menu_book:")
    else:
        st.info(f"The glossary has no {asked[:40]!r}: all its terms are at the bottom of this page.",
                icon=":material/menu_book:")

if "learn_lesson" not in st.session_state:   # the URL is read once, as ui/share.py does, then the page rules it
    st.session_state.learn_lesson = _from_url()
current = st.session_state.learn_lesson
done = st.session_state.learn_done
navigation = st.container()   # filled in after the lesson, which may tick itself off

lesson = LESSONS[current - 1]
st.header(f"{current} · {lesson.title}")
outcome = lesson.draw(state.active_model())
if outcome is not None:
    done.add(current)
    st.success(outcome, icon=":material/check_circle:")
_to_url(current)

with navigation:
    st.progress(len(done) / len(LESSONS), text=f"{len(done)} of {len(LESSONS)} lessons done")
    st.session_state.learn_pick = current
    st.selectbox("Lesson", range(1, len(LESSONS) + 1), key="learn_pick",
                 format_func=lambda n: f"{'✓' if n in done else '○'} {n} · {LESSONS[n - 1].title}",
                 on_change=lambda: _go(st.session_state.learn_pick))

# The full page, opened with this lesson's settings (ui/share.py reads them), on the same model.
params = {**{k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in lesson.link(st.session_state).items()},
          "model": state.active_model().name}
st.markdown(f":material/open_in_new: [The full page: {lesson.page_label}, with these settings]"
            f"({lesson.page}?{urlencode(params)})")
back, forward, _ = st.columns([1, 1, 4])
back.button("Previous", icon=":material/arrow_back:", disabled=current == 1, on_click=_go, args=(current - 1,),
            key="learn_prev")
forward.button("Next lesson", icon=":material/arrow_forward:", type="primary", disabled=current == len(LESSONS),
               on_click=_go, args=(current + 1,), key="learn_next")

st.subheader("Glossary", anchor="glossary")
with st.expander(f"{len(GLOSSARY)} terms, one line each", expanded=asked is not None):
    st.markdown("\n".join(f"- {term_line(name)}" for name in GLOSSARY))
