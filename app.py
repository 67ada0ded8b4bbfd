"""Spread's entry point: only the router and the shared sidebar."""

import streamlit as st

from core import config


def main() -> None:
    st.set_page_config(page_title="Spread", page_icon="◌", layout="wide")
    pages = [
        st.Page("pages/playground.py", title="Playground", icon=":material/science:", default=True),
        st.Page("pages/runs.py", title="Runs", icon=":material/table_rows:"),
        st.Page("pages/spread.py", title="Spread", icon=":material/scatter_plot:"),
        st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    ]
    navigation = st.navigation(pages)
    with st.sidebar:
        st.caption(f"Database: `{config.db_path()}`")
        st.text_input("Reviewer", key="reviewer", placeholder="your name",
                      help="Recorded with the runs you start and the labels you give.")
    navigation.run()


main()
