"""One sample call, by the cheapest route that reaches the model, and litellm, imported
once per process and configured for offline use.

Routes (`route_of`): the embedded model is called in this process; an OpenAI-compatible
server at an API base (vLLM, a LiteLLM proxy, `openai/…` with --api-base) is called
straight over HTTP (core/models/direct.py), without importing litellm; every other provider
goes through litellm. A cold `import litellm` takes seconds, so a run that needs no
litellm starts without it, and pages import it off their start-up path, through `get()`.

litellm is configured lean (`_lean()`): Spread uses none of its logging callbacks and
prices answers itself (catalogue.cost_usd), yet by default litellm builds a logging payload
and looks up a price for every call. Streaming answers from OpenAI-compatible providers
reached through litellm are read from the provider's chunks directly
(`_read_openai_stream`), skipping litellm's per-chunk rewrapping.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import threading
import time

from core.models import direct, local_llm
from core.models.reply import Sample, ToolCallDeltas, TruncatedStream, message_tool_calls

_lock = threading.Lock()
_litellm = None

# Errors worth another attempt: the provider may recover. Everything else (auth,
# not found, bad request, context window) fails the same way every time.
RETRYABLE = {"rate_limit", "timeout", "server_error", "connection"}


def get():
    """The configured litellm module (first call imports it and registers the local model)."""
    global _litellm
    with _lock:
        if _litellm is None:
            configure_environment()
            import litellm

            litellm.suppress_debug_info = True
            litellm.telemetry = False
            # Providers that refuse a parameter (seed, top_p) get it dropped, not a failure.
            litellm.drop_params = True
            _lean(litellm)
            local_llm.register(litellm)
            _litellm = litellm
        return _litellm


def configure_environment() -> None:
    """What litellm reads at import: use the price map it ships instead of downloading one."""
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    os.environ.setdefault("LITELLM_TELEMETRY", "False")


def _lean(litellm) -> None:
    """Switch off litellm's per-call bookkeeping that Spread never reads.

    Measured per call (bench/loopback.py, no latency, 50 in flight, one core): streaming
    9.3 ms of CPU by default, 2.8 ms lean with `_read_openai_stream`; whole answers 3.9 ms,
    2.5 ms lean. litellm is pinned exactly; tests/test_engine.py checks that these names
    still exist, so an upgrade that moves them fails loudly instead of going slow.
    """
    from litellm.litellm_core_utils.litellm_logging import Logging

    async def no_async_log(self, *args, **kwargs):
        return None

    def no_log(self, *args, **kwargs):
        return None

    # Success logging: with no callbacks registered it still builds a payload per call.
    Logging.async_success_handler = no_async_log
    Logging.dispatch_success_handlers = no_async_log
    Logging.success_handler = no_log
    Logging.handle_sync_success_callbacks_for_async_calls = no_log
    # The price litellm stamps on each response: Spread prices from usage itself, once
    # per model and token count (catalogue.cost_usd), and keeps unknown prices unknown.
    Logging.response_cost_calculator = no_log
    litellm.disable_streaming_logging = True


_warmed = False


async def warm() -> None:
    """One mocked call, whole and streamed (no network), once per process: litellm imports
    a few dozen modules on its first call (0.2 s alone, seconds for a first wave of calls
    on a busy machine, which a short timeout then takes for a silent provider)."""
    global _warmed
    if _warmed:
        return
    litellm = get()
    request = {"model": "openai/spread-warm-up", "messages": [{"role": "user", "content": "hi"}],
               "mock_response": "ok", "api_key": "no-key", "api_base": "http://127.0.0.1:9/v1"}
    await litellm.acompletion(**request)
    async for _ in await litellm.acompletion(**request, stream=True, stream_options={"include_usage": True}):
        pass
    _warmed = True


def freeze_heap() -> None:
    """For a process that exists to sample or to serve (the CLI, a sampler process, a run in
    its own process, `spread serve`), never the app's: move everything imported so far out
    of the garbage collector's sight, and collect young objects less often. litellm and
    pydantic leave a large heap of long-lived objects that every full collection would walk
    again; measured 2.9 -> 2.4 ms of CPU per streamed call. A frozen object that later
    ends in a reference cycle is never freed, which only a single-purpose process whose
    start-up heap lives as long as it does can afford. The calls in
    flight hold tens of thousands of young objects that reference counting frees (a
    cycle is rare: about one per ten calls); collecting them every 10,000 allocations
    cost 0.2-0.4 s of CPU per 10,000 direct calls, every 100,000 next to none."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


