"""Text that came from a model (or any user) made safe for places that render markdown.

Streamlit renders markdown in labels, captions, progress text and expander titles:
an answer could turn into an image that leaks data to its URL, a `javascript:` link,
LaTeX or coloured text. Showing answers with st.text or a dataframe is always safe;
where a label has to carry one, `inert()` backslash-escapes every ASCII punctuation
character (CommonMark allows that for each of them), so nothing in it is markup.
"""

import math
import re

_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
# Markdown turns bare URLs, www. names and e-mail addresses into links even when their
# punctuation is escaped: a word joiner (U+2060, invisible) after the scheme's colon, after
# "www" and after "@" keeps them plain text.
_AUTOLINK = re.compile(r"(?i)(?<=[a-z]\\:)|(?<=\bwww)(?=\\\.)|(?<=\\@)")


def one_line(text: str | None, limit: int | None = None) -> str:
    """Text on one line, cut to `limit` characters: for places that show plain text
    (a selectbox's options), where escaping would show its backslashes."""
    text = " ".join((text or "").split()) if isinstance(text, str) or text is None else str(text)
    return text[:limit] + "…" if limit is not None and len(text) > limit else text


def inert(text: str | None, limit: int | None = None) -> str:
    """One line of plain text for a markdown context, cut to `limit` characters."""
    text = one_line(text, limit)
    return _AUTOLINK.sub("\u2060", _PUNCTUATION.sub(r"\\\1", text))


def usd(amount: float | None, unpriced: int = 0) -> str:
    """A cost as a reader should take it: "unknown" when nothing is priced, a floor with
    the count of unpriced answers when only some are, never a made-up $0. A missing number
    (None, or NaN where a table held the cell) is unknown, never a crash."""
    amount = None if amount is None or amount != amount else amount  # NaN is the one value unequal to itself
    unpriced = 0 if unpriced is None or unpriced != unpriced else int(unpriced)
    if unpriced and not amount:
        return f"unknown ({unpriced:,} answers unpriced)"
    if amount is None:
        return "unknown"
    text = money(amount)
    return f"≥ {text} known, {unpriced:,} answers unpriced" if unpriced else text


def money(amount: float) -> str:
    """Dollars with the digits that matter: $12.35, $0.0123, $0.0000456."""
    if amount == 0:
        return "$0"
    if abs(amount) >= 1:
        return f"${amount:,.2f}"
    return f"${amount:.{max(2, 2 - math.floor(math.log10(abs(amount))))}f}"

