"""The app's one Store per server process: its PostgreSQL pool is shared by every session
and the server's worker (a Store holds no connection between units of work, so sharing it
across sessions' threads is safe)."""

import os

import streamlit as st

from core.store import Store


def app_store() -> Store:
    """The Store SPREAD_DB names (one per value: a server has one; tests change it)."""
    return _store_named(os.environ.get("SPREAD_DB", ""))


@st.cache_resource(show_spinner=False)
def _store_named(target: str) -> Store:
    return Store(target or None)
