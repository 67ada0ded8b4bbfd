"""What the batch stubs share: a request handler speaking HTTP/1.1 with no access log, a
JSON body per answer and the connection closed after it (so a client never reads a stale
keep-alive); and, for the stubs of one provider's batch API, their server thread and the
state every such stub keeps."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class JsonHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def _send(self, status: int, data: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def _json(self, status: int, obj) -> None:
        self._send(status, json.dumps(obj).encode())


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    stub: "BatchStubBase"


class BatchStubBase:
    """A provider's batch API on a free loopback port while `with Stub() as stub:` lasts. A
    batch is in progress for `steps` status reads, then done with each request answered with
    `answers` in turn; `hold = True` keeps batches in progress, `expire_after = k` ends one
    with only its first k requests answered. `paths` lists the requests the stub saw,
    `created` the batches, `live_calls` the calls made outside any batch."""

    handler: type[JsonHandler]

    def __init__(self, answers=("Paris.", "The capital of France is Paris.", "Lyon."), steps: int = 2):
        self.answers, self.steps = list(answers), steps
        self.hold = False
        self.expire_after: int | None = None
        self.requests: dict[str, list[dict]] = {}
        self.reads: dict[str, int] = {}
        self.paths: list[tuple[str, str]] = []
        self.live_calls = 0
        self.created: list[str] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), self.handler)
        self._server.stub = self
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
