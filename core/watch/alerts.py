"""Webhook alerts: one POST per change of a monitor's state (ok → alerting → ok).

The body is a generic JSON payload (monitor, state, verdict, signals with their figures,
a link to the run) that also carries a Slack-compatible `text`, so one URL format serves
Slack's incoming webhooks, Mattermost, Teams' workflows and a team's own receiver.

A delivery that fails for a reason that can recover (a connection refused or reset, a
timeout, 429, a 5xx) is retried with exponential backoff; a 4xx other than 429 is not
(the receiver refused the message: the same message will not do better). Every delivery,
delivered or failed, is recorded (core/store/monitors.py) so that a failure shows in
`spread watch show` and on the Monitors page.

No secret goes into a payload: figures, names and verdicts only — never a key, a
database URL, an endpoint's server address, or the webhook URL itself. A webhook URL
often holds a token in its path (Slack's does): give it as `env:NAME`, the variable (in
the environment or .streamlit/secrets.toml) that holds it, and only the name is stored,
as an endpoint stores the name of its key; a URL given as such is stored to be called
and shown anywhere only as its host.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from core import config
from core.config import SpreadError

ATTEMPTS = 4
TIMEOUT_S = 5.0
BACKOFF_ENV = "SPREAD_WEBHOOK_BACKOFF_S"  # the first retry's wait; doubled after each
DEFAULT_BACKOFF_S = 1.0
PUBLIC_URL_ENV = "SPREAD_PUBLIC_URL"  # where the app is served, for links in alerts


ENV_PREFIX = "env:"


def check_url(url: str) -> str:
    """A webhook URL (only http and https) or `env:NAME` as given, or a one-line SpreadError."""
    url = (url or "").strip()
    if url.startswith(ENV_PREFIX):
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", url[len(ENV_PREFIX):]):
            raise SpreadError(f"{url!r} does not name a variable: give env:NAME, e.g. env:SLACK_WEBHOOK_URL")
        return url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SpreadError(f"the webhook URL {shown(url)!r} is not an http(s) URL with a host")
    if parts.password:
        raise SpreadError(f"the webhook URL for {parts.hostname} holds a password: give a URL without one")
    return url.strip()


def resolve(url: str) -> str:
    """The URL to call: `env:NAME` read now (never stored), checked as a URL."""
    if not url.startswith(ENV_PREFIX):
        return url
    value = config.key(url[len(ENV_PREFIX):])
    if not value:
        raise SpreadError(f"{url[len(ENV_PREFIX):]} is not set (in the environment or the secrets file)")
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SpreadError(f"{url[len(ENV_PREFIX):]} does not hold an http(s) URL")
    return value.strip()


def shown(url: str) -> str:
    """A webhook URL as a page or a log may show it: `env:NAME` as it is, a URL as its
    scheme and host, nothing after."""
    if (url or "").startswith(ENV_PREFIX):
        return url
    parts = urlsplit(url or "")
    if not parts.hostname:
        return (url or "")[:12] + ("…" if len(url or "") > 12 else "")
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}/…"


def link(run_id: int | None, regress_id: int | None) -> str | None:
    """The check's run on the Regression page, when the app's address is known."""
    base = os.environ.get(PUBLIC_URL_ENV, "").strip().rstrip("/")
    if not base or run_id is None:
        return None
    return f"{base}/regress?run={run_id}"


def payload(monitor: dict, check: dict, previous_state: str) -> dict:
    """What a webhook receives about one change of state."""
    alerting = [s for s in check["signals"] if s.get("alerting")]
    headline = (f"Spread monitor {monitor['name']}: {previous_state} → {check['state']}"
                f" ({monitor['set_name']} on {monitor['model']})")
    if check["state"] == "alerting":
        reasons = "; ".join(s["summary"] for s in alerting) or "see the check"
        text = f"{':rotating_light:'} {headline}: {reasons}"
    else:
        text = f":white_check_mark: {headline}: no signal is alerting any more"
    url = link(check.get("run_id"), check.get("regress_id"))
    if url:
        text += f" <{url}|open the run>"
    return {
        "monitor": monitor["name"], "state": check["state"], "previous_state": previous_state,
        "verdict": check.get("verdict"), "set": monitor["set_name"], "model": monitor["model"],
        "check_id": check["id"], "regress_id": check.get("regress_id"), "run_id": check.get("run_id"),
        "baseline_id": monitor.get("baseline_id"), "due_at": check.get("due_at"),
        "pass_rate": check.get("pass_rate"), "pass_rate_low": check.get("pass_rate_low"),
        "pass_rate_high": check.get("pass_rate_high"),
        "signals": check["signals"], "link": url, "text": text,
    }


def backoff_s() -> float:
    try:
        return max(0.0, float(os.environ.get(BACKOFF_ENV, DEFAULT_BACKOFF_S)))
    except ValueError:
        return DEFAULT_BACKOFF_S


def deliver(url: str, body: dict, *, attempts: int = ATTEMPTS, sleep=time.sleep) -> dict:
    """POST the body, retrying what can recover. Returns {"status": "delivered"|"failed",
    "attempts", "http_status", "error"}; the error names the host, never the URL."""
    data = json.dumps(body, default=str).encode()
    try:
        target = resolve(url)
    except SpreadError as error:
        return {"status": "failed", "attempts": 0, "http_status": None, "error": str(error)}
    wait, last_status, last_error = backoff_s(), None, None
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(target, data=data, method="POST",
                                         headers={"Content-Type": "application/json", "User-Agent": "spread-watch"})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                return {"status": "delivered", "attempts": attempt, "http_status": response.status, "error": None}
        except urllib.error.HTTPError as error:
            last_status, last_error = error.code, f"HTTP {error.code} from {shown(target)}"
            if error.code < 500 and error.code != 429:
                break
        except (urllib.error.URLError, OSError, TimeoutError) as error:
            reason = getattr(error, "reason", error)
            last_status, last_error = None, f"{type(reason).__name__} reaching {shown(target)}"
        if attempt < attempts:
            sleep(wait)
            wait *= 2
    return {"status": "failed", "attempts": attempt, "http_status": last_status, "error": last_error}
