"""Where Spread keeps things, read from the environment with sensible defaults.

SPREAD_DB        the SQLite file (default: data/spread.db in the project folder), or a
                 team's PostgreSQL as postgresql://USER@HOST:PORT/DB
SPREAD_SETTINGS  a TOML file with price overrides (default: data/settings.toml)
SPREAD_SECRETS   a TOML file with provider keys (default: .streamlit/secrets.toml)
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SpreadError(Exception):
    """A problem the user can fix; its message is one line meant for them.

    `field` names the input at fault (prompt, models, temperatures, n, ...), so a
    form can show the message next to that control.
    """

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def check_text(text: str, what: str, field: str | None = None) -> None:
    """Refuse text SQLite or a provider cannot take: NUL characters, or bytes that were not
    UTF-8 (Python keeps those from the command line as lone surrogates)."""
    if "\x00" in text:
        raise SpreadError(f"{what} contains a NUL character", field)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise SpreadError(f"{what} is not valid UTF-8 text", field) from None


def read_yaml(path: str | Path, field: str | None = None):
    """A YAML (or JSON) file's data, or a one-line SpreadError saying why it cannot be read."""
    import yaml

    path = Path(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise SpreadError(f"cannot read {path}: {e.strerror or e}", field) from None
    except UnicodeDecodeError:
        raise SpreadError(f"{path} is not UTF-8 text", field) from None
    except yaml.YAMLError as e:
        raise SpreadError(f"{path} is not valid YAML: {' '.join(str(e).split())}", field) from None


def db_path() -> Path | str:
    """The SQLite file (a Path) or, for a team's shared store, a `postgresql://` URL (a str:
    a URL is never taken as a file path)."""
    value = os.environ.get("SPREAD_DB")
    if is_url(value):
        return value
    return Path(value or PROJECT_ROOT / "data" / "spread.db")


def is_url(target) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def db_exists(target) -> bool:
    """Whether the store is there to read (a URL's database is a server's: assumed so)."""
    return is_url(target) or Path(target).exists()


def absolute(target) -> str:
    """The store as another process (a worker) must name it."""
    return target if is_url(target) else str(Path(target).resolve())


def described(target) -> str:
    """A database as a page names it: a URL as its database and server, never its user or
    password (and never as a link)."""
    if not is_url(target):
        return str(target)
    from urllib.parse import urlsplit

    url = urlsplit(target)
    return f"PostgreSQL database {url.path.lstrip('/') or '(default)'} on {url.hostname}:{url.port or 5432}"


def shown(target) -> str:
    """A database as it may be shown: a URL without its password."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", str(target))


def settings_path() -> Path:
    return Path(os.environ.get("SPREAD_SETTINGS") or PROJECT_ROOT / "data" / "settings.toml")


def secrets_path() -> Path:
    return Path(os.environ.get("SPREAD_SECRETS") or PROJECT_ROOT / ".streamlit" / "secrets.toml")


def _read_toml(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise SpreadError(f"{path} is not valid TOML: {e}") from None


def settings() -> dict:
    """The settings file, for example:

    [prices."openai/my-finetune"]
    input_per_mtok = 0.30     # USD per million prompt tokens
    output_per_mtok = 1.20    # USD per million completion tokens
    """
    return _read_toml(settings_path())


def load_secrets_into_env() -> list[str]:
    """Copy top-level string keys of the secrets file (OPENAI_API_KEY = "...") into the
    process environment, without overriding what is already set. Returns the names set.

    Keys stay in memory only: nothing in Spread writes them anywhere.
    """
    loaded = []
    for name, value in _read_toml(secrets_path()).items():
        if isinstance(value, str) and name.isupper() and name not in os.environ:
            os.environ[name] = value
            loaded.append(name)
    return loaded


def key(name: str) -> str | None:
    """The value of a key variable: the environment first, then the secrets file.

    Endpoints name the variable that holds their key (`key_env`); the value is read here,
    when a call is made, and lives only in this process's memory.
    """
    value = os.environ.get(name)
    if value:
        return value
    value = _read_toml(secrets_path()).get(name)
    return value if isinstance(value, str) and value else None
