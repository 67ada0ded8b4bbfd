"""JavaScript regular expressions, as promptfoo runs them (`new RegExp(value).test(answer)`).

A pattern is translated, token by token, into an equivalent Python pattern with the
meaning ECMAScript gives it without flags (Annex B, as browsers and Node read it):

- `\\d`, `\\w`, `\\b` are ASCII only (`'１２３'`, `'٣'` and `'é'` are neither digits nor
  word characters); `\\s` is JavaScript's white space (U+FEFF and the no-break spaces
  included, U+001C..U+001F not);
- `$` is the end of the text only (never before a final newline); `.` stops at \\n, \\r,
  U+2028 and U+2029;
- an unknown escape is the letter itself (`\\Z` is "Z", `\\A` is "A"); `{` that is not a
  quantifier, and a lone `]` or `}`, are literal; `(?i)`, `(?P<n>…)`, `(?>…)`, `a*+`
  and a quantifier with nothing to repeat are syntax errors, as in JavaScript;
- `(?<name>…)` and `\\k<name>` are named groups; a backreference to a group that has
  not matched matches the empty text;
- text is compared as UTF-16 code units, so `.` is half of an emoji, as in JavaScript.

What has no exact Python equivalent (a lookbehind of variable length, a backreference
inside its own group) is refused with a one-line reason rather than run differently.
"""

from __future__ import annotations

import re
from array import array
from functools import lru_cache

# ECMAScript WhiteSpace and LineTerminator: what `\s` matches and `trim()` removes.
WHITE_SPACE_CHARS = ("\t\n\x0b\x0c\r \xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B)))
                     + "\u2028\u2029\u202f\u205f\u3000\ufeff")
_WS_CLASS = "\\t\\n\\x0b\\x0c\\r \\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"
_DIGIT, _WORD = "0-9", "A-Za-z0-9_"
_LINE_TERMINATORS = "\\n\\r\\u2028\\u2029"
_QUANTIFIER = re.compile(r"\{(\d+)(,(\d*))?\}")
_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")


class JsRegexError(ValueError):
    """A pattern JavaScript rejects, or one Spread cannot translate exactly."""


def code_units(text: str) -> str:
    """The text as JavaScript sees it: one character per UTF-16 code unit."""
    if all(ord(c) < 0x10000 for c in text):
        return text
    return "".join(map(chr, array("H", text.encode("utf-16-le", "surrogatepass"))))


@lru_cache(maxsize=512)
def compile(pattern: str) -> re.Pattern:
    """The Python pattern equivalent to `new RegExp(pattern)`, or a JsRegexError."""
    python = _Translator(code_units(pattern)).translate()
    try:
        return re.compile(python, re.ASCII)
    except re.error as e:
        raise JsRegexError(f"valid in JavaScript but not translatable exactly ({e})") from None


def search(pattern: str, text: str) -> bool:
    """`new RegExp(pattern).test(text)`."""
    return compile(pattern).search(code_units(text)) is not None


def _char(c: str) -> str:
    """One code unit, escaped so that Python reads it as itself in or out of a class."""
    return f"\\u{ord(c):04x}"


