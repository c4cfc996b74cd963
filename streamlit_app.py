"""CuteGPT playground: `streamlit run streamlit_app.py`.

Entry point: page config, session defaults, navigation over app_pages/, and the shared sidebar.
"""

import streamlit as st

from ui import state
from ui.sidebar import render_sidebar
from ui.text import TEXT_STYLES

st.set_page_config(page_title="CuteGPT", page_icon=":material/neurology:", layout="wide")
state.init_session()

pages = [
    st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("app_pages/runs.py", title="Runs", icon=":material/stacked_line_chart:"),
    st.Page("app_pages/generate.py", title="Generate", icon=":material/edit_note:"),
    st.Page("app_pages/fill_blanks.py", title="Fill the blanks", icon=":material/format_underlined:"),
    st.Page("app_pages/explore.py", title="Explore", icon=":material/biotech:"),
]
page = st.navigation(pages)
st.html(TEXT_STYLES)
state.collect_finished_job()
render_sidebar()
page.run()
