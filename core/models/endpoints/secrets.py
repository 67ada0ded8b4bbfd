"""Keys never written down: which parameter names hold credentials, where a URL carries
one, the variables an endpoint reads its credentials from, and every key in use (to
scrub from error text)."""

from __future__ import annotations

import re

from core import config
from core.models import catalogue, llm
from core.models.endpoints.endpoint import REFERENCE, Endpoint

# Parameter names that hold credentials: their value must be a reference (os.environ/NAME),
# because parameters are stored in the shared database. Spread's own patterns, and every
# name litellm itself masks as sensitive (`is_secret_name`).
SECRET_NAME = re.compile(r"api[_-]?key|secret|passw|authoriz|credential|access[_-]?token|bearer", re.IGNORECASE)
# Names that point at a credential by its name, not hold one; and a tokenizer's special
# tokens (Hugging Face prompt templates: bos_token, eos_token, …), text that is no secret.
NOT_SECRET = {"litellm_credential_name", "credential_name", "aws_profile_name", "aws_role_name", "aws_session_name",
              "access_groups", "bos_token", "eos_token", "pad_token", "unk_token", "sep_token", "cls_token",
              "mask_token"}
# Query parameters that carry a credential in a URL (Azure's api-key, a storage signature,
# an Azure Functions code, …), besides every name `is_secret_name` knows.
KEY_LIKE_QUERY = re.compile(r"^(api[-_]?key|key|code|sig|signature|token|auth|pass|pwd|subscription[-_]?key)$",
                            re.IGNORECASE)
# Parameters that tell the provider where its credentials are: an entry that sets one needs
# no provider default variable (AWS_ACCESS_KEY_ID, …), only the variables it names.
CREDENTIAL_SOURCES = {"aws_profile_name", "aws_role_name", "aws_web_identity_token", "aws_access_key_id",
                      "vertex_credentials", "azure_ad_token", "azure_username", "client_secret", "tenant_id"}


def written_secrets(name: str, value) -> list[str]:
    """The names, at any depth, of credentials written out as values rather than read
    from a variable (never the values themselves)."""
    if isinstance(value, dict):
        inner = [n for key, v in value.items() for n in written_secrets(str(key), v)]
        if is_secret_name(name) and _holds_a_value(value):
            return [name]  # a credential written as an object (vertex_credentials: {private_key: …})
        return inner
    if isinstance(value, list):
        return list(dict.fromkeys(n for item in value for n in written_secrets(name, item)))
    literal = isinstance(value, (str, int, float)) and not isinstance(value, bool)
    if literal and is_secret_name(name) and not (isinstance(value, str) and value.startswith(REFERENCE)):
        return [name]
    return []


def url_credentials(url: str) -> list[str]:
    """Where a URL carries a credential, by place and never by value: its user info
    (`https://user:PASS@host`) and key-like query parameters (`?api-key=…`, `key=`, `token=`, `sig=`)."""
    from urllib.parse import parse_qsl

    rest = url.split("#", 1)[0]
    head, _, query = rest.partition("?")
    authority = head.split("://", 1)[1] if "://" in head else head
    found = ["user info"] if "@" in authority.split("/", 1)[0] else []
    for name, _ in parse_qsl(query, keep_blank_values=True):
        if KEY_LIKE_QUERY.match(name) or is_secret_name(name):
            found.append(f"query parameter {name}")
    return list(dict.fromkeys(found))


def _holds_a_value(value) -> bool:
    """Whether anything in it is written out (not a reference, a flag or empty)."""
    if isinstance(value, dict):
        return any(_holds_a_value(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_a_value(v) for v in value)
    return not (value is None or isinstance(value, bool) or str(value).startswith(REFERENCE))


def is_secret_name(name: str) -> bool:
    """A parameter name that holds a credential: Spread's patterns or litellm's own list
    of sensitive names (api_key, azure_ad_token, aws_secret_access_key, vertex_credentials, …)."""
    if not name or name in NOT_SECRET:
        return False
    return bool(SECRET_NAME.search(name)) or _litellm_masker().is_sensitive_key(name)


_masker = None


def _litellm_masker():
    global _masker
    if _masker is None:
        llm.get()
        from litellm.litellm_core_utils.sensitive_data_masker import SensitiveDataMasker

        _masker = SensitiveDataMasker()
    return _masker


def credential_variables(endpoint: Endpoint) -> list[str]:
    """The variables an endpoint names for its credentials: its key variable and every
    credential parameter it reads from a variable (aws_secret_access_key: os.environ/…)."""
    named = [endpoint.key_env] if endpoint.key_env else []
    for name, value in (endpoint.params or {}).items():
        if isinstance(value, str) and value.startswith(REFERENCE) and (is_secret_name(name) or
                                                                       name in CREDENTIAL_SOURCES):
            named.append(value[len(REFERENCE):])
    return list(dict.fromkeys(named))


def referenced_variables(value) -> list[str]:
    """Variable names a parameter reads (os.environ/NAME), at any depth."""
    if isinstance(value, dict):
        return [n for v in value.values() for n in referenced_variables(v)]
    if isinstance(value, list):
        return [n for v in value for n in referenced_variables(v)]
    if isinstance(value, str) and value.startswith(REFERENCE):
        return [value[len(REFERENCE):]]
    return []


def resolve_references(value):
    if isinstance(value, dict):
        return {k: resolve_references(v) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_references(v) for v in value]
    if isinstance(value, str) and value.startswith(REFERENCE):
        return config.key(value[len(REFERENCE):]) or ""
    return value


def secret_values(calls) -> list[str]:
    """Every key in use (the environment's and the endpoints' own), to scrub from error text."""
    config.load_secrets_into_env()
    return catalogue.secret_values() + [s for call in calls for s in call.secrets()]
