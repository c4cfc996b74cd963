"""Streamlit helpers shared by the pages: session state, the active model, the sidebar, safe text display.

The model logic lives in `cutellm`; this package only wires it to widgets.
"""
