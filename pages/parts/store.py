"""The app's one Store per server process: its PostgreSQL pool is shared by every session
and the server's worker (a Store holds no connection between units of work, so sharing it
across sessions' threads is safe)."""

import streamlit as st

from core.store import Store


@st.cache_resource
def app_store() -> Store:
    return Store()
