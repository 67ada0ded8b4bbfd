"""What never reaches the database from a trace: credentials in attributes are dropped,
key-like strings in content are redacted, and (with `redact_pii`) e-mail addresses and
phone numbers are masked. Every redaction is counted, never the value.

The rules (docs/traces.md lists them for users):
- an attribute whose name says it holds a credential (authorization, api key, token,
  secret, password, cookie, credential, session key, signature) is dropped whole;
  token *counts* (`gen_ai.usage.*`, `llm.token_count.*`, `…_tokens`) are not credentials;
- in any text kept: OpenAI/Anthropic-style keys (`sk-…`), `Bearer …` tokens, AWS access
  key ids (`AKIA…`/`ASIA…`), Google API keys (`AIza…`), GitHub tokens (`ghp_…`, `github_pat_…`),
  Slack tokens (`xox?-…`), JSON Web Tokens, PEM private keys, and a URL's password
  (`user:***@host`) become `[REDACTED]`;
- with `redact_pii`: e-mail addresses become `[EMAIL]`, phone numbers (7 to 15 digits,
  optionally +country code, spaces, dots, dashes or brackets between; not a date, nor
  digits inside an id, a version or a path) `[PHONE]`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

REDACTED = "[REDACTED]"

# Names of attributes that hold credentials, matched on the whole dotted name.
_CREDENTIAL_NAME = re.compile(
    r"(authorization|auth[._-]?header|api[._-]?key|apikey|access[._-]?key|secret|passw(or)?d|passwd|cookie|"
    r"credential|private[._-]?key|session[._-]?key|signature|(^|[._-])token($|[._-]))", re.IGNORECASE)
# ...except token counts, which share the word.
_TOKEN_COUNT_NAME = re.compile(r"(usage|token_count|_tokens?$|tokens?\.(count|total)|llm\.is_streaming)",
                               re.IGNORECASE)

_KEYS = re.compile("|".join([
    r"\bsk-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_\-]{16,}",
    r"\b[Bb]earer\s+[A-Za-z0-9\-._~+/]{8,}=*",
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    r"\bAIza[0-9A-Za-z_\-]{35}\b",
    r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,}\b",
    r"\bgithub_pat_[A-Za-z0-9_]{40,}\b",
    r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b",
    r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
]))
_URL_PASSWORD = re.compile(r"([a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@]*):[^\s@/]+@")
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b")
# Not inside ids, versions, dates or paths: no letter, digit, -, ., / or : right before or after.
_PHONE = re.compile(r"(?<![\w+\-./:])(?:\+\d{1,3}[\s.\-]?)?(?:\(\d{1,4}\)[\s.\-]?)?\d{2,4}(?:[\s.\-]?\d{2,4}){1,4}(?![\w\-/:]|\.\d)")


@functools.lru_cache(maxsize=4096)  # attribute names repeat on every span
def is_credential_name(name: str) -> bool:
    return bool(_CREDENTIAL_NAME.search(name)) and not _TOKEN_COUNT_NAME.search(name)


@dataclass
class Redactor:
    """Redacts texts and counts what it did, per kind (never the values)."""
    redact_pii: bool = False
    counts: dict[str, int] = field(default_factory=dict)

    def _count(self, kind: str, n: int) -> None:
        if n:
            self.counts[kind] = self.counts.get(kind, 0) + n

    def text(self, value: str) -> str:
        if not value or len(value) < 7:  # shorter than any key, e-mail address or phone number
            return value
        value, n = _KEYS.subn(REDACTED, value)
        self._count("keys", n)
        if "@" in value:
            value, n = _URL_PASSWORD.subn(r"\1:***@", value)
            self._count("url passwords", n)
        if self.redact_pii:
            value, n = _EMAIL.subn("[EMAIL]", value)
            self._count("e-mail addresses", n)
            phones = [0]

            def mask(match: re.Match) -> str:
                if not _is_phone(match[0]):
                    return match[0]
                phones[0] += 1
                return "[PHONE]"

            value = _PHONE.sub(mask, value)
            self._count("phone numbers", phones[0])
        return value

    def value(self, value):
        """Any JSON-like value, every string in it redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        return value

    def attributes(self, attributes: dict) -> dict:
        """Attributes without credentials (counted), the rest redacted."""
        kept = {}
        for name, value in attributes.items():
            if is_credential_name(name):
                self._count("credential attributes", 1)
                continue
            kept[name] = self.value(value)
        return kept


def _is_phone(text: str) -> bool:
    digits = sum(c.isdigit() for c in text)
    return 7 <= digits <= 15 and not _DATE.match(text)


_DATE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}")
