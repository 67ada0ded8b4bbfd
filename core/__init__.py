"""Spread's core: plain Python, no Streamlit. The app pages and the `spread` CLI both call into it."""
