"""Model endpoints: a shared catalogue of named models, each with its own server, key,
parameters, prices, limits and timeout.

A model name in a run is an endpoint. Either a catalogue entry ("team-llama": vLLM at
http://gpu-1:8000/v1, key in $TEAM_VLLM_KEY, top_k 40, 60 requests a minute), or, for
a name that is not in the catalogue, a bare litellm id (`openai/gpt-4o-mini`) with the
run's API base, as before the catalogue existed. The flow:

    resolve(name) -> Endpoint      what a name means (catalogue first, then a litellm id)
    check(endpoint)                whether a run on it can start (id, key, server), or why not
    how_to_call(endpoint) -> Call  the litellm arguments of one call, the key read now

Keys: an endpoint stores the *name* of the variable that holds its key (`key_env`),
read from the environment or .streamlit/secrets.toml when a call is made. The key
itself never reaches the database, a run's stored plan, an export or a page. A run
stores each endpoint's settings as they were (`settings()`), so an old run stays
readable after the catalogue changes.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from core import config, store
from core.config import SpreadError
from core.run import limits, llm, local_llm, models

MAX_NAME = 100
KEY_ENV = re.compile(r"^[A-Z_][A-Z0-9_]*$")
# Set by the run for every call, so an endpoint may not set them.
RUN_PARAMS = {
    "model", "messages", "temperature", "seed", "max_tokens", "max_completion_tokens", "top_p", "n", "stream",
    "stream_options", "timeout", "api_base", "base_url", "api_key", "num_retries", "max_retries",
}
# Parameter names that hold credentials: their value must be a reference (os.environ/NAME),
# because parameters are stored in the shared database.
SECRET_NAME = re.compile(r"api[_-]?key|secret|passw|authoriz|credential|access[_-]?token|bearer", re.IGNORECASE)
# LiteLLM's way to point at a variable (`api_key: os.environ/NAME`); Spread reads it the same way.
REFERENCE = "os.environ/"
TEST_PROMPT = [{"role": "user", "content": "Reply with one word: ready."}]


@dataclass
class Endpoint:
    name: str  # the label shown in every view; a bare id's name is the id
    model: str  # the litellm model id
    api_base: str | None = None
    key_env: str | None = None  # the variable holding the key, never the key
    params: dict = field(default_factory=dict)  # passed to every call: top_k, response_format, …
    price_in: float | None = None  # USD per million prompt tokens (overrides litellm's map)
    price_out: float | None = None  # USD per million completion tokens
    max_concurrency: int | None = None  # calls in flight
    rpm: float | None = None  # requests per minute
    timeout_s: float | None = None  # seconds per call (else the run's)
    source: str = "id"  # "catalogue", or "id" for a bare litellm id

    def settings(self) -> dict:
        """What a run records about the endpoint it used: everything but the key."""
        return asdict(self)

    @classmethod
    def from_settings(cls, data: dict) -> "Endpoint":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def cost_usd(self, prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
        """The endpoint's own prices, else the settings file's or litellm's (None: unknown)."""
        if prompt_tokens is None or completion_tokens is None:
            return None
        if self.price_in is not None and self.price_out is not None:
            return (prompt_tokens * self.price_in + completion_tokens * self.price_out) / 1e6
        return models.cost_usd(self.model, prompt_tokens, completion_tokens)


def bare(model_id: str, api_base: str | None = None) -> Endpoint:
    """A litellm id used directly: the run's API base applies, except to the embedded model."""
    model_id = (model_id or "").strip()
    return Endpoint(name=model_id, model=model_id, api_base=None if local_llm.is_local(model_id) else api_base)


# --- validation -----------------------------------------------------------------------

