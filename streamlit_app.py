"""CuteGPT playground: `streamlit run streamlit_app.py`.

Entry point: page config, session defaults, navigation over app_pages/, and the shared sidebar.

`streamlit run` first imports this file as a module and finds `app` below, an ASGI app that serves Streamlit plus
one route of our own (the Train page's live view, `ui/train/live_view.py`), after the server's one-time setup
(`ui/server.py`); then Streamlit runs it as the script of each session, as `__main__`.
"""

import streamlit as st

if __name__ == "__main__":
    from ui import share, state
    from ui.sidebar import render_sidebar
    from ui.text import TEXT_STYLES

    st.set_page_config(page_title="CuteGPT", page_icon=":material/neurology:", layout="wide")
    state.init_session()
    state.keep_alive()   # every page's settings survive a visit to another page

    pages = [
        st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("app_pages/learn.py", title="Learn", icon=":material/school:"),
        st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
        st.Page("app_pages/runs.py", title="Runs", icon=":material/stacked_line_chart:"),
        st.Page("app_pages/generate.py", title="Generate", icon=":material/edit_note:"),
        st.Page("app_pages/chat.py", title="Chat", icon=":material/chat:"),
        st.Page("app_pages/fill_blanks.py", title="Fill the blanks", icon=":material/format_underlined:"),
        st.Page("app_pages/explore.py", title="Explore", icon=":material/biotech:"),
    ]
    page = st.navigation(pages)
    st.html(TEXT_STYLES)
    state.collect_finished_job()
    share.sync_model(page.url_path)   # a link's model=<name>, before the sidebar picks the active model
    render_sidebar()
    page.run()
else:
    from ui.server import stop_config_polling
    from ui.train.live_view import live_route

    stop_config_polling()   # once per server: Streamlit's config watchers cost CPU that training pays for
    app = st.App(__file__, routes=[live_route(st.get_option("server.baseUrlPath"))])
