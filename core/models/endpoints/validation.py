"""An endpoint checked and normalised before it is stored, or a one-line SpreadError
whose field names the setting."""

from __future__ import annotations

import json
import math
import re

from core import config
from core.config import SpreadError
from core.models import catalogue, local_llm
from core.models.endpoints.endpoint import KEY_ENV, MAX_NAME, MODES, REFERENCE, RUN_PARAMS, Endpoint
from core.models.endpoints.secrets import url_credentials, written_secrets


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