LEAN_PATCHED = ("async_success_handler", "dispatch_success_handlers", "success_handler",
                "handle_sync_success_callbacks_for_async_calls", "response_cost_calculator")


def _deployment(response) -> str | None:
    """The label of the deployment a Router picked (its model_info.id), else None."""
    return (getattr(response, "_hidden_params", None) or {}).get("model_id")


async def sample(
    model: str,
    messages: list[dict],
    *,
    temperature: float,
    max_tokens: int | None = None,
    seed: int | None = None,
    top_p: float | None = None,
    api_base: str | None = None,
    api_key: str | None = None,
    stream: bool = True,
    timeout_s: float = 120.0,
    params: dict | None = None,
    router=None,
    tools: list[dict] | None = None,
    tool_choice=None,
    response_format: dict | None = None,
) -> Sample:
    """One answer from one model. Raises the provider's error (litellm's, or for a direct
    call a `ProviderError`, aiohttp's or a timeout); the caller classifies and retries.
    `params` are an endpoint's extra parameters (top_k, a response format, …); with a
    `router` (a model group), `model` is the group's name and the Router picks the deployment;
    tools, tool choice and response format are the variant's (they win over the endpoint's)."""
    fields = request_fields(model, messages, temperature=temperature, max_tokens=max_tokens, seed=seed,
                            top_p=top_p, params=params)
    fields.update(prompt_shape(tools, tool_choice, response_format))
    route = "litellm" if router is not None else route_of(model, api_base)
    if route == "echo":
        return echo(messages)
    if route == "local":
        return await _sample_local(model, fields, stream)
    if route == "direct":
        return await direct.sample(fields, api_base, api_key or direct.key_from_environment(model), stream,
                                   timeout_s)
    return await _sample_litellm(fields, api_base, api_key, stream, timeout_s, router)


def request_fields(model: str, messages: list[dict], *, temperature: float, max_tokens: int | None,
                   seed: int | None, top_p: float | None, params: dict | None) -> dict:
    """What one call asks for, whichever way it goes: the endpoint's extra parameters first
    (nothing the run sets can be overridden by them), then the run's."""
    fields: dict = {**(params or {}), "model": model, "messages": messages, "temperature": temperature}
    for name, value in (("max_tokens", max_tokens), ("seed", seed), ("top_p", top_p)):
        if value is not None:
            fields[name] = value
    return fields


def prompt_shape(tools, tool_choice, response_format) -> dict:
    """The request's tools, tool choice and response format, where the variant has them."""
    return {name: value for name, value in (("tools", tools), ("tool_choice", tool_choice),
                                            ("response_format", response_format)) if value is not None}


def route_of(model: str, api_base: str | None) -> str:
    """How a call travels: "echo" (the built-in echo model), "local" (an embedded model, in
    this process), "direct" (an OpenAI-compatible server at an API base, straight over HTTP:
    core/models/direct.py), or "litellm" (every other provider)."""
    if model == ECHO_MODEL:
        return "echo"
    if local_llm.is_local(model):
        return "local"
    if api_base and direct.handles(model):
        return "direct"
    return "litellm"


def needs_litellm(calls) -> bool:
    """Whether any of these calls (endpoints.Call) goes through litellm."""
    return any(route_of(call.model, call.api_base) == "litellm" for call in calls)


