"""`spread collect`: an OTLP/HTTP trace receiver (POST /v1/traces), so an instrumented app
points its OTLP exporter at Spread.

It takes protobuf (`application/x-protobuf`) and JSON (`application/json`) bodies, gzip
or not, checks a bearer token when one is set, stores the LLM calls of the request in one
transaction and only then answers — `ExportTraceServiceResponse` in the request's
encoding, with `partial_success` counting the spans it could not read. It does no analysis
(the Traces page does that from the store), so a sender waits only for the write. A store
that cannot be written answers 503, which OTLP exporters retry; a malformed body answers
400, which they do not.
"""

from __future__ import annotations

import hmac
import json
import sys
import threading
import zlib
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from core.formats.traces import otlp, spans
from core.formats.traces import redacted_row
from core.formats.traces.calls import Malformed
from core.formats.traces.secrets import Redactor
from core.store import Store
from core.store import traces as stored

MAX_BODY = 32 * 1024 * 1024  # bytes, after decompression: a bigger request is refused (413)
PATH = "/v1/traces"


@dataclass
class Totals:
    """What the receiver has done since it started (for its log line and the tests)."""
    requests: int = 0
    stored: int = 0
    duplicates: int = 0
    skipped: int = 0
    rejected: int = 0
    redactions: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class Collector(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, store: Store, host: str = "127.0.0.1", port: int = 4318, *, token: str | None = None,
                 redact_pii: bool = False, quiet: bool = False):
        self.store, self.token, self.redact_pii, self.quiet = store, token, redact_pii, quiet
        self.totals = Totals()
        super().__init__((host, port), _Handler)

    def log(self, line: str) -> None:
        print(f"spread collect: {line}", file=sys.stderr, flush=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}{PATH}"

    def receive(self, body: bytes, content_type: str) -> tuple[int, int, str]:
        """Store the LLM calls of one request body: (stored, rejected, first rejection)."""
        redactor = Redactor(redact_pii=self.redact_pii)
        rows, rejected, skipped, reasons = [], 0, 0, []
        for span in otlp.body_spans(body, content_type):
            if "rejected" in span:
                rejected += 1
                reasons.append(f"{span['rejected']}: {span['reason']}")
                continue
            try:
                call = spans.call_from_span(span)
            except Malformed as error:
                rejected += 1
                reasons.append(f"span {span['span_id']}: {error}")
                continue
            if call is None:
                skipped += 1
                continue
            rows.append(redacted_row(call, redactor, "collector"))
        new = 0
        if rows:
            with self.store.transaction() as db:
                new = stored.insert_calls(db, rows)
        with self.totals.lock:
            totals = self.totals
            totals.requests += 1
            totals.stored += new
            totals.duplicates += len(rows) - new
            totals.skipped += skipped
            totals.rejected += rejected
            for kind, n in redactor.counts.items():
                totals.redactions[kind] = totals.redactions.get(kind, 0) + n
        return new, rejected, "; ".join(reasons[:3])


def _decompressed(body: bytes, encoding: str) -> bytes:
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise _Refused(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"Content-Encoding {encoding} is not supported (gzip is)")
    inflater = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
    try:
        data = inflater.decompress(body, MAX_BODY + 1)
    except zlib.error:
        raise _Refused(HTTPStatus.BAD_REQUEST, f"the body is not valid {encoding}") from None
    if len(data) > MAX_BODY:
        raise _Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "the request is too large once decompressed")
    return data


class _Refused(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


class _Handler(BaseHTTPRequestHandler):
    server: Collector
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        as_json = content_type == "application/json"
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                raise _Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "the request is too large")
            body = self.rfile.read(length)  # read it all first: the connection stays usable
            if self.path.split("?")[0] != PATH:
                raise _Refused(HTTPStatus.NOT_FOUND, f"only {PATH} is served")
            if self.server.token is not None:
                given = self.headers.get("Authorization") or ""
                if not hmac.compare_digest(given.encode(), f"Bearer {self.server.token}".encode()):
                    raise _Refused(HTTPStatus.UNAUTHORIZED, "a bearer token is required")
            if content_type not in ("application/x-protobuf", "application/json", "application/protobuf"):
                raise _Refused(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                               "Content-Type must be application/x-protobuf or application/json")
            body = _decompressed(body, (self.headers.get("Content-Encoding") or "").strip().lower())
            try:
                new, rejected, reason = self.server.receive(body, content_type)
            except (Malformed, otlp.Truncated) as error:
                raise _Refused(HTTPStatus.BAD_REQUEST, f"not an OTLP trace request: {error}") from None
            except Exception as error:  # the store: the sender keeps the spans and retries
                self.server.log(f"store failed: {type(error).__name__}")
                raise _Refused(HTTPStatus.SERVICE_UNAVAILABLE, "the store is unavailable; retry later") from None
        except _Refused as refused:
            self._answer(refused.status, _status_body(str(refused), as_json), as_json)
            return
        self._answer(HTTPStatus.OK, _success_body(rejected, reason, as_json), as_json)
        if not self.server.quiet and (new or rejected):
            self.server.log(f"stored {new} call(s)" + (f", rejected {rejected} span(s)" if rejected else ""))

    def do_GET(self) -> None:  # noqa: N802
        self._answer(HTTPStatus.METHOD_NOT_ALLOWED, b"POST OTLP traces to /v1/traces\n", False, "text/plain")

    def _answer(self, status: HTTPStatus, body: bytes, as_json: bool, content_type: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type or ("application/json" if as_json else "application/x-protobuf"))
        self.send_header("Content-Length", str(len(body)))
        if status == HTTPStatus.SERVICE_UNAVAILABLE:
            self.send_header("Retry-After", "5")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # headers (a token) are never logged
        pass


def _success_body(rejected: int, reason: str, as_json: bool) -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = reason
    if as_json:
        body = {"partialSuccess": {"rejectedSpans": str(rejected), "errorMessage": reason}} if rejected else {}
        return json.dumps(body).encode()
    return response.SerializeToString()


def _status_body(message: str, as_json: bool) -> bytes:
    """OTLP answers an error with a google.rpc.Status; only its `message` (field 2) is
    set, written by hand so the receiver needs no more than opentelemetry-proto."""
    if as_json:
        return json.dumps({"message": message}).encode()
    text = message.encode()
    size, length = bytearray(), len(text)
    while True:
        size.append((length & 0x7F) | (0x80 if length > 0x7F else 0))
        length >>= 7
        if not length:
            break
    return b"\x12" + bytes(size) + text