def validate(endpoint: Endpoint, *, check_id: bool = True) -> Endpoint:
    """The endpoint normalised, or a one-line SpreadError whose field names the setting."""
    name = " ".join((endpoint.name or "").split())
    if not name:
        raise SpreadError("the endpoint needs a name", "name")
    config.check_text(name, "the endpoint name", "name")
    if len(name) > MAX_NAME:
        raise SpreadError(f"an endpoint name is at most {MAX_NAME} characters", "name")
    if local_llm.is_local(name):
        raise SpreadError(f"{name} is an embedded model's id: choose another name", "name")
    model = (endpoint.model or "").strip()
    if not model:
        raise SpreadError(f"endpoint {name!r} needs a litellm model id (e.g. openai/<name> for vLLM)", "model")
    config.check_text(model, "the model id", "model")
    if any(c.isspace() for c in model):
        raise SpreadError(f"model id {model!r} contains white space", "model")
    api_base = (endpoint.api_base or "").strip() or None
    if api_base:
        config.check_text(api_base, "the API base", "api_base")
        if not re.match(r"^https?://[^/\s]+", api_base):
            raise SpreadError(f"api_base {api_base!r} is not an http(s) URL", "api_base")
    key_env = (endpoint.key_env or "").strip() or None
    if key_env:
        _check_key_env(key_env)
    params = check_params(endpoint.params or {})
    price_in = _number(endpoint.price_in, "the input price", "price", minimum=0)
    price_out = _number(endpoint.price_out, "the output price", "price", minimum=0)
    if (price_in is None) != (price_out is None):
        raise SpreadError("give both prices (input and output per million tokens), or neither", "price")
    max_concurrency = _number(endpoint.max_concurrency, "the maximum concurrency", "max_concurrency", minimum=1,
                              whole=True)
    if max_concurrency is not None and max_concurrency > 1024:
        raise SpreadError("the maximum concurrency must be in 1..1024", "max_concurrency")
    rpm = _number(endpoint.rpm, "the requests per minute", "rpm", minimum=0, strict=True)
    timeout_s = _number(endpoint.timeout_s, "the timeout", "timeout", minimum=0, strict=True)
    checked = Endpoint(name, model, api_base, key_env, params, price_in, price_out, max_concurrency, rpm, timeout_s,
                       source="catalogue")
    if check_id and not local_llm.is_local(model):
        try:
            models.provider_of(model, api_base)
        except SpreadError as e:
            raise SpreadError(f"endpoint {name!r}: {e}", "model") from None
    return checked


def _check_key_env(name: str) -> None:
    if not KEY_ENV.match(name):
        # Never echo it: a key pasted here by mistake must not reach a message or a log.
        raise SpreadError("the key variable must be the NAME of an environment variable or secrets entry "
                          "(capitals, digits and _, e.g. TEAM_VLLM_KEY), never the key itself", "key_env")
    if name in models.secret_values():
        raise SpreadError("the key variable must be a variable's name, not a key", "key_env")


def _number(value, what: str, where: str, *, minimum: float, strict: bool = False, whole: bool = False):
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        if isinstance(value, bool):
            raise TypeError
        number = float(value)
    except (TypeError, ValueError):
        raise SpreadError(f"{what} must be a number (got {value!r})", where) from None
    if not math.isfinite(number) or number < minimum or (strict and number == minimum):
        raise SpreadError(f"{what} must be {'above' if strict else 'at least'} {minimum:g} (got {value!r})", where)
    if whole:
        if number != int(number):
            raise SpreadError(f"{what} must be a whole number (got {value!r})", where)
        return int(number)
    return number


def check_params(params: dict) -> dict:
    """Extra call parameters as JSON values; none the run sets, no key written out."""
    if not isinstance(params, dict):
        raise SpreadError("parameters must be a mapping of names to values", "params")
    for name, value in params.items():
        if not isinstance(name, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_.-]*$", name):
            raise SpreadError(f"parameter name {name!r} is not a plain name", "params")
        if name in RUN_PARAMS:
            raise SpreadError(f"parameter {name!r} is set by the run (or, for keys and servers, by the endpoint's "
                              "own settings), not as an extra parameter", "params")
        _refuse_written_keys(name, value)
    try:
        text = json.dumps(params, allow_nan=False)
    except (TypeError, ValueError):
        raise SpreadError("parameter values must be JSON values (text, numbers, true/false, lists, "
                          "objects)", "params") from None
    config.check_text(text, "the parameters", "params")
    return json.loads(text)


def _refuse_written_keys(name: str, value) -> None:
    if isinstance(value, dict):
        for inner, inner_value in value.items():
            _refuse_written_keys(str(inner), inner_value)
    elif isinstance(value, list):
        for item in value:
            _refuse_written_keys(name, item)
    elif isinstance(value, str) and SECRET_NAME.search(name) and not value.startswith(REFERENCE):
        raise SpreadError(f"parameter {name!r} looks like a credential: the catalogue is shared and stored, so "
                          f"give it as {REFERENCE}NAME (read from the environment at call time)", "params")


