"""litellm, imported once per process and configured for offline use, and one sample call.

A cold `import litellm` takes seconds: pages import it off their start-up path, through
`get()`, and the test suite imports it once in conftest.
"""

from __future__ import annotations

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
            # Use the price map litellm ships instead of downloading one at import.
            os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
            os.environ.setdefault("LITELLM_TELEMETRY", "False")
            import litellm

            litellm.suppress_debug_info = True
            litellm.telemetry = False
            # Providers that refuse a parameter (seed, top_p) get it dropped, not a failure.
            litellm.drop_params = True
            from core.run import local_llm

            local_llm.register(litellm)
            _litellm = litellm
        return _litellm


@dataclass
class Sample:
    text: str
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    provider_model: str | None
    ttft_ms: float | None


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
) -> Sample:
    """One answer from one model. Raises litellm's exceptions; the caller retries.
    `params` are an endpoint's extra parameters (top_k, a response format, …)."""
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
        )

    kwargs["stream"] = True
    kwargs["stream_options"] = {"include_usage": True}
    pieces: list[str] = []
    finish_reason = provider_model = ttft_ms = None
    prompt_tokens = completion_tokens = None
    response = await litellm.acompletion(**kwargs)
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
