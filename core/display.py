"""Text that came from a model (or any user) made safe for places that render markdown.

Streamlit renders markdown in labels, captions, progress text and expander titles:
an answer could turn into an image that leaks data to its URL, a `javascript:` link,
LaTeX or coloured text. Showing answers with st.text or a dataframe is always safe;
where a label has to carry one, `inert()` backslash-escapes every ASCII punctuation
character (CommonMark allows that for each of them), so nothing in it is markup.
"""

import re

_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def inert(text: str | None, limit: int | None = None) -> str:
    """One line of plain text for a markdown context, cut to `limit` characters."""
    text = " ".join((text or "").split())
    if limit is not None and len(text) > limit:
        text = text[:limit] + "…"
    return _PUNCTUATION.sub(r"\\\1", text)
