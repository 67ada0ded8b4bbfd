"""Model endpoints: a shared catalogue of named models, each with its own server, key,
parameters, prices, limits and timeout.

A model name in a run is an endpoint. Either a catalogue entry ("team-llama": vLLM at
http://gpu-1:8000/v1, key in $TEAM_VLLM_KEY, top_k 40, 60 requests a minute), or, for
a name that is not in the catalogue, a bare litellm id (`openai/gpt-4o-mini`) with the
run's API base, as before the catalogue existed. The flow:

    resolve(name) -> Endpoint      what a name means (catalogue first, then a litellm id)
    check(endpoint)                whether a run on it can start (id, key, server), or why not
    how_to_call(endpoint) -> Call  the litellm arguments of one call, the key read now

An endpoint may be a model group (LiteLLM's several deployments under one name, e.g. one
model in three regions): it then holds its `deployments`, each an endpoint of its own,
and its calls go through litellm's Router (core/models/groups.py), which spreads them by
its routing strategy, each deployment's rpm/tpm, retries and cooldowns. An endpoint
whose `info` says `mode: embedding` embeds text for meaning clusters instead of answering.

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

from core import config, store
from core.config import SpreadError
from core.models import limits, llm, local_llm, catalogue

MAX_NAME = 100
KEY_ENV = re.compile(r"^[A-Z_][A-Z0-9_]*$")
# Set by the run for every call, so an endpoint may not set them.
RUN_PARAMS = {
    "model", "messages", "temperature", "seed", "max_tokens", "max_completion_tokens", "top_p", "n", "stream",
    "stream_options", "timeout", "api_base", "base_url", "api_key", "num_retries", "max_retries",
}
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
# What Spread does with an endpoint (LiteLLM's model_info.mode): answer, or embed text.
MODES = ("chat", "completion", "responses", "embedding")
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
    tpm: float | None = None  # tokens per minute (a LiteLLM config's; the router weighs deployments by it)
    deployments: list[dict] = field(default_factory=list)  # a model group: each deployment's settings
    router: dict = field(default_factory=dict)  # a model group's router settings (routing_strategy, …)
    info: dict = field(default_factory=dict)  # LiteLLM's model_info: mode, max_input_tokens, base_model, …
    source: str = "id"  # "catalogue", or "id" for a bare litellm id

    @property
    def mode(self) -> str:
        return "embedding" if (self.info or {}).get("mode") == "embedding" else "chat"

    def members(self) -> list["Endpoint"]:
        """The deployments of a model group, each an endpoint named by its label."""
        return [Endpoint.from_settings(d | {"source": "catalogue"}) for d in self.deployments or []]

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
        return catalogue.cost_usd(self.model, prompt_tokens, completion_tokens)


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
        if api_base.startswith(REFERENCE):
            _check_key_env(api_base[len(REFERENCE):])  # read from that variable when a call is made
        elif carried := url_credentials(api_base):
            # Never echoed: the catalogue, its listings and exports are shared.
            raise SpreadError(f"api_base carries a credential ({', '.join(carried)}): the catalogue is shared and "
                              f"stored, so give the URL as {REFERENCE}NAME (or the key as the key variable)",
                              "api_base")
        elif not re.match(r"^https?://[^/\s]+", api_base):
            raise SpreadError(f"api_base {api_base!r} is not an http(s) URL (or {REFERENCE}NAME)", "api_base")
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
    tpm = _number(endpoint.tpm, "the tokens per minute", "tpm", minimum=0, strict=True)
    info = _json_object(endpoint.info, "model_info")
    if info.get("mode", "chat") not in MODES:
        raise SpreadError(f"mode {info['mode']!r}: Spread uses chat and embedding endpoints", "model")
    router = _json_object(endpoint.router, "the router settings")
    deployments = [validate(Endpoint.from_settings(d), check_id=check_id).settings() | {"source": "catalogue"}
                   for d in endpoint.deployments or []]
    for d in deployments:  # a deployment is one server, not a group
        del d["deployments"], d["router"]
    if len({d["name"] for d in deployments}) < len(deployments):
        raise SpreadError(f"endpoint {name!r}: two deployments with one label", "model")
    checked = Endpoint(name, model, api_base, key_env, params, price_in, price_out, max_concurrency, rpm, timeout_s,
                       tpm=tpm, deployments=deployments, router=router, info=info, source="catalogue")
    if check_id and not local_llm.is_local(model):
        try:
            catalogue.provider_of(model, None if api_base and api_base.startswith(REFERENCE) else api_base)
        except SpreadError as e:
            raise SpreadError(f"endpoint {name!r}: {e}", "model") from None
    return checked


def _json_object(value, what: str) -> dict:
    if not value:
        return {}
    if not isinstance(value, dict):
        raise SpreadError(f"{what} must be a mapping", "params")
    _refuse_written_keys("", value)
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        raise SpreadError(f"{what} must hold JSON values (text, numbers, true/false, lists, objects)",
                          "params") from None


def _check_key_env(name: str) -> None:
    if not KEY_ENV.match(name):
        # Never echo it: a key pasted here by mistake must not reach a message or a log.
        raise SpreadError("the key variable must be the NAME of an environment variable or secrets entry "
                          "(capitals, digits and _, e.g. TEAM_VLLM_KEY), never the key itself", "key_env")
    if name in catalogue.secret_values():
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
    written = written_secrets(name, value)
    if written:
        several = len(written) > 1
        raise SpreadError(f"parameter{'s' if several else ''} {', '.join(map(repr, written))} "
                          f"look{'' if several else 's'} like a credential: the catalogue is shared and stored, so "
                          f"give {'each' if several else 'it'} as {REFERENCE}NAME (read from the environment at call "
                          "time)", "params")


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
           "timeout_s", "tpm", "deployments", "router", "info")
JSON_COLUMNS = {"params": "{}", "deployments": "[]", "router": "{}", "info": "{}"}


def _from_row(row: dict) -> Endpoint:
    data = {k: row.get(k) for k in COLUMNS}
    for column, empty in JSON_COLUMNS.items():
        data[column] = json.loads(row.get(column) or empty)
    return Endpoint(**data, source="catalogue")


def _row(endpoint: Endpoint) -> dict:
    row = {k: getattr(endpoint, k) for k in COLUMNS}
    for column in JSON_COLUMNS:
        row[column] = json.dumps(row[column], sort_keys=True)
    return row


def _no_database(db_path) -> bool:
    """No file yet is an empty catalogue: reading it must not create one (a dry run writes nothing)."""
    return not config.db_exists(db_path or config.db_path())


def list_endpoints(*, db_path=None) -> list[Endpoint]:
    if _no_database(db_path):
        return []
    with store.connect(db_path) as db:
        return [_from_row(r) for r in db.query("select * from endpoints order by lower(name), name")]


def names(*, db_path=None) -> list[str]:
    if _no_database(db_path):
        return []
    with store.connect(db_path) as db:
        return [r[0] for r in db.execute("select name from endpoints order by lower(name), name").fetchall()]


def embedding_names(*, db_path=None) -> list[str]:
    """The endpoints that embed text (model_info mode: embedding), for meaning clusters."""
    return [e.name for e in list_endpoints(db_path=db_path) if e.mode == "embedding"]


def get(name: str, *, db_path=None) -> Endpoint | None:
    if _no_database(db_path):
        return None
    with store.connect(db_path) as db:
        rows = list(db.query("select * from endpoints where name = ?", [(name or "").strip()]))
    return _from_row(rows[0]) if rows else None


def embedding_endpoint(name: str, *, db_path=None) -> Endpoint:
    """The catalogue endpoint named `name` that makes embeddings, or a one-line SpreadError."""
    endpoint = get(name, db_path=db_path)
    if endpoint is None:
        raise SpreadError(f"no endpoint named {name!r} (spread models list)", "embeddings")
    if endpoint.mode != "embedding":
        raise SpreadError(f"endpoint {name!r} is not an embedding endpoint (its model_info needs mode: embedding)",
                          "embeddings")
    return endpoint


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
    store.lock(db, f"endpoint:{endpoint.name}")  # two servers adding one name: the second is refused
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
        for locked in sorted({name, endpoint.name}):  # one order everywhere: no deadlock
            store.lock(db, f"endpoint:{locked}")
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
            catalogue.check_model(endpoint.model, endpoint.api_base)
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
    if endpoint.deployments:
        return _group_readiness(endpoint, probe, timeout_s)
    api_base = endpoint.api_base
    if api_base and api_base.startswith(REFERENCE):
        api_base = config.key(api_base[len(REFERENCE):])
        if not api_base:
            out.update(key="?", server="unknown",
                       problem=f"its api_base reads {endpoint.api_base[len(REFERENCE):]}, which is not set")
            return out
    try:
        provider = catalogue.provider_of(endpoint.model, api_base)
    except SpreadError as e:
        out["problem"] = str(e)
        return out
    out["key"], out["problem"] = _key_status(endpoint, provider)
    base = api_base or catalogue.DEFAULT_API_BASES.get(provider)
    if base:
        out["server"] = "not checked"
        if probe:
            try:
                catalogue.check_reachable(base, timeout_s)
                out["server"] = "reachable"
            except SpreadError as e:
                out["server"] = "unreachable"
                out["problem"] = out["problem"] or str(e)
    refs = [n for n in _references(endpoint.params) if not config.key(n)]
    if refs and not out["problem"]:
        out["problem"] = f"the parameters read {', '.join(refs)}, which is not set"
    out["ready"] = out["problem"] is None
    return out


def _group_readiness(endpoint: Endpoint, probe: bool, timeout_s: float) -> dict:
    """A model group is ready when every deployment is; each problem is named by its deployment."""
    states = [(member.name, readiness(member, probe=probe, timeout_s=timeout_s)) for member in endpoint.members()]
    problems = [f"deployment {label!r}: {state['problem']}" for label, state in states if state["problem"]]
    keys = {state["key"] for _, state in states}
    servers = {state["server"] for _, state in states}
    return {"key": keys.pop() if len(keys) == 1 else "mixed", "server": servers.pop() if len(servers) == 1 else "mixed",
            "problem": "; ".join(problems) or None, "ready": not problems,
            "deployment_states": {label: state for label, state in states}}


def credential_variables(endpoint: Endpoint) -> list[str]:
    """The variables an endpoint names for its credentials: its key variable and every
    credential parameter it reads from a variable (aws_secret_access_key: os.environ/…)."""
    named = [endpoint.key_env] if endpoint.key_env else []
    for name, value in (endpoint.params or {}).items():
        if isinstance(value, str) and value.startswith(REFERENCE) and (is_secret_name(name) or
                                                                       name in CREDENTIAL_SOURCES):
            named.append(value[len(REFERENCE):])
    return list(dict.fromkeys(named))


def _key_status(endpoint: Endpoint, provider: str) -> tuple[str, str | None]:
    named = credential_variables(endpoint)
    if named or CREDENTIAL_SOURCES & set(endpoint.params or {}):
        # The entry says where its credentials are: those variables, not the provider's defaults.
        missing = [n for n in named if not config.key(n)]
        if not missing:
            return "set", None
        which = ("its key variable" if missing == [endpoint.key_env] else
                 "its credential variable" if len(missing) == 1 else "its credential variables")
        return "missing", (f"{which} {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set (in the "
                           "environment or .streamlit/secrets.toml)")
    if provider in catalogue.KEYLESS or (endpoint.api_base and provider in catalogue.OPENAI_COMPATIBLE):
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
    members: list["Call"] = field(default_factory=list, repr=False)  # a model group: each deployment's call

    def options(self) -> dict:
        """llm.sample's keywords; a model group's calls go through its Router (made once per event loop)."""
        from core.models import groups

        return {"api_base": self.api_base, "api_key": self.api_key, "params": self.params,
                "timeout_s": self.timeout_s, "router": groups.router_for(self) if self.members else None}

    def cost_usd(self, prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
        return self.endpoint.cost_usd(prompt_tokens, completion_tokens)

    def secrets(self) -> list[str]:
        own = [self.api_key, *(config.key(n) for n in _references(self.endpoint.params))]
        return [v for v in own if v] + [v for member in self.members for v in member.secrets()]


def how_to_call(endpoint: Endpoint, default_timeout_s: float = 120.0) -> Call:
    """The arguments of a call to this endpoint, with its key read from its variable now."""
    if endpoint.deployments:
        # A model group: the Router is called with the group's name and picks a deployment.
        return Call(endpoint=endpoint, model=endpoint.name, timeout_s=endpoint.timeout_s or default_timeout_s,
                    members=[how_to_call(member, default_timeout_s) for member in endpoint.members()])
    if endpoint.source != "catalogue":
        key = catalogue.api_key_for(endpoint.model, endpoint.api_base)
    elif endpoint.key_env:
        # Missing (a resumed run; check() refuses new ones): a placeholder, never another key.
        key = config.key(endpoint.key_env) or "no-key"
    elif endpoint.api_base and _provider_or_none(endpoint) in catalogue.OPENAI_COMPATIBLE:
        # A self-hosted server without a key: say so, rather than let litellm send it
        # the OPENAI_API_KEY of the environment.
        key = "no-key"
    else:
        key = None  # the provider's own variable (OPENAI_API_KEY, …), as litellm reads it
    return Call(endpoint=endpoint, model=endpoint.model, timeout_s=endpoint.timeout_s or default_timeout_s,
                api_base=_resolve_references(endpoint.api_base) or None, api_key=key,
                params=_resolve_references(endpoint.params))


def _provider_or_none(endpoint: Endpoint) -> str | None:
    try:
        return catalogue.provider_of(endpoint.model, _resolve_references(endpoint.api_base) or None)
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
    return catalogue.secret_values() + [s for call in calls for s in call.secrets()]


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
