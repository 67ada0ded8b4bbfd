"""A loopback HTTP server speaking enough of the OpenAI chat-completions API to
test provider behaviour (latency, 429/5xx, timeouts, resets, streaming) through
litellm / the openai SDK.  Standard library only; binds 127.0.0.1 only.

    with StubOpenAI(latency_s=0.05) as s:
        s.inject("429", "500")          # next two chat requests fail, then normal
        litellm.completion(model="openai/x", api_base=s.base_url, api_key="x",
                           num_retries=0, ...)   # else the openai SDK retries twice

An answer may be a tool call: an answer that is a dict {"content": text or None,
"tool_calls": [{"name", "arguments": raw JSON text}]} is sent as the calls (streamed,
each call's arguments split across three chunks). `echo_roles` answers with the roles
of the messages received ("roles: system user assistant user"); every request body
(response_format, tools, tool_choice included) is kept in `requests`.
"""
from __future__ import annotations

import json
import random
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")
EMBEDDING_PATHS = ("/v1/embeddings", "/embeddings")
EMBEDDING_DIMS = 64
DEFAULT_ANSWERS = ["Paris.", "The capital of France is Paris.", "Paris, France",
                   "It is Paris!", "Lyon."]
FAULTS = ("429", "429-noretry", "500", "503", "timeout", "reset", "malformed",
          "truncated-sse", "401", "404", "400-context")