def parse_param(text: str) -> tuple[str, object]:
    """ "top_k=40" -> ("top_k", 40): the value as JSON when it reads as JSON, else as text."""
    name, sep, value = (text or "").partition("=")
    if not sep or not name.strip():
        raise SpreadError(f"parameter {text!r} is not KEY=VALUE", "params")
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value
    return name.strip(), parsed


def parse_params(lines: list[str]) -> dict:
    return dict(parse_param(line) for line in lines if line.strip())


# --- the catalogue --------------------------------------------------------------------

COLUMNS = ("name", "model", "api_base", "key_env", "params", "price_in", "price_out", "max_concurrency", "rpm",
           "timeout_s")


def _from_row(row: dict) -> Endpoint:
    data = {k: row[k] for k in COLUMNS}
    data["params"] = json.loads(row["params"] or "{}")
    return Endpoint(**data, source="catalogue")


def _row(endpoint: Endpoint) -> dict:
    row = {k: getattr(endpoint, k) for k in COLUMNS}
    row["params"] = json.dumps(endpoint.params, sort_keys=True)
    return row


def _no_database(db_path) -> bool:
    """No file yet is an empty catalogue: reading it must not create one (a dry run writes nothing)."""
    return not Path(db_path or config.db_path()).exists()


def list_endpoints(*, db_path=None) -> list[Endpoint]:
    if _no_database(db_path):
        return []
    with store.connect(db_path) as db:
        return [_from_row(r) for r in db.query("select * from endpoints order by name collate nocase")]


def names(*, db_path=None) -> list[str]:
    if _no_database(db_path):
        return []
    with store.connect(db_path) as db:
        return [r[0] for r in db.execute("select name from endpoints order by name collate nocase").fetchall()]


def get(name: str, *, db_path=None) -> Endpoint | None:
    if _no_database(db_path):
        return None
    with store.connect(db_path) as db:
        rows = list(db.query("select * from endpoints where name = ?", [(name or "").strip()]))
    return _from_row(rows[0]) if rows else None


def fingerprint(*, db_path=None) -> str:
    """Changes whenever the catalogue does: a cache key for pages."""
    if _no_database(db_path):
        return "0:"
    with store.connect(db_path) as db:
        count, latest = db.execute("select count(*), max(updated_at) from endpoints").fetchone()
    return f"{count}:{latest}"


def add(endpoint: Endpoint, *, who: str = "", replace: bool = False, db_path=None) -> Endpoint:
    """Add an endpoint (or, with replace, overwrite the one of that name)."""
    endpoint = validate(endpoint)
    with store.connect(db_path) as db, store.write(db):
        _insert(db, endpoint, who, replace)
    return endpoint


def add_all(endpoints: list[Endpoint], *, who: str = "", replace: bool = False, db_path=None) -> None:
    """Several endpoints in one transaction: all of them or none."""
    with store.connect(db_path) as db, store.write(db):
        for endpoint in endpoints:
            _insert(db, endpoint, who, replace)


def _insert(db, endpoint: Endpoint, who: str, replace: bool) -> None:
    existing = db.execute("select created_at, created_by from endpoints where name = ?", [endpoint.name]).fetchone()
    if existing and not replace:
        raise SpreadError(f"an endpoint named {endpoint.name!r} already exists: edit it, or remove it first", "name")
    now = store.now_iso()
    created_at, created_by = existing or (now, who)
    db["endpoints"].insert(_row(endpoint) | {"created_at": created_at, "created_by": created_by, "updated_at": now},
                           replace=True)


def update(name: str, endpoint: Endpoint, *, who: str = "", db_path=None) -> Endpoint:
    """Change an endpoint's settings, its name included. Runs already made keep theirs."""
    endpoint = validate(endpoint)
    with store.connect(db_path) as db, store.write(db):
        row = db.execute("select created_at, created_by from endpoints where name = ?", [name]).fetchone()
        if row is None:
            raise SpreadError(f"no endpoint named {name!r}", "name")
        if endpoint.name != name:
            if db.execute("select 1 from endpoints where name = ?", [endpoint.name]).fetchone():
                raise SpreadError(f"an endpoint named {endpoint.name!r} already exists", "name")
            db.execute("delete from endpoints where name = ?", [name])
        db["endpoints"].insert(_row(endpoint) | {"created_at": row[0], "created_by": row[1],
                                                 "updated_at": store.now_iso()}, replace=True)
    return endpoint