# promptfoo's `echo` provider: the answer is the prompt as sent, so a suite's prompts, variables
# and checks can be tried without a model. Free, keyless, instant.
ECHO_MODEL = "echo"


def echo(messages: list[dict]) -> Sample:
    """The prompt as promptfoo's echo returns it: a lone user turn's text, else the messages as JSON."""
    if len(messages) == 1 and messages[0].get("role") == "user" and isinstance(messages[0].get("content"), str):
        text = messages[0]["content"]
    else:
        text = json.dumps(messages, ensure_ascii=False, separators=(",", ":"))
    return Sample(text, "stop", 0, 0, ECHO_MODEL, None)


async def _sample_local(model: str, fields: dict, stream: bool) -> Sample:
    """An embedded model, called in this process (its calls release the GIL: a thread each)."""
    messages = fields["messages"]
    params = {k: v for k, v in fields.items() if k not in ("model", "messages")}
    start = time.perf_counter()
    if not stream:
        out = await asyncio.to_thread(local_llm.generate, messages, params, model)
        return Sample(out["text"], out["finish_reason"], out["prompt_tokens"], out["completion_tokens"], model, None)
    ttft_ms = None
    async for piece in local_llm.astream(messages, params, model):
        if isinstance(piece, dict):  # the last: the whole answer
            return Sample(piece["text"], piece["finish_reason"], piece["prompt_tokens"], piece["completion_tokens"],
                          model, ttft_ms)
        if ttft_ms is None:
            ttft_ms = (time.perf_counter() - start) * 1000
    raise TruncatedStream("the embedded model's stream ended without its answer")


async def _sample_litellm(fields: dict, api_base: str | None, api_key: str | None, stream: bool,
                          timeout_s: float, router=None) -> Sample:
    litellm = get()
    kwargs: dict = {
        **fields,
        "timeout": timeout_s,
    }
    if router is None:
        kwargs.update(num_retries=0, max_retries=0)  # retries are ours: counted, bounded, only for what can recover
    complete = litellm.acompletion if router is None else router.acompletion
    for name, value in (("api_base", api_base), ("api_key", api_key)):
        if value is not None:
            kwargs[name] = value
    start = time.perf_counter()
    if not stream:
        response = await complete(**kwargs)
        choice = response.choices[0]
        usage = getattr(response, "usage", None)
        return Sample(
            text=choice.message.content or "",
            finish_reason=choice.finish_reason,
            prompt_tokens=getattr(usage, "prompt_tokens", None),
            completion_tokens=getattr(usage, "completion_tokens", None),
            provider_model=getattr(response, "model", None),
            ttft_ms=None,
            deployment=_deployment(response),
            tool_calls=message_tool_calls(choice.message),
            system_fingerprint=getattr(response, "system_fingerprint", None),
        )

    kwargs["stream"] = True
    kwargs["stream_options"] = {"include_usage": True}
    response = await complete(**kwargs)
    raw = getattr(response, "completion_stream", None)
    if _is_openai_stream(raw):
        out = await _read_openai_stream(raw, start)
    else:
        out = await _read_litellm_stream(response, start)
    out.deployment = _deployment(response)
    return out


def embed(model: str, texts: list[str], *, api_base: str | None = None, api_key: str | None = None,
          timeout_s: float = 120.0, params: dict | None = None, router=None) -> list[list[float]]:
    """One vector per text from an embedding endpoint (litellm's embedding API, or a
    model group's Router). Raises litellm's exceptions."""
    litellm = get()
    kwargs: dict = {**(params or {}), "model": model, "input": texts, "timeout": timeout_s}
    for name, value in (("api_base", api_base), ("api_key", api_key)):
        if value is not None:
            kwargs[name] = value
    response = (litellm.embedding if router is None else router.embedding)(**kwargs)
    rows = sorted(response.data, key=lambda row: row["index"] if isinstance(row, dict) else row.index)
    return [row["embedding"] if isinstance(row, dict) else row.embedding for row in rows]


