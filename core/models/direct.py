"""Calls to an OpenAI-compatible server (vLLM, a LiteLLM proxy, llama.cpp, `openai/…` with
an API base) straight over HTTP, without litellm.

litellm's per-call machinery (its request translation, the openai SDK's client, pydantic
objects per response and per streamed chunk) cost more CPU than the whole rest of a call
and capped the fan-out near 200 calls a second on 2 cores; its import alone takes
seconds. For these servers there is nothing to translate: the request is the OpenAI
chat-completions body, the answer its JSON. litellm stays the route to every other
provider (core/models/llm.py) and the source of prices (core/models/catalogue.py).

One aiohttp session per event loop, held open while anyone uses it (`session()`), with
no limit of its own on connections: the engine's gate (core/models/limits.py) is the limit.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import time

from core.models.reply import Sample, ToolCallDeltas, TruncatedStream, message_tool_calls

# litellm providers that speak OpenAI's chat completions to any server; with an API base,
# their calls go direct. (litellm's "vllm/" is the in-process vllm package, not a server.)
PROVIDERS = {"openai": "OPENAI_API_KEY", "hosted_vllm": "HOSTED_VLLM_API_KEY",
             "litellm_proxy": "LITELLM_PROXY_API_KEY", "custom_openai": "OPENAI_API_KEY"}
# Parameters that are litellm's or the client's, not the server's: not sent in the body.
CLIENT_PARAMS = {"extra_headers", "extra_body", "api_version", "organization", "drop_params", "mock_response"}


def handles(model: str) -> bool:
    provider, slash, _ = model.partition("/")
    return bool(slash) and provider in PROVIDERS


def key_from_environment(model: str) -> str | None:
    """The provider's own key variable, as litellm would read it (None: send no key)."""
    return os.environ.get(PROVIDERS.get(model.partition("/")[0], ""), "") or None


class ProviderError(Exception):
    """The server answered with an error status; `kind` is the engine's error type."""

    def __init__(self, status_code: int, message: str, headers=None, code: str | None = None):
        super().__init__(f"{status_code}: {message}")
        self.status_code = status_code
        self.headers = headers or {}
        self.kind = _kind(status_code, message, code)


def _kind(status: int, message: str, code: str | None) -> str:
    lowered = message.lower()
    if status == 400 and (code == "context_length_exceeded" or "context length" in lowered
                          or "context window" in lowered or "maximum context" in lowered):
        return "context_window"
    if status == 429:
        return "rate_limit"
    if status in (408, 504):
        return "timeout"
    if status >= 500:
        return "server_error"
    if status in (401, 403):
        return "auth"
    if status == 404:
        return "not_found"
    return "bad_request" if 400 <= status < 500 else "other"


# --- the request ------------------------------------------------------------------------

def request_body(fields: dict, stream: bool) -> dict:
    """The chat-completions body of one call (`fields`: llm.request_fields): the model id
    without its provider prefix, as litellm sends it."""
    body = {k: v for k, v in fields.items() if k not in CLIENT_PARAMS}
    body["model"] = fields["model"].partition("/")[2]
    if isinstance(fields.get("extra_body"), dict):
        body.update(fields["extra_body"])
    body["stream"] = stream
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def request_headers(api_key: str | None, fields: dict) -> dict:
    extra = fields.get("extra_headers")
    if not isinstance(extra, dict):
        return _plain_headers(api_key)
    return _plain_headers(api_key) | {str(k): str(v) for k, v in extra.items()}


@functools.lru_cache(maxsize=64)
def _plain_headers(api_key: str | None) -> dict:
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


# --- the session ------------------------------------------------------------------------

_sessions: dict = {}  # event loop -> [session, users]


def load() -> None:
    """Import aiohttp now (a quarter of a second), not in the first call."""
    import aiohttp  # noqa: F401


class session:
    """`async with direct.session():` keeps this loop's client open for the block (a run
    opens it once for all its calls); a call made outside any block opens its own."""

    async def __aenter__(self):
        import aiohttp

        loop = asyncio.get_running_loop()
        entry = _sessions.get(loop)
        if entry is None or entry[0].closed:
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
            entry = _sessions[loop] = [aiohttp.ClientSession(connector=connector, json_serialize=json.dumps), 0]
        entry[1] += 1
        return entry[0]

    async def __aexit__(self, *exc):
        loop = asyncio.get_running_loop()
        entry = _sessions.get(loop)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del _sessions[loop]
            await entry[0].close()


# --- the call ---------------------------------------------------------------------------

async def sample(fields: dict, api_base: str, api_key: str | None, stream: bool, timeout_s: float) -> Sample:
    # Every call holds the loop's client while it runs (a count, not a new client): calls made
    # outside a run's block, side by side (a judge's K samples), share one client, and the
    # first to finish must not close it under the others.
    async with session() as client:
        return await _post(client, fields, api_base, api_key, stream, timeout_s)


_timeouts: dict = {}


