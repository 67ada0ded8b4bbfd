"""litellm, imported once per process and configured for offline use, and one sample call.

A cold `import litellm` takes seconds: pages import it off their start-up path, through
`get()`, and the test suite imports it once in conftest.

litellm is configured lean (`_lean()`): Spread uses none of its logging callbacks and
prices answers itself (models.cost_usd), yet by default litellm builds a logging payload
and looks up a price for every call. On 2 cores that work, not the provider, capped the
fan-out (bench/bench_fanout.py). Streaming answers from OpenAI-compatible providers are
read from the provider's chunks directly (`_read_openai_stream`), skipping litellm's
per-chunk rewrapping, which cost more CPU than the whole rest of a call.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
from dataclasses import dataclass

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
            from core.run import local_llm

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
    # per model and token count (models.cost_usd), and keeps unknown prices unknown.
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
    """For a process that exists to sample (the CLI, a sampler process, a run in its own
    process), never the app's: move everything imported so far out of the garbage
    collector's sight, and collect young objects less often. litellm and pydantic leave
    a large heap of long-lived objects that every full collection would walk again;
    measured 2.9 -> 2.4 ms of CPU per streamed call. Objects frozen here are never
    freed, which only a short-lived, single-purpose process can afford."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 100)


LEAN_PATCHED = ("async_success_handler", "dispatch_success_handlers", "success_handler",
                "handle_sync_success_callbacks_for_async_calls", "response_cost_calculator")


@dataclass
class Sample:
    text: str
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    provider_model: str | None
    ttft_ms: float | None
    tool_calls: list[dict] | None = None  # [{name, arguments (parsed)}], in the order called


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
    tools: list[dict] | None = None,
    tool_choice=None,
    response_format: dict | None = None,
) -> Sample:
    """One answer from one model. Raises litellm's exceptions; the caller retries.
    `params` are an endpoint's extra parameters (top_k, a response format, …); tools,
    tool choice and response format are the variant's (they win over the endpoint's)."""
    litellm = get()
    kwargs: dict = {
        **(params or {}),  # first: nothing below can be overridden by them
        "model": model,
        "messages": messages,
        "temperature": temperature,
        "timeout": timeout_s,
        "num_retries": 0,  # retries are ours: counted, bounded, only for what can recover
        "max_retries": 0,
    }
    for name, value in (("max_tokens", max_tokens), ("seed", seed), ("top_p", top_p),
                        ("api_base", api_base), ("api_key", api_key)):
        if value is not None:
            kwargs[name] = value
    kwargs.update(prompt_shape(tools, tool_choice, response_format))
    start = time.perf_counter()
    if not stream:
        response = await litellm.acompletion(**kwargs)
        choice = response.choices[0]
        usage = getattr(response, "usage", None)
        return Sample(
            text=choice.message.content or "",
            finish_reason=choice.finish_reason,
            prompt_tokens=getattr(usage, "prompt_tokens", None),
            completion_tokens=getattr(usage, "completion_tokens", None),
            provider_model=getattr(response, "model", None),
            ttft_ms=None,
            tool_calls=message_tool_calls(choice.message),
        )

    kwargs["stream"] = True
    kwargs["stream_options"] = {"include_usage": True}
    response = await litellm.acompletion(**kwargs)
    raw = getattr(response, "completion_stream", None)
    if _is_openai_stream(raw):
        return await _read_openai_stream(raw, start)
    return await _read_litellm_stream(response, start)


def prompt_shape(tools, tool_choice, response_format) -> dict:
    """The request's tools, tool choice and response format, where the variant has them."""
    return {name: value for name, value in (("tools", tools), ("tool_choice", tool_choice),
                                            ("response_format", response_format)) if value is not None}


def message_tool_calls(message) -> list[dict] | None:
    """A whole answer's tool calls as stored: [{name, arguments (parsed)}] in order."""
    from core.run import shapes

    calls = getattr(message, "tool_calls", None) or []
    return [shapes.call_record(call.function.name, call.function.arguments) for call in calls] or None


class ToolCallDeltas:
    """A streamed answer's tool calls, put together from their pieces: each chunk carries a
    call's index and, once, its name; its arguments arrive as pieces of one JSON text."""

    def __init__(self):
        self._calls: dict[int, list] = {}

    def add(self, deltas) -> None:
        for delta in deltas or []:
            index = getattr(delta, "index", None)
            index = len(self._calls) if index is None else index
            call = self._calls.setdefault(index, ["", []])
            function = getattr(delta, "function", None)
            if function is not None:
                call[0] = getattr(function, "name", None) or call[0]
                if getattr(function, "arguments", None):
                    call[1].append(function.arguments)

    def calls(self) -> list[dict] | None:
        from core.run import shapes

        return [shapes.call_record(name, "".join(pieces))
                for _, (name, pieces) in sorted(self._calls.items())] or None


def _is_openai_stream(stream) -> bool:
    import openai

    return isinstance(stream, openai.AsyncStream)


async def _read_openai_stream(stream, start: float) -> Sample:
    """The chunks an OpenAI-compatible provider sent, read as they are (litellm's request,
    the openai SDK's parsing), without litellm's per-chunk rewrapping."""
    import openai

    pieces: list[str] = []
    tool_calls = ToolCallDeltas()
    finish_reason = provider_model = ttft_ms = None
    prompt_tokens = completion_tokens = None
    try:
        async for chunk in stream:
            provider_model = chunk.model or provider_model
            for choice in chunk.choices or []:
                content = choice.delta.content if choice.delta is not None else None
                if content:
                    if ttft_ms is None:
                        ttft_ms = (time.perf_counter() - start) * 1000
                    pieces.append(content)
                if choice.delta is not None and choice.delta.tool_calls:
                    if ttft_ms is None:
                        ttft_ms = (time.perf_counter() - start) * 1000
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
                  tool_calls.calls())


async def _read_litellm_stream(response, start: float) -> Sample:
    """Any other provider's stream, through litellm's wrapper (the embedded model, Anthropic…)."""
    pieces: list[str] = []
    tool_calls = ToolCallDeltas()
    finish_reason = provider_model = ttft_ms = None
    prompt_tokens = completion_tokens = None
    async for chunk in response:
        # litellm rewrites chunk.model to the requested id; the provider's own name
        # for the model is kept aside in the hidden params.
        hidden = getattr(chunk, "_hidden_params", None) or {}
        provider_model = hidden.get("provider_response_model") or provider_model or getattr(chunk, "model", None)
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
    )


class TruncatedStream(Exception):
    pass


def classify(error: BaseException) -> tuple[str, float | None]:
    """(error_type, retry_after_s) for an exception raised by `sample()`."""
    litellm = get()
    retry_after = _retry_after(error)
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
        (TruncatedStream, "connection"),
        (TimeoutError, "timeout"),
        (ConnectionError, "connection"),
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


def _retry_after(error: BaseException) -> float | None:
    for headers in (getattr(error, "litellm_response_headers", None),
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
