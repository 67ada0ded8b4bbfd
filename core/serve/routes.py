"""What `spread serve` offers: its routes, each a name callers put in `model`, and the policy
that decides what a route answers.

A route names one model or several (its samples are spread across them in turn), how many
answers it asks (k), the checks an acceptable answer passes, the confidence it needs, and
what it does below that: abstain, fall back to another route, or answer anyway, flagged.
Routes come from the command line (`--route NAME=MODEL[,MODEL…]`, the other options apply
to every route) or a YAML/JSON file, where each route may set its own policy:

    routes:
      qa:
        models: [gpt-4o-mini]
        k: 5
        min_confidence: calibrated:0.95
        on_low: fallback:strong
        checks: [{type: max-length, value: 400}]
      strong:
        models: [gpt-4o]
        k: 3
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace

from core.config import SpreadError, read_yaml

DEFAULT_K = 5
DEFAULT_MAX_K = 20
DEFAULT_PORT = 8700
# The first round's size under adaptive k: when its answers agree (3 of 3), the others
# would most likely agree too, and are not asked.
FIRST_ROUND = 3
ABSTAIN_MESSAGE = "I am not sure enough to answer this: the answers I got disagree."
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$")
ROUTE_KEYS = {"models", "k", "min_confidence", "on_low", "checks", "temperature", "max_tokens"}


@dataclass(frozen=True)
class Threshold:
    """The confidence a route needs: a fixed share (`0.6`), or `calibrated:P`, the lowest
    share at which reviewers' labels show precision ≥ P with 95% confidence (core/serve/
    calibration.py). `value` is the share in force once resolved; None: every answer goes."""

    value: float | None = None
    calibrated: float | None = None  # the precision P asked for

    @classmethod
    def parse(cls, text) -> "Threshold":
        if text is None or text == "":
            return cls()
        if isinstance(text, (int, float)) and not isinstance(text, bool):
            return cls(_share(float(text), "--min-confidence"))
        text = str(text).strip()
        if text.startswith("calibrated:"):
            return cls(calibrated=_share(_number(text[len("calibrated:"):], "calibrated:P"), "calibrated:P",
                                         open_low=True))
        return cls(_share(_number(text, "--min-confidence"), "--min-confidence"))

    def shown(self) -> str:
        if self.calibrated is not None:
            return f"calibrated:{self.calibrated:g}" + (f" (= {self.value:g})" if self.value is not None else "")
        return "none" if self.value is None else f"{self.value:g}"


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SpreadError(f"{what} must be a number in 0..1 or calibrated:P (got {text!r})", "min_confidence") from None
    return value


def _share(value: float, what: str, *, open_low: bool = False) -> float:
    if not math.isfinite(value) or not (0 < value <= 1 if open_low else 0 <= value <= 1):
        raise SpreadError(f"{what} must be in {'(0, 1]' if open_low else '0..1'} (got {value:g})", "min_confidence")
    return value


@dataclass(frozen=True)
class OnLow:
    """What a route does when its confidence is below the threshold."""

    action: str = "abstain"  # abstain | fallback | best
    route: str | None = None  # fallback's route

    @classmethod
    def parse(cls, text) -> "OnLow":
        text = (text or "abstain").strip()
        if text in ("abstain", "best"):
            return cls(text)
        if text.startswith("fallback:") and text[len("fallback:"):].strip():
            return cls("fallback", text[len("fallback:"):].strip())
        raise SpreadError(f"--on-low must be abstain, fallback:ROUTE or best (got {text!r})", "on_low")

    def shown(self) -> str:
        return f"fallback:{self.route}" if self.action == "fallback" else self.action


@dataclass(frozen=True)
class Route:
    name: str
    models: tuple[str, ...]
    k: int = DEFAULT_K
    threshold: Threshold = field(default_factory=Threshold)
    on_low: OnLow = field(default_factory=OnLow)
    checks: tuple = ()  # core.evaluate.checks.Check: an acceptable answer passes them all
    temperature: float = 1.0  # when the request sets none (OpenAI's own default)
    max_tokens: int | None = None  # when the request sets none

    def model_for(self, sample: int) -> str:
        """The model of the sample-th answer: the route's models in turn."""
        return self.models[sample % len(self.models)]


