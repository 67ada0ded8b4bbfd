"""The app container's entry point: write Streamlit's secrets file, then become the server.

Secrets reach the container without a bind mount of a file that may not exist (Docker
would create a directory in its place and the app would crash-loop on it):
- a `secrets.toml` in the optional folder mounted at SPREAD_SECRETS_DIR (compose mounts
  ./secrets; an empty or missing folder is fine) is used as it is;
- otherwise the login ([auth]) is built from SPREAD_AUTH_* variables of the environment
  (compose reads them from .env). Provider keys need no file: Spread reads them from the
  environment (OPENAI_API_KEY, …).
The file is written to SPREAD_SECRETS (a path in the app user's home, mode 0600), where
both Streamlit (`st.login`) and Spread read it. Without either source it is not written,
and the app refuses to serve a non-loopback address without login unless
SPREAD_ALLOW_NO_LOGIN=1 (core/config.py `unprotected`).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

# [auth] key -> the variable that gives it.
AUTH_KEYS = {
    "redirect_uri": "SPREAD_AUTH_REDIRECT_URI",
    "cookie_secret": "SPREAD_AUTH_COOKIE_SECRET",
    "client_id": "SPREAD_AUTH_CLIENT_ID",
    "client_secret": "SPREAD_AUTH_CLIENT_SECRET",
    "server_metadata_url": "SPREAD_AUTH_SERVER_METADATA_URL",
}


def secrets_toml(environ: dict, mounted: Path) -> str | None:
    """The secrets file's text, from the mounted folder or the environment; None: no secrets."""
    given = mounted / "secrets.toml"
    if given.is_file():
        try:
            return given.read_text(encoding="utf-8")
        except OSError as e:  # as with no secrets: the app serves no page without login, and says so
            print(f"spread: cannot read {given}: {e.strerror} (the app runs as uid {os.getuid()}: make the "
                  "file readable to it)", file=sys.stderr)
            return None
    auth = {key: environ[name] for key, name in AUTH_KEYS.items() if environ.get(name)}
    if not auth:
        return None
    missing = [name for key, name in AUTH_KEYS.items() if key not in auth]
    if missing:  # no [auth] at all: the app then refuses to serve its pages and says why
        print(f"spread: login is half configured, so it is off: set {', '.join(missing)} too", file=sys.stderr)
        return None
    # A JSON string is a TOML basic string: quotes, backslashes and control characters escaped.
    return "[auth]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in auth.items())


def write_secrets(environ: dict) -> Path | None:
    text = secrets_toml(environ, Path(environ.get("SPREAD_SECRETS_DIR", "/run/spread-secrets")))
    target = Path(environ.get("SPREAD_SECRETS") or Path.home() / ".streamlit" / "secrets.toml")
    if text is None:  # a restarted container keeps its files: none from an earlier start stays
        target.unlink(missing_ok=True)
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as f:
        f.write(text)
    return target


def main(argv: list[str]) -> None:
    write_secrets(dict(os.environ))
    os.execvp(argv[0], argv)  # the server takes this process's place (PID 1): Docker's SIGTERM reaches it


if __name__ == "__main__":
    main(sys.argv[1:])
