"""A conversation as sent, drawn turn by turn as plain text (never markdown or HTML: the turns
hold model output and users' data)."""

import streamlit as st

from core import display
from core.prompts import conversation

SHOWN_TURNS = 4  # a longer conversation folds its earlier turns away; the last ones stay in view
LAST_TURNS = 2


def draw(messages: list[dict] | None) -> None:
    turns = conversation.readable(messages)
    if not turns:
        st.caption("(no prompt recorded)")
        return
    if len(turns) > SHOWN_TURNS:
        earlier, turns = turns[:-LAST_TURNS], turns[-LAST_TURNS:]
        with st.expander(f"The {len(earlier)} earlier turns ({len(earlier) + len(turns)} in all)"):
            _turns(earlier)
    _turns(turns)


def _turns(turns: list[dict]) -> None:
    for turn in turns:
        st.caption(display.inert(turn["heading"]))
        st.text(conversation.turn_text(turn))
