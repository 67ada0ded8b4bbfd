"""Where Spread keeps things, read from the environment with sensible defaults.

SPREAD_DB        the SQLite file (default: data/spread.db in the project folder), or a
                 team's PostgreSQL as postgresql://USER:PASSWORD@HOST:PORT/DB (any other
                 scheme is refused, never taken as a file name: `database`)
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
    a URL is never taken as a file path). A misspelt URL is refused (`database`)."""
    value = os.environ.get("SPREAD_DB")
    return database(value, "SPREAD_DB") if value else PROJECT_ROOT / "data" / "spread.db"


class InvalidDatabase(SpreadError):
    """A database value that is neither a PostgreSQL URL nor a file path; its message never
    quotes the value's user information. `reason` is what is wrong, without naming the value."""

    def __init__(self, what: str, reason: str | None = None):
        super().__init__(f"{what} is not a valid database URL: {reason}" if reason is not None else what)
        self.reason = reason if reason is not None else what


POSTGRES_SCHEMES = ("postgresql", "postgres")
ACCEPTED_FORMS = ("use postgresql://USER:PASSWORD@HOST:PORT/DB (or postgres://…), "
                  "or a SQLite file path without a scheme")
# A URL scheme of two characters or more (one letter is a Windows drive: a path).
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):(.*)", re.S)
_CONNINFO = re.compile(r"\s*(host|hostaddr|port|dbname|user|password|sslmode|service)\s*=", re.I)


def database(value: str | Path, what: str = "the database") -> Path | str:
    """The store `value` names, read one strict way: a value with a scheme is a URL, and
    the only URLs accepted are `postgresql://` and `postgres://` (any case; returned with
    the scheme in lower case, as libpq reads it); any other scheme, or a near miss
    (`postgresql:/…`, `postgresql:…`, `postgresq://…`), is refused with one line, before
    anything is created. A value without a scheme (or a Path) is a SQLite file path."""
    if isinstance(value, Path):
        return value
    value = str(value)
    if _CONNINFO.match(value):  # libpq's key=value form: a file by that name would hold its password
        raise InvalidDatabase(what, f"a key=value connection string is not accepted; {ACCEPTED_FORMS}")
    found = _SCHEME.fullmatch(value)
    if not found or not _looks_like_url(*found.groups()):
        return Path(value)
    scheme, rest = found.groups()
    if scheme.lower() not in POSTGRES_SCHEMES or not rest.startswith("//"):
        raise InvalidDatabase(what, f"{scheme}:{'/' * _slashes(rest)}… is not an accepted form; {ACCEPTED_FORMS}")
    url = scheme.lower() + ":" + rest
    problem = _url_problem(url)
    if problem:
        raise InvalidDatabase(what, f"{problem}; {ACCEPTED_FORMS}")
    return url


def _looks_like_url(scheme: str, rest: str) -> bool:
    """`NAME:/…` and `NAME://…` are URLs; so is anything that starts like PostgreSQL's
    scheme or carries user information (`postgresql:u:pw@host`): a near miss, not a file."""
    return rest.startswith("/") or scheme.lower().startswith(("postgres", "pg")) or "@" in rest


def _slashes(rest: str) -> int:
    return len(rest) - len(rest.lstrip("/")) if rest.startswith("/") else 0


def _url_problem(url: str) -> str | None:
    """What libpq would refuse in a URL while quoting it (and its password) back."""
    from urllib.parse import urlsplit

    try:
        urlsplit(url)
    except ValueError:
        return "its host has an unclosed [ (an IPv6 address is written [::1])"
    if re.search(r"%(?![0-9A-Fa-f]{2})", url):
        return "a % is not followed by two hex digits (write a % in a password as %25)"
    return None


def is_url(target) -> bool:
    """Whether `target` (as `database` returned it) is a PostgreSQL URL."""
    return isinstance(target, str) and target.lower().startswith(tuple(s + "://" for s in POSTGRES_SCHEMES))