def _is_openai_stream(stream) -> bool:
    import openai

    return isinstance(stream, openai.AsyncStream)


async def _read_openai_stream(stream, start: float) -> Sample:
    """The chunks an OpenAI-compatible provider sent, read as they are (litellm's request,
    the openai SDK's parsing), without litellm's per-chunk rewrapping."""
    import openai

    pieces: list[str] = []
    tool_calls = ToolCallDeltas()
    finish_reason = provider_model = ttft_ms = fingerprint = None
    prompt_tokens = completion_tokens = None
    try:
        async for chunk in stream:
            provider_model = chunk.model or provider_model
            fingerprint = getattr(chunk, "system_fingerprint", None) or fingerprint
            for choice in chunk.choices or []:
                content = choice.delta.content if choice.delta is not None else None
                if content:
                    if ttft_ms is None:
                        ttft_ms = (time.perf_counter() - start) * 1000
                    pieces.append(content)
                if choice.delta is not None and choice.delta.tool_calls:
                    ttft_ms = ttft_ms or (time.perf_counter() - start) * 1000
                    tool_calls.add(choice.delta.tool_calls)
                finish_reason = choice.finish_reason or finish_reason
            if chunk.usage:
                prompt_tokens, completion_tokens = chunk.usage.prompt_tokens, chunk.usage.completion_tokens
    except (openai.APIStatusError, asyncio.CancelledError):
        raise
    except (openai.APITimeoutError, TimeoutError) as error:
        raise TimeoutError(f"the stream timed out: {error}") from None
    except Exception as error:  # a cut connection or a malformed event: worth another attempt
        raise TruncatedStream(f"the stream broke: {type(error).__name__}: {error}") from None
    finally:
        await stream.close()
    if finish_reason is None:
        raise TruncatedStream("the stream ended before the answer finished")
    return Sample("".join(pieces), finish_reason, prompt_tokens, completion_tokens, provider_model, ttft_ms,
                  tool_calls=tool_calls.calls(), system_fingerprint=fingerprint)


async def _read_litellm_stream(response, start: float) -> Sample:
    """Any other provider's stream, through litellm's wrapper (the embedded model, Anthropic…)."""
    pieces: list[str] = []
    tool_calls = ToolCallDeltas()
    finish_reason = provider_model = ttft_ms = fingerprint = None
    prompt_tokens = completion_tokens = None
    async for chunk in response:
        # litellm rewrites chunk.model to the requested id; the provider's own name
        # for the model is kept aside in the hidden params.
        hidden = getattr(chunk, "_hidden_params", None) or {}
        provider_model = hidden.get("provider_response_model") or provider_model or getattr(chunk, "model", None)
        fingerprint = getattr(chunk, "system_fingerprint", None) or fingerprint
        for choice in chunk.choices or []:
            content = getattr(choice.delta, "content", None)
            if content:
                if ttft_ms is None:
                    ttft_ms = (time.perf_counter() - start) * 1000
                pieces.append(content)
            tool_calls.add(getattr(choice.delta, "tool_calls", None))
            finish_reason = choice.finish_reason or finish_reason
        usage = getattr(chunk, "usage", None)
        if usage:
            prompt_tokens = usage.prompt_tokens
            completion_tokens = usage.completion_tokens
    if finish_reason is None:
        # The stream ended without saying why: a cut connection, not an answer.
        raise TruncatedStream("the stream ended before the answer finished")
    return Sample(
        text="".join(pieces),
        finish_reason=finish_reason,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        provider_model=provider_model,
        ttft_ms=ttft_ms,
        tool_calls=tool_calls.calls(),
        system_fingerprint=fingerprint,
    )