class _Translator:
    def __init__(self, pattern: str):
        self.p, self.i, self.out = pattern, 0, []
        self.groups, self.names = self._scan_groups()
        self.open: list[int | None] = []  # capturing group numbers (None: other groups) still open
        self.opened = 0  # capturing groups met so far, in the order of their "("

    # --- a first pass: how many capturing groups, and their names ---------------------
    def _scan_groups(self) -> tuple[int, dict[str, int]]:
        p, i, count, names, in_class = self.p, 0, 0, {}, False
        while i < len(p):
            c = p[i]
            if c == "\\":
                i += 2
                continue
            if in_class:
                in_class = c != "]"
            elif c == "[":
                in_class = p[i + 1:i + 2] != "]"  # `[]` is a whole (empty) class
                i += not in_class
            elif c == "(":
                if not p.startswith("?", i + 1):
                    count += 1
                elif p.startswith("?<", i + 1) and p[i + 3:i + 4] not in ("=", "!"):
                    count += 1
                    match = _NAME.match(p, i + 3)
                    if not match or not p.startswith(">", match.end()):
                        raise JsRegexError("invalid capture group name")
                    if match.group() in names:
                        raise JsRegexError(f"duplicate capture group name {match.group()!r}")
                    names[match.group()] = count
            i += 1
        return count, names

    def _error(self, message: str):
        raise JsRegexError(message)

    def translate(self) -> str:
        self._alternatives()
        if self.i < len(self.p):
            self._error("unmatched ')'")
        return "".join(self.out)

    # --- the grammar: alternatives of terms; each term an atom with a quantifier ------
    def _alternatives(self) -> None:
        while True:
            can_repeat = False  # nothing to repeat at the start of an alternative
            while self.i < len(self.p) and self.p[self.i] not in "|)":
                if self._quantifier(can_repeat):
                    can_repeat = False
                    continue
                can_repeat = self._atom()
            if self.i < len(self.p) and self.p[self.i] == "|":
                self.out.append("|")
                self.i += 1
                continue
            return

    def _quantifier(self, can_repeat: bool) -> bool:
        p, i = self.p, self.i
        c = p[i]
        braced = _QUANTIFIER.match(p, i) if c == "{" else None
        if c not in "*+?" and not braced:
            return False
        if not can_repeat:
            self._error("nothing to repeat")
        if braced:
            low, high = int(braced.group(1)), braced.group(3)
            if high not in (None, "") and int(high) < low:
                self._error("numbers out of order in {} quantifier")
            self.out.append(braced.group())
            self.i = braced.end()
        else:
            self.out.append(c)
            self.i += 1
        if self.p.startswith("?", self.i):
            self.out.append("?")
            self.i += 1
        return True

    def _atom(self) -> bool:
        """Translate one atom; whether a quantifier may follow it."""
        c = self.p[self.i]
        self.i += 1
        if c == "\\":
            return self._escape()
        if c == "(":
            return self._group()
        if c == "[":
            self._class()
            return True
        if c == ".":
            self.out.append(f"[^{_LINE_TERMINATORS}]")
            return True
        if c == "^":
            self.out.append("^")
            return False
        if c == "$":
            self.out.append("\\Z")
            return False
        if c in "*+?":
            self._error("nothing to repeat")
        self.out.append(_char(c))  # `]`, `}` and a `{` that is no quantifier are literal
        return True

    def _group(self) -> bool:
        p = self.p
        repeatable = True
        if p.startswith("?", self.i):
            rest = p[self.i + 1:self.i + 3]
            if rest[:1] in (":", "=", "!"):
                self.out.append("(?" + rest[:1])  # Annex B lets a lookahead be quantified too
                self.i += 2
                self.open.append(None)
            elif rest in ("<=", "<!"):
                self.out.append("(?" + rest)
                self.i += 3
                self.open.append(None)
                repeatable = False
            elif rest[:1] == "<":
                match = _NAME.match(p, self.i + 2)
                self.opened += 1
                self.out.append(f"(?P<g{self.opened}>")  # JavaScript names need not be Python names
                self.i = match.end() + 1
                self.open.append(self.opened)
            else:
                self._error("invalid group")
        else:
            self.opened += 1
            self.out.append("(")
            self.open.append(self.opened)
        self._alternatives()
        if not p.startswith(")", self.i):
            self._error("unterminated group")
        self.i += 1
        self.out.append(")")
        self.open.pop()
        return repeatable

    def _backreference(self, number: int) -> None:
        if number in self.open:
            self._error("a backreference inside its own group is not translatable exactly")
        # In JavaScript a group that has not matched (or not yet) matches the empty text.
        if number > 99:
            self._error("more than 99 groups are not translatable exactly")
        self.out.append(f"(?({number})(?:\\{number})|)")

    def _escape(self) -> bool:
        p = self.p
        if self.i >= len(p):
            self._error("\\ at end of pattern")
        c = p[self.i]
        self.i += 1
        classes = {"d": f"[{_DIGIT}]", "D": f"[^{_DIGIT}]", "w": f"[{_WORD}]", "W": f"[^{_WORD}]",
                   "s": f"[{_WS_CLASS}]", "S": f"[^{_WS_CLASS}]"}
        if c in classes:
            self.out.append(classes[c])
            return True
        if c in "bB":
            self.out.append("\\" + c)  # ASCII word characters: compiled with re.ASCII
            return False
        if c.isdigit() and c != "0":
            digits = re.match(r"\d+", p[self.i - 1:]).group()
            if int(digits) <= self.groups:
                self.i += len(digits) - 1
                self._backreference(int(digits))
                return True
            self.i -= 1
            self.out.append(_char(self._legacy_octal()))
            return True
        if c == "k" and self.names:
            match = re.match(r"<([^>]*)>", p[self.i:])
            if not match or match.group(1) not in self.names:
                self._error("invalid named reference")
            self.i += match.end()
            self._backreference(self.names[match.group(1)])
            return True
        self.i -= 1
        self.out.append(_char(self._character_escape(in_class=False)))
        return True

    def _legacy_octal(self) -> str:
        """Annex B: `\\0`, `\\12`, `\\377` are octal escapes; `\\8` and `\\9` are the digits."""
        p = self.p
        if p[self.i] in "89":
            self.i += 1
            return p[self.i - 1]
        digits = re.match(r"[0-7]{1,3}", p[self.i:]).group()
        if len(digits) == 3 and int(digits, 8) > 0o377:
            digits = digits[:2]
        self.i += len(digits)
        return chr(int(digits, 8))

    def _character_escape(self, *, in_class: bool) -> str:
        """The character an escape stands for (self.i at the character after the backslash)."""
        p = self.p
        c = p[self.i]
        self.i += 1
        simple = {"f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\x0b"}
        if c in simple:
            return simple[c]
        if c == "0" or (in_class and c.isdigit()):
            self.i -= 1
            return self._legacy_octal()
        if c == "c":
            letter = p[self.i:self.i + 1]
            if letter.isascii() and (letter.isalpha() or (in_class and (letter.isdigit() or letter == "_"))):
                self.i += 1
                return chr(ord(letter) % 32)
            self.i -= 1  # Annex B: `\c` that starts no control escape is a backslash
            return "\\"
        if c == "x" and re.fullmatch(r"[0-9A-Fa-f]{2}", p[self.i:self.i + 2]):
            self.i += 2
            return chr(int(p[self.i - 2:self.i], 16))
        if c == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", p[self.i:self.i + 4]):
            self.i += 4
            return chr(int(p[self.i - 4:self.i], 16))
        if c == "k" and self.names:
            self._error("invalid escape \\k")
        return c  # an identity escape: the character itself (`\Z` is "Z")

    def _class(self) -> None:
        p = self.p
        negated = p.startswith("^", self.i)
        self.i += negated
        items: list[str] = []  # Python class items
        not_space = False
        while True:
            if self.i >= len(p):
                self._error("unterminated character class")
            if p[self.i] == "]":
                self.i += 1
                break
            low, low_set = self._class_atom()
            if (p.startswith("-", self.i) and self.i + 1 < len(p) and p[self.i + 1] != "]"):
                self.i += 1
                high, high_set = self._class_atom()
                if low_set or high_set:  # Annex B: `[\d-z]` is digits, "-" and "z"
                    for item in (low_set or _char(low), "\\-", high_set or _char(high)):
                        not_space |= item == "NOT_SPACE"
                        items.append(item)
                    continue
                if ord(low) > ord(high):
                    self._error("range out of order in character class")
                items.append(f"{_char(low)}-{_char(high)}")
                continue
            not_space |= low_set == "NOT_SPACE"
            items.append(low_set or _char(low))
        items = [item for item in items if item != "NOT_SPACE"]
        body = "".join(items)
        if not not_space:
            if not body:
                self.out.append("[^\\s\\S]" if not negated else "[\\s\\S]")  # `[]` never matches, `[^]` always
            else:
                self.out.append(f"[{'^' if negated else ''}{body}]")
        elif negated:  # neither the items nor non-space: a space that is not an item
            self.out.append(f"(?:(?![{body}])[{_WS_CLASS}])" if body else f"[{_WS_CLASS}]")
        else:
            self.out.append(f"(?:[{body}]|[^{_WS_CLASS}])" if body else f"[^{_WS_CLASS}]")

    def _class_atom(self) -> tuple[str, str]:
        """(a character, "") or ("", a Python class item for \\d \\w \\s and their negations)."""
        p = self.p
        c = p[self.i]
        self.i += 1
        if c != "\\":
            return c, ""
        if self.i >= len(p):
            self._error("\\ at end of pattern")
        e = p[self.i]
        sets = {"d": _DIGIT, "D": "\\D", "w": _WORD, "W": "\\W", "s": _WS_CLASS, "S": "NOT_SPACE"}
        if e in sets:
            self.i += 1
            return "", sets[e]
        if e == "b":
            self.i += 1
            return "\b", ""
        if e == "-":
            self.i += 1
            return "-", ""
        return self._character_escape(in_class=True), ""