def duplicate(name: str, new_name: str | None = None, *, who: str = "", db_path=None) -> Endpoint:
    """A copy under a new name ("NAME copy", "NAME copy 2", … unless given), to edit."""
    original = get(name, db_path=db_path)
    if original is None:
        raise SpreadError(f"no endpoint named {name!r}", "name")
    taken = set(names(db_path=db_path))
    if not new_name:
        new_name = f"{name} copy"
        k = 2
        while new_name in taken:
            new_name, k = f"{name} copy {k}", k + 1
    copy = Endpoint.from_settings(original.settings() | {"name": new_name})
    return add(copy, who=who, db_path=db_path)


def remove(name: str, *, db_path=None) -> None:
    """Remove an endpoint from the catalogue. Runs made with it keep its settings."""
    with store.connect(db_path) as db, store.write(db):
        if db.execute("delete from endpoints where name = ?", [name]).rowcount == 0:
            raise SpreadError(f"no endpoint named {name!r}", "name")


def resolve(name: str, api_base: str | None = None, *, db_path=None) -> Endpoint:
    """A catalogue entry by that name, else the name as a bare litellm id (with api_base)."""
    found = get(name, db_path=db_path)
    return found if found is not None else bare(name, api_base)


# --- readiness ------------------------------------------------------------------------

def check(endpoint: Endpoint) -> None:
    """Raise a one-line SpreadError naming the endpoint if a run on it cannot start: an
    unknown model id, a missing key (where the provider needs one), an unreachable server."""
    if endpoint.source != "catalogue":
        # A bare id: the checks litellm ids always had, keyed by the id itself.
        try:
            models.check_model(endpoint.model, endpoint.api_base)
        except SpreadError as e:
            raise SpreadError(str(e), "api_base" if "api_base" in str(e) else "models") from None
        return
    problem = readiness(endpoint)["problem"]
    if problem:
        raise SpreadError(f"endpoint {endpoint.name!r}: {problem}", "models")


def readiness(endpoint: Endpoint, *, probe: bool = True, timeout_s: float = 3.0) -> dict:
    """{"key": "set" | "missing" | "not needed", "server": "reachable" | "unreachable" |
    "not checked" | "cloud", "problem": one line or None, "ready": bool} — never the key."""
    out = {"key": "not needed", "server": "cloud", "problem": None, "ready": False}
    if local_llm.is_local(endpoint.model):
        out.update(server="embedded", ready=True)
        return out
    try:
        provider = models.provider_of(endpoint.model, endpoint.api_base)
    except SpreadError as e:
        out["problem"] = str(e)
        return out
    out["key"], out["problem"] = _key_status(endpoint, provider)
    base = endpoint.api_base or models.DEFAULT_API_BASES.get(provider)
    if base:
        out["server"] = "not checked"
        if probe:
            try:
                models.check_reachable(base, timeout_s)
                out["server"] = "reachable"
            except SpreadError as e:
                out["server"] = "unreachable"
                out["problem"] = out["problem"] or str(e)
    refs = [n for n in _references(endpoint.params) if not config.key(n)]
    if refs and not out["problem"]:
        out["problem"] = f"the parameters read {', '.join(refs)}, which is not set"
    out["ready"] = out["problem"] is None
    return out


def _key_status(endpoint: Endpoint, provider: str) -> tuple[str, str | None]:
    if endpoint.key_env:
        if config.key(endpoint.key_env):
            return "set", None
        return "missing", (f"its key variable {endpoint.key_env} is not set (in the environment or "
                           ".streamlit/secrets.toml)")
    if provider in models.KEYLESS or (endpoint.api_base and provider in models.OPENAI_COMPATIBLE):
        return "not needed", None
    config.load_secrets_into_env()
    env = llm.get().validate_environment(model=endpoint.model)
    if env.get("keys_in_environment", True):
        return "set", None
    missing = ", ".join(env.get("missing_keys") or ["an API key"])
    return "missing", f"missing key for {endpoint.model}: set {missing}, or give the endpoint a key variable"


def _references(value) -> list[str]:
    """Variable names a parameter reads (os.environ/NAME), at any depth."""
    if isinstance(value, dict):
        return [n for v in value.values() for n in _references(v)]
    if isinstance(value, list):
        return [n for v in value for n in _references(v)]
    if isinstance(value, str) and value.startswith(REFERENCE):
        return [value[len(REFERENCE):]]
    return []