def classify(error: BaseException) -> tuple[str, float | None]:
    """(error_type, retry_after_s) for an exception raised by `sample()`."""
    retry_after = _retry_after(error)
    if "litellm" in sys.modules:  # else no litellm error can have been raised
        kind = _litellm_kind(error)
        if kind is not None:
            return kind, retry_after
    if isinstance(error, direct.ProviderError):
        return error.kind, retry_after if error.kind in RETRYABLE else None
    aiohttp = sys.modules.get("aiohttp")
    checks = [
        (TruncatedStream, "connection"),
        (TimeoutError, "timeout"),
        (ConnectionError, "connection"),
        (aiohttp.ClientError if aiohttp else (), "connection"),  # refused, reset, a cut body
    ]
    for cls, kind in checks:
        if isinstance(error, cls):
            return kind, retry_after
    status = getattr(error, "status_code", None)
    if isinstance(status, int):
        if status == 429:
            return "rate_limit", retry_after
        if status >= 500:
            return "server_error", retry_after
        if status in (401, 403):
            return "auth", None
        if status == 404:
            return "not_found", None
        if 400 <= status < 500:
            return "bad_request", None
    return "other", None


def _litellm_kind(error: BaseException) -> str | None:
    litellm = get()
    checks = [
        (litellm.ContextWindowExceededError, "context_window"),
        (litellm.RateLimitError, "rate_limit"),
        (litellm.Timeout, "timeout"),
        (litellm.AuthenticationError, "auth"),
        (litellm.PermissionDeniedError, "auth"),
        (litellm.NotFoundError, "not_found"),
        (litellm.BadRequestError, "bad_request"),
        (litellm.ServiceUnavailableError, "server_error"),
        (litellm.InternalServerError, "server_error"),
        (litellm.BadGatewayError, "server_error"),
        (litellm.APIConnectionError, "connection"),
    ]
    for cls, kind in checks:
        if isinstance(error, cls):
            return kind
    return None


def _retry_after(error: BaseException) -> float | None:
    for headers in (getattr(error, "litellm_response_headers", None), getattr(error, "headers", None),
                    getattr(getattr(error, "response", None), "headers", None)):
        if not headers:
            continue
        try:
            value = headers.get("retry-after") or headers.get("Retry-After")
            return max(0.0, float(value)) if value is not None else None
        except (TypeError, ValueError, AttributeError):
            continue
    return None


def error_message(error: BaseException, secrets: list[str]) -> str:
    """A one-line error for the database and the page, with any key blanked out."""
    message = " ".join(str(error).split())[:500] or type(error).__name__
    for secret in secrets:
        if secret and len(secret) >= 6:
            message = message.replace(secret, "***")
    return message


_preloading: threading.Thread | None = None


def preload() -> None:
    """Start importing litellm on a background thread, once per process. A page that is
    about to call a model (Models' Test button) calls this as it draws, so the first
    click waits for the provider, not for a cold import of several seconds."""
    global _preloading
    with _lock:
        if _litellm is not None or _preloading is not None:
            return
        _preloading = threading.Thread(target=get, name="litellm-preload", daemon=True)
    _preloading.start()


def unsupported_shapes(model: str, *, tools: bool, schema: bool, json_mode: bool) -> str | None:
    """What a model refuses of the shapes asked for, in a few words, or None.

    An embedded model says itself what it takes (`local_llm.supports`). For other models
    litellm's map says what it knows; a model it does not know (a self-hosted server) is
    given the benefit of the doubt: the provider itself then says no, as error rows."""
    if local_llm.is_local(model):
        refused = [what for what, asked, feature in (("tools", tools, "tools"),
                                                     ("a response format", schema or json_mode, "response_format"))
                   if asked and not local_llm.supports(model, feature)]
        return f"the embedded model does not take {' or '.join(refused)}" if refused else None
    litellm = get()
    try:
        info = litellm.get_model_info(model)
    except Exception:
        return None  # not in litellm's map: unknown, not refused
    if tools and info.get("supports_function_calling") is False:
        return "it does not support tool calls (per litellm's model map)"
    if schema and info.get("supports_response_schema") is False:
        return "it does not support a JSON schema response format (per litellm's model map)"
    return None