def db_exists(target) -> bool:
    """Whether the store is there to read (a URL's database is a server's: assumed so)."""
    return is_url(target) or Path(target).exists()


def absolute(target) -> str:
    """The store as another process (a worker) must name it."""
    return target if is_url(target) else str(Path(target).resolve())


def server(url: str) -> str:
    """HOST:PORT of a PostgreSQL URL (what a page may say about it): never its user or password."""
    netloc = url.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
    hosts = netloc.rpartition("@")[2] or "localhost"
    return hosts if re.search(r"\]:\d+$|^[^\[]*:\d+$", hosts) else f"{hosts}:5432"


def user(url: str) -> str:
    """The user a PostgreSQL URL logs in as ("" when it names none)."""
    from urllib.parse import unquote

    netloc = url.split("://", 1)[1].split("/", 1)[0]
    userinfo = netloc.rpartition("@")[0]
    return unquote(userinfo.partition(":")[0])


def described(target) -> str:
    """A database as a page names it: a URL as its database and server, never its user or
    password (and never as a link)."""
    if not is_url(target):
        return str(target)
    path = target.split("://", 1)[1].partition("/")[2].split("?", 1)[0]
    return f"PostgreSQL database {path or '(default)'} on {server(target)}"


def shown(target) -> str:
    """A database as it may be shown: a URL without its password."""
    return scrub(str(target), str(target))


_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s/?#@:]*)(:[^\s/?#]*)?@")
_CONNINFO_SECRET = re.compile(r"(?i)\b((?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s&'\"]+)")


def scrub(text: str, url: str | None = None) -> str:
    """`text` (an error, a log line) without a database's secrets: a URL's password
    (`user:***@`), `password=` and `sslpassword=` parameters (conninfo or URL query), and,
    when the URL is known, its password wherever it is quoted (libpq quotes the token it
    could not parse: a raw `%` in a password), raw or decoded."""
    for secret in sorted(_secrets_of(url or ""), key=len, reverse=True):
        # Whole tokens only: a password "postgres" must not turn "postgresql://" into "***ql://".
        text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", "***", text)
    text = _USERINFO.sub(lambda m: f"{m[1]}:***@" if m[2] else m[0], text)
    return _CONNINFO_SECRET.sub(r"\1***", text)


def _secrets_of(url: str) -> set[str]:
    from urllib.parse import unquote

    secrets = set()
    if "://" in url:
        rest = url.split("://", 1)[1]
        for at in [k for k, c in enumerate(rest) if c == "@"]:  # a password may hold an @ itself
            userinfo = rest[:at]
            if ":" in userinfo:
                secrets.add(userinfo.partition(":")[2])
    for found in _CONNINFO_SECRET.finditer(url):
        secrets.add(found[2].strip("'"))
    secrets |= {unquote(s) for s in secrets}
    return {s for s in secrets if len(s) >= 2}


def allows_no_login() -> bool:
    """SPREAD_ALLOW_NO_LOGIN=1: the operator says the network the app is bound to is private."""
    return os.environ.get("SPREAD_ALLOW_NO_LOGIN", "").strip().lower() in ("1", "true", "yes")


def unprotected(address: str | None, login_on: bool) -> str | None:
    """Why the pages must not be served, or None: an app bound beyond loopback without login
    lets anyone who reaches it read every run and spend the server's provider keys, so it
    needs an [auth] section, or SPREAD_ALLOW_NO_LOGIN=1 for a private network."""
    if login_on or _is_loopback(address) or allows_no_login():
        return None
    return (f"Spread is served on {address or 'every network interface'} without login: add an [auth] "
            "section to the secrets (docs/deployment.md), or set SPREAD_ALLOW_NO_LOGIN=1 if only a "
            "private network can reach it.")


def _is_loopback(address: str | None) -> bool:
    import ipaddress

    if not address:  # Streamlit's default: every interface
        return False
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: whatever it resolves to, it was meant to be reached


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