# --- calling --------------------------------------------------------------------------

@dataclass
class Call:
    """How to call one endpoint: `llm.sample(call.model, messages, ..., **call.options())`."""

    endpoint: Endpoint
    model: str
    timeout_s: float
    api_base: str | None = None
    api_key: str | None = field(default=None, repr=False)  # read now, from the variable; never stored
    params: dict = field(default_factory=dict, repr=False)  # references resolved: may hold secrets

    def options(self) -> dict:
        return {"api_base": self.api_base, "api_key": self.api_key, "params": self.params,
                "timeout_s": self.timeout_s}

    def cost_usd(self, prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
        return self.endpoint.cost_usd(prompt_tokens, completion_tokens)

    def secrets(self) -> list[str]:
        return [v for v in [self.api_key, *(config.key(n) for n in _references(self.endpoint.params))] if v]


def how_to_call(endpoint: Endpoint, default_timeout_s: float = 120.0) -> Call:
    """The arguments of a call to this endpoint, with its key read from its variable now."""
    if endpoint.source != "catalogue":
        key = models.api_key_for(endpoint.model, endpoint.api_base)
    elif endpoint.key_env:
        # Missing (a resumed run; check() refuses new ones): a placeholder, never another key.
        key = config.key(endpoint.key_env) or "no-key"
    elif endpoint.api_base and _provider_or_none(endpoint) in models.OPENAI_COMPATIBLE:
        # A self-hosted server without a key: say so, rather than let litellm send it
        # the OPENAI_API_KEY of the environment.
        key = "no-key"
    else:
        key = None  # the provider's own variable (OPENAI_API_KEY, …), as litellm reads it
    return Call(endpoint=endpoint, model=endpoint.model, timeout_s=endpoint.timeout_s or default_timeout_s,
                api_base=endpoint.api_base, api_key=key, params=_resolve_references(endpoint.params))


def _provider_or_none(endpoint: Endpoint) -> str | None:
    try:
        return models.provider_of(endpoint.model, endpoint.api_base)
    except SpreadError:
        return None


def _resolve_references(value):
    if isinstance(value, dict):
        return {k: _resolve_references(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_references(v) for v in value]
    if isinstance(value, str) and value.startswith(REFERENCE):
        return config.key(value[len(REFERENCE):]) or ""
    return value


def secret_values(calls) -> list[str]:
    """Every key in use (the environment's and the endpoints' own), to scrub from error text."""
    config.load_secrets_into_env()
    return models.secret_values() + [s for call in calls for s in call.secrets()]


async def try_call(endpoint: Endpoint) -> dict:
    """One short call, as the Models page's Test button and `spread models test` make it:
    the answer, latency, the model name the server reports, tokens and cost, or the error
    in one line (scrubbed of keys)."""
    out = {"name": endpoint.name, "model": endpoint.model, "ok": False, "answer": None, "latency_ms": None,
           "provider_model": None, "prompt_tokens": None, "completion_tokens": None, "cost_usd": None,
           "error": None}
    try:
        await asyncio.to_thread(check, endpoint)
    except SpreadError as e:
        out["error"] = str(e)
        return out
    call = how_to_call(endpoint, default_timeout_s=30.0)
    bucket = limits.bucket_for(endpoint)
    if bucket is not None:
        await bucket.take()  # a test call counts against the endpoint's rate like any other
    start = time.perf_counter()
    try:
        reply = await llm.sample(call.model, TEST_PROMPT, temperature=0.0, max_tokens=16, stream=False,
                                 **call.options())
    except Exception as error:  # shown to the user in one line, like an error row
        kind, _ = llm.classify(error)
        out["error"] = f"{endpoint.name}: {kind}: {llm.error_message(error, secret_values([call]))}"
        out["latency_ms"] = round((time.perf_counter() - start) * 1000, 1)
        return out
    out.update(ok=True, answer=reply.text, latency_ms=round((time.perf_counter() - start) * 1000, 1),
               provider_model=reply.provider_model, prompt_tokens=reply.prompt_tokens,
               completion_tokens=reply.completion_tokens,
               cost_usd=call.cost_usd(reply.prompt_tokens, reply.completion_tokens))
    return out