# fault -> (status, message, type, code); the message may use {model}.
_ERRORS = {
    "429": (429, "Rate limit reached for requests", "requests", "rate_limit_exceeded"),
    "429-noretry": (429, "Rate limit reached for requests", "requests", "rate_limit_exceeded"),
    "500": (500, "The server had an error while processing your request.", "server_error", None),
    "503": (503, "The server is overloaded or not ready yet.", "server_error", None),
    "401": (401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    "404": (404, "The model `{model}` does not exist or you do not have access to it.",
            "invalid_request_error", "model_not_found"),
    "400-context": (400, "This model's maximum context length is 8192 tokens. However, your "
                    "messages resulted in 9000 tokens. Please reduce the length of the messages.",
                    "invalid_request_error", "context_length_exceeded"),
}


def embedding_of(text: str) -> list[float]:
    """A deterministic vector from the text: its words hashed into EMBEDDING_DIMS signed
    buckets, so texts sharing words point the same way (a bag-of-words stand-in for a model)."""
    import hashlib
    import re

    vector = [0.0] * EMBEDDING_DIMS
    for word in re.findall(r"\w+", text.lower()):
        digest = hashlib.sha256(word.encode()).digest()
        vector[digest[0] % EMBEDDING_DIMS] += 1.0 if digest[1] % 2 else -1.0
    return vector if any(vector) else [1.0] + [0.0] * (EMBEDDING_DIMS - 1)


def _content_text(content) -> str:
    """Message content is a string or a list of parts ({"type": "text", "text": ...})."""
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1, but every response carries "Connection: close": streamed bodies then
    # end at EOF (no Content-Length, no chunking) and no client pools a socket.
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format, *args):  # silence per-request stderr logging
        pass

    def do_GET(self):
        self.server.stub._record(self.path, None, self.headers, self.client_address[1])
        if self.path.rstrip("/") == "/v1/models":
            self._json(200, {"object": "list", "data": [
                {"id": "stub-a", "object": "model", "created": 0, "owned_by": "stub"}]})
        else:
            self._error(404, f"Unknown path {self.path}", "invalid_request_error", None)

    def do_POST(self):
        stub = self.server.stub
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        rec = stub._record(self.path, body, self.headers, self.client_address[1])
        if self.path in EMBEDDING_PATHS and isinstance(body, dict):
            texts = body.get("input")
            texts = [texts] if isinstance(texts, str) else texts if isinstance(texts, list) else []
            rec["status"] = 200
            return self._json(200, {"object": "list", "model": str(body.get("model", "stub")), "data": [
                {"object": "embedding", "index": i, "embedding": embedding_of(str(t))} for i, t in enumerate(texts)],
                "usage": {"prompt_tokens": sum(len(str(t).split()) for t in texts),
                          "total_tokens": sum(len(str(t).split()) for t in texts)}})
        if self.path not in CHAT_PATHS:
            return self._error(404, f"Unknown path {self.path}", "invalid_request_error", None)
        if not isinstance(body, dict):
            rec["status"] = 400
            return self._error(400, "We could not parse the JSON body of your request.",
                               "invalid_request_error", None)
        fault = rec["fault"] = stub._next_fault()
        model, stream = str(body.get("model", "stub")), bool(body.get("stream"))

        if fault in _ERRORS:
            status, msg, typ, code = _ERRORS[fault]
            rec["status"] = status
            extra = {"Retry-After": stub.retry_after} if fault == "429" else {}
            msg = msg.format(model=model)
            if stub.echo_auth:  # as careless providers do: the key comes back in the error
                msg += f" (you sent {self.headers.get('Authorization')})"
            return self._error(status, msg, typ, code, extra)
        if fault == "reset":
            # SO_LINGER(on, 0) makes close() send RST instead of FIN.  Detaching the fd
            # first stops socketserver's later shutdown(SHUT_WR) from sending a FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            socket.close(self.connection.detach())
            self.close_connection = True
            return
        # Sleeps wait on the stop event, so stop() wakes them; then drop silently.
        if (fault == "timeout" and stub._stop.wait(stub.hang_s)) or \
                (stub.latency_s and stub._stop.wait(stub.latency_s)):
            self.close_connection = True
            return
        rec["status"] = 200
        if fault == "malformed":
            if stream:
                return self._raw(b"data: {not json\n\n", "text/event-stream")
            return self._raw(b"{not json", "application/json")

        text, finish, usage = stub._answer(body)
        calls = []
        if isinstance(text, dict):  # a tool-call answer
            calls = [{"id": f"call_{rec['n']}_{k}", "type": "function",
                      "function": {"name": c["name"], "arguments": c["arguments"]}}
                     for k, c in enumerate(text.get("tool_calls") or [])]
            text = text.get("content") or ""
            finish = "tool_calls" if calls else finish
        base = {"id": f"chatcmpl-{rec['n']}", "created": int(time.time()),
                "model": model + stub.model_suffix}  # lets tests check the provider-reported model
        if stub.fingerprint is not None:  # as OpenAI sends it: in the answer and in every chunk
            base["system_fingerprint"] = stub.fingerprint
        if not stream:
            data = json.dumps({**base, "object": "chat.completion", "usage": usage, "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text or None,
                                         **({"tool_calls": calls} if calls else {})},
                 "finish_reason": finish}]}).encode()
            if fault == "truncated-sse":
                # Non-streaming analogue: promise the full Content-Length, send half, hang up.
                self._head(200, "application/json", len(data))
                self.wfile.write(data[: len(data) // 2])
                return
            return self._raw(data, "application/json")

        self._head(200, "text/event-stream", None)

        def send(choices, **extra):
            obj = {**base, "object": "chat.completion.chunk", "choices": choices, **extra}
            self.wfile.write(b"data: " + json.dumps(obj).encode() + b"\n\n")
            self.wfile.flush()

        for i, word in enumerate(text.split()):
            delta = {"role": "assistant", "content": word} if i == 0 else {"content": " " + word}
            send([{"index": 0, "delta": delta, "finish_reason": None}])
            if fault == "truncated-sse" or stub._stop.wait(0.002):
                return  # EOF after one chunk: no finish_reason, no [DONE]
        for k, call in enumerate(calls):
            arguments = call["function"]["arguments"]
            cut = [0, len(arguments) // 3, 2 * len(arguments) // 3, len(arguments)]
            send([{"index": 0, "delta": {"role": "assistant", "tool_calls": [
                {"index": k, "id": call["id"], "type": "function",
                 "function": {"name": call["function"]["name"], "arguments": ""}}]}, "finish_reason": None}])
            for a, b in zip(cut, cut[1:]):  # the arguments in pieces, as providers send them
                send([{"index": 0, "delta": {"tool_calls": [
                    {"index": k, "function": {"arguments": arguments[a:b]}}]}, "finish_reason": None}])
        send([{"index": 0, "delta": {}, "finish_reason": finish}])
        if (body.get("stream_options") or {}).get("include_usage"):
            send([], usage=usage)
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _head(self, status: int, ctype: str, length: int | None, extra: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if length is not None:
            self.send_header("Content-Length", str(length))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def _raw(self, data: bytes, ctype: str, status: int = 200, extra: dict | None = None):
        self._head(status, ctype, len(data), extra)
        self.wfile.write(data)

    def _json(self, status: int, obj, extra: dict | None = None):
        self._raw(json.dumps(obj).encode(), "application/json", status, extra)

    def _error(self, status, message, typ, code, extra=None):
        err = {"message": message, "type": typ, "param": None, "code": code}
        self._json(status, {"error": err}, extra)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default listen backlog is 5: with more clients connecting at once
    # (every response closes its connection) the kernel drops SYNs, a client retries
    # after a second and times out having never reached a handler, so the stub counts
    # fewer requests than the client made.
    request_queue_size = 128
    stub: "StubOpenAI"

    def handle_error(self, request, client_address):
        pass  # clients that time out / hang up mid-answer cause BrokenPipe; not news


class StubOpenAI:
    hang_s: float = 30.0  # how long a "timeout" fault stalls before answering
    retry_after: str = "0"  # the Retry-After header sent with a "429" fault
    echo_auth: bool = False  # error messages repeat the Authorization header (a key-leak test)
    model_suffix: str = "-2024-stub"  # the model name the provider reports is the requested one + this
    fingerprint: str | None = None  # the `system_fingerprint` the provider reports, if any
    echo_roles: bool = False  # answer with the roles of the messages received

    def __init__(self, *, latency_s: float = 0.0, answers: list[str] | None = None):
        self.latency_s = latency_s
        self.answers = list(answers) if answers else list(DEFAULT_ANSWERS)
        self.fail_rate: dict[str, float] = {}  # e.g. {"500": 0.2}: random faults per request
        self.respond = None  # optional: body -> answer text, to answer by what was asked
        self.requests: list[dict] = []  # path, body, headers (lowercase), t, port, + fault, status, n
        self.base_url = ""
        self._faults: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()  # set by stop(); wakes every sleeping handler
        self._rng = random.Random(0)  # answers for requests without an integer seed
        self._fault_rng = random.Random(0)  # fail_rate draws
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "StubOpenAI":
        self._stop.clear()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.stub = self
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "StubOpenAI":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def inject(self, *faults: str) -> None:
        """Queue faults; each incoming chat request consumes one, in order."""
        for f in faults:
            if f not in FAULTS:
                raise ValueError(f"unknown fault {f!r}; expected one of {FAULTS}")
        with self._lock:
            self._faults.extend(faults)

    def count(self, fault_or_status: str | None = None) -> int:
        """Chat requests received; optionally only those answered with a fault name
        (e.g. "reset", "timeout") or an HTTP status (e.g. "429" also counts
        "429-noretry"; "200" counts normal answers and malformed/truncated ones)."""
        with self._lock:
            chats = [r for r in self.requests if r["path"] in CHAT_PATHS]
        if fault_or_status is None:
            return len(chats)
        return sum(1 for r in chats if r["fault"] == fault_or_status
                   or str(r["status"]) == fault_or_status)

    # -- called from handler threads ---------------------------------------------
    def _record(self, path, body, headers, port=None) -> dict:
        rec = {"path": path, "body": body, "t": time.time(), "port": port,  # the client's end, on loopback
               "headers": {k.lower(): v for k, v in headers.items()},
               "fault": None, "status": None}
        with self._lock:
            rec["n"] = len(self.requests) + 1
            self.requests.append(rec)
        return rec

    def _next_fault(self) -> str | None:
        with self._lock:
            if self._faults:
                return self._faults.pop(0)
            # One draw per request; probabilities are cumulative, in dict order.
            r, acc = self._fault_rng.random(), 0.0
            for name, p in self.fail_rate.items():
                acc += p
                if r < acc:
                    return name
        return None

    def _answer(self, body: dict) -> tuple[str, str, dict]:
        seed = body.get("seed")
        if self.echo_roles:
            text = "roles: " + " ".join(str(m.get("role")) for m in body.get("messages") or [])
        elif self.respond is not None:
            text = self.respond(body)
        elif body.get("temperature") == 0:
            text = self.answers[0]
        elif isinstance(seed, int) and not isinstance(seed, bool):
            text = self.answers[random.Random(seed).randrange(len(self.answers))]
        else:
            with self._lock:
                text = self.answers[self._rng.randrange(len(self.answers))]
        if isinstance(text, dict):  # a tool call: its arguments count as its tokens
            words, finish = (text.get("content") or "").split() + [
                c["arguments"] for c in text.get("tool_calls") or []], "stop"
        else:
            words, finish = text.split(), "stop"
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        if isinstance(text, str) and isinstance(limit, int) and len(words) > limit:  # one "token" per word
            words, finish = words[:limit], "length"
            text = " ".join(words)
        prompt = sum(len(_content_text(m.get("content")).split())
                     for m in body.get("messages") or [] if isinstance(m, dict))
        usage = {"prompt_tokens": prompt, "completion_tokens": len(words),
                 "total_tokens": prompt + len(words)}
        return text, finish, usage