def _timeout(timeout_s: float, stream: bool):
    """A whole answer gets `timeout_s` (the server sends nothing until it is done); a
    stream gets its connection in `timeout_s` and 1.5 × that in all, the cap the sampler
    puts on a stalled stream. One timer per call: a timeout per read would be re-armed
    at every chunk, which costs the fan-out CPU."""
    import aiohttp

    key = (timeout_s, stream)
    if key not in _timeouts:
        _timeouts[key] = (aiohttp.ClientTimeout(total=timeout_s * 1.5, sock_connect=timeout_s) if stream
                          else aiohttp.ClientTimeout(total=timeout_s))
    return _timeouts[key]


async def _post(client, fields: dict, api_base: str, api_key: str | None, stream: bool, timeout_s: float) -> Sample:
    url = api_base.rstrip("/") + "/chat/completions"
    start = time.perf_counter()
    async with client.post(url, data=json.dumps(request_body(fields, stream)),
                           headers=request_headers(api_key, fields), timeout=_timeout(timeout_s, stream)) as response:
        if response.status >= 400:
            raise await _error(response)
        if stream:
            return await read_events(response, start)
        raw = await response.read()
    try:
        body = json.loads(raw)
    except ValueError:
        raise ProviderError(502, f"the server's answer is not JSON: {raw[:200]!r}") from None
    return parse_answer(body)


async def _error(response) -> ProviderError:
    raw = await response.read()
    message, code = raw.decode(errors="replace")[:500], None
    try:
        error = json.loads(raw).get("error")
        if isinstance(error, dict):
            message, code = str(error.get("message") or message), error.get("code")
        elif isinstance(error, str):
            message = error
    except (ValueError, AttributeError):
        pass
    return ProviderError(response.status, message or response.reason or "error", response.headers, code)


# --- the answer -------------------------------------------------------------------------

def parse_answer(body: dict) -> Sample:
    """A whole answer (`"stream": false`)."""
    if not isinstance(body, dict) or not body.get("choices"):
        raise ProviderError(502, f"the server's answer has no choices: {str(body)[:200]}")
    choice = body["choices"][0]
    message = choice.get("message") or {}
    usage = body.get("usage") or {}
    return Sample(text=message.get("content") or "", finish_reason=choice.get("finish_reason"),
                  prompt_tokens=usage.get("prompt_tokens"), completion_tokens=usage.get("completion_tokens"),
                  provider_model=body.get("model"), ttft_ms=None, tool_calls=message_tool_calls(message),
                  system_fingerprint=body.get("system_fingerprint"))


class StreamState:
    """What the events of a streamed answer have said so far."""

    __slots__ = ("pieces", "finish_reason", "provider_model", "ttft_ms", "prompt_tokens", "completion_tokens",
                 "tool_calls", "system_fingerprint")

    def __init__(self):
        self.pieces: list[str] = []
        self.tool_calls = ToolCallDeltas()
        self.finish_reason = self.provider_model = self.ttft_ms = self.system_fingerprint = None
        self.prompt_tokens = self.completion_tokens = None

    def take(self, chunk: dict, start: float) -> None:
        """One `chat.completion.chunk`."""
        if "error" in chunk:
            error = chunk["error"]
            raise ProviderError(500, str(error.get("message") if isinstance(error, dict) else error))
        self.provider_model = chunk.get("model") or self.provider_model
        self.system_fingerprint = chunk.get("system_fingerprint") or self.system_fingerprint
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if content:
                if self.ttft_ms is None:
                    self.ttft_ms = (time.perf_counter() - start) * 1000
                self.pieces.append(content)
            if delta.get("tool_calls"):
                self.ttft_ms = self.ttft_ms or (time.perf_counter() - start) * 1000
                self.tool_calls.add(delta["tool_calls"])
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
        usage = chunk.get("usage")
        if usage:
            self.prompt_tokens, self.completion_tokens = usage.get("prompt_tokens"), usage.get("completion_tokens")

    def sample(self) -> Sample:
        if self.finish_reason is None:
            raise TruncatedStream("the stream ended before the answer finished")
        return Sample("".join(self.pieces), self.finish_reason, self.prompt_tokens, self.completion_tokens,
                      self.provider_model, self.ttft_ms, tool_calls=self.tool_calls.calls(),
                      system_fingerprint=self.system_fingerprint)


async def read_events(response, start: float) -> Sample:
    """A streamed answer: server-sent events, one JSON chunk per `data:` line. Read as
    the bytes arrive, and the events of one read parsed together (one `json.loads` for
    them all): line by line, the reading cost more CPU than the rest of the call."""
    state = StreamState()
    rest = b""
    try:
        async for data in response.content.iter_any():
            *lines, rest = (rest + data).split(b"\n")
            events = [line[5:].strip() for line in lines if line.startswith(b"data:")]
            done = b"[DONE]" in events
            events = [event for event in events if event and event != b"[DONE]"]
            if events:
                for chunk in json.loads(b"[" + b",".join(events) + b"]"):
                    state.take(chunk, start)
            if done:
                break
    except (ProviderError, asyncio.CancelledError, TimeoutError):
        raise
    except Exception as error:  # a cut connection or a malformed event: worth another attempt
        raise TruncatedStream(f"the stream broke: {type(error).__name__}: {error}") from None
    return state.sample()
