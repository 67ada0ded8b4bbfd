"""Calling an endpoint: whether a run on it can start (`check`, `readiness`), the
arguments of one call with its key read now (`how_to_call`), and the short test call of
the Models page and `spread models test`."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from core import config
from core.config import SpreadError
from core.models import catalogue, limits, llm, local_llm
from core.models.endpoints.endpoint import REFERENCE, Endpoint
from core.models.endpoints.secrets import (
    CREDENTIAL_SOURCES,
    credential_variables,
    referenced_variables,
    resolve_references,
    secret_values,
)

TEST_PROMPT = [{"role": "user", "content": "Reply with one word: ready."}]


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
    refs = [n for n in referenced_variables(endpoint.params) if not config.key(n)]
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

    def batch_cost_usd(self, prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
        return self.endpoint.batch_cost_usd(prompt_tokens, completion_tokens)

    def secrets(self) -> list[str]:
        own = [self.api_key, *(config.key(n) for n in referenced_variables(self.endpoint.params))]
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
                api_base=resolve_references(endpoint.api_base) or None, api_key=key,
                params=resolve_references(endpoint.params))


def _provider_or_none(endpoint: Endpoint) -> str | None:
    try:
        return catalogue.provider_of(endpoint.model, resolve_references(endpoint.api_base) or None)
    except SpreadError:
        return None


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