@dataclass
class Settings:
    """Everything `spread serve` was started with; nothing secret (the token stays in its variable)."""

    routes: dict[str, Route]
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    token_env: str | None = None
    adaptive: bool = True
    first_round: int = FIRST_ROUND
    max_k: int = DEFAULT_MAX_K
    abstain_status: int = 200  # 200: an ordinary completion saying it abstains; else that HTTP status
    abstain_message: str = ABSTAIN_MESSAGE
    method: str | None = None  # meaning method (core/analyse/embed.py); None: the default (MiniLM)
    api_base: str | None = None  # for routes' bare litellm ids, as `spread run --api-base`
    timeout_s: float = 60.0
    max_attempts: int = 2
    concurrency: int = 256  # upstream calls in flight at once, across requests

    def check(self) -> "Settings":
        """One-line SpreadError for settings that cannot serve."""
        if not self.routes:
            raise SpreadError("no route: give --route NAME=MODEL[,MODEL…] or a --config file with routes", "route")
        if not 1 <= self.max_k <= 100:
            raise SpreadError(f"--max-k must be in 1..100 (got {self.max_k})", "max_k")
        if not 1 <= self.first_round:
            raise SpreadError("--first-round must be at least 1", "first_round")
        if not (self.abstain_status == 200 or 400 <= self.abstain_status <= 599):
            raise SpreadError(f"--abstain-status must be 200 or an error status in 400..599 (got {self.abstain_status})",
                              "abstain_status")
        if not 0 <= self.port <= 65535:
            raise SpreadError(f"--port must be in 0..65535 (got {self.port})", "port")
        for route in self.routes.values():
            if not 1 <= route.k <= self.max_k:
                raise SpreadError(f"route {route.name!r}: k must be in 1..{self.max_k} (got {route.k})", "k")
            if route.on_low.action == "fallback":
                if route.on_low.route not in self.routes:
                    raise SpreadError(f"route {route.name!r} falls back to {route.on_low.route!r}, which is not a route "
                                      f"(routes: {', '.join(self.routes)})", "on_low")
                if route.on_low.route == route.name:
                    raise SpreadError(f"route {route.name!r} falls back to itself", "on_low")
        return self


def parse_route(text: str) -> tuple[str, tuple[str, ...]]:
    """`NAME=MODEL[,MODEL…]` -> (name, models)."""
    name, sep, models = (text or "").partition("=")
    name = name.strip()
    found = tuple(m.strip() for m in models.split(",") if m.strip())
    if not sep or not found:
        raise SpreadError(f"--route takes NAME=MODEL[,MODEL…] (got {text!r})", "route")
    if not NAME.match(name):
        raise SpreadError(f"route name {name!r}: letters, digits and . _ : / - only, up to 64", "route")
    return name, found


def routes_from_options(texts, *, k: int, threshold: Threshold, on_low: OnLow, checks: tuple,
                        temperature: float | None = None, max_tokens: int | None = None) -> dict[str, Route]:
    routes: dict[str, Route] = {}
    for text in texts:
        name, models = parse_route(text)
        if name in routes:
            raise SpreadError(f"route {name!r} is given twice", "route")
        routes[name] = Route(name, models, k, threshold, on_low, checks,
                             1.0 if temperature is None else temperature, max_tokens)
    return routes


def routes_from_file(path: str, defaults: Route, read_checks) -> dict[str, Route]:
    """A config file's routes; what a route leaves out comes from `defaults` (the command's
    options). `read_checks(list)` turns promptfoo-shaped checks into Check objects."""
    data = read_yaml(path, "config")
    items = data.get("routes") if isinstance(data, dict) else None
    if not isinstance(items, dict) or not items:
        raise SpreadError(f"{path}: expected a mapping `routes:` of NAME: {{models: [...], k, min_confidence, on_low, "
                          "checks}", "config")
    routes = {}
    for name, item in items.items():
        where = f"{path}: route {name!r}"
        if not isinstance(name, str) or not NAME.match(name):
            raise SpreadError(f"{where}: letters, digits and . _ : / - only, up to 64", "config")
        if isinstance(item, (str, list)):
            item = {"models": item}
        if not isinstance(item, dict):
            raise SpreadError(f"{where}: expected a mapping with models", "config")
        extra = sorted(set(item) - ROUTE_KEYS)
        if extra:
            raise SpreadError(f"{where}: unknown key {extra[0]!r} (a route takes {', '.join(sorted(ROUTE_KEYS))})",
                              "config")
        models = item.get("models")
        models = [models] if isinstance(models, str) else models
        if not isinstance(models, list) or not models or not all(isinstance(m, str) and m.strip() for m in models):
            raise SpreadError(f"{where}: models must be a model name or a list of them", "config")
        k = item.get("k", defaults.k)
        if not isinstance(k, int) or isinstance(k, bool):
            raise SpreadError(f"{where}: k must be a whole number", "config")
        try:
            threshold = Threshold.parse(item["min_confidence"]) if "min_confidence" in item else defaults.threshold
            on_low = OnLow.parse(item["on_low"]) if "on_low" in item else defaults.on_low
            checks = tuple(read_checks(item["checks"])) if "checks" in item else defaults.checks
        except SpreadError as e:
            raise SpreadError(f"{where}: {e}", "config") from None
        routes[name] = replace(defaults, name=name, models=tuple(m.strip() for m in models), k=k, threshold=threshold,
                               on_low=on_low, checks=checks, temperature=float(item.get("temperature",
                                                                                        defaults.temperature)),
                               max_tokens=item.get("max_tokens", defaults.max_tokens))
    return routes
