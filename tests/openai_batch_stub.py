"""A loopback server speaking OpenAI's Files and Batch APIs (`/v1/files`, `/v1/batches`)
and, to prove it is never used, counting chat-completion calls. Standard library only.

A batch moves validating → in_progress → completed, one step per status read, answering
each line as the chat stub would (`answers`, chosen by the request's seed; `respond(body)`
to answer by what was asked). `hold = True` keeps batches in progress (a process killed
while its batch is pending); `expire_after = k` expires a batch with only its first k lines
done (the rest in the error file, as OpenAI reports them); cancel moves it to cancelled.

`BatchStub(together=True)` speaks Together's variant instead: the file's purpose must be
"batch-api", creating a batch answers `{"job": …}`, statuses are upper case with a
progress percentage and no counts, and every call needs `Authorization: Bearer <key>`.
"""
from __future__ import annotations

import json
import random
import threading
import time
from email.parser import BytesParser
from email.policy import default as default_policy
from http.server import ThreadingHTTPServer

from json_handler import JsonHandler


class _Handler(JsonHandler):
    server: "_Server"

    def _refused(self) -> bool:
        stub = self.server.stub
        if stub.together and self.headers.get("Authorization") != f"Bearer {stub.key}":
            self._json(401, {"error": {"message": "Invalid API key provided", "type": "invalid_request_error"}})
            return True
        return False

    def do_GET(self):
        stub = self.server.stub
        stub.paths.append(("GET", self.path))
        if self._refused():
            return
        if self.path.rstrip("/") == "/v1/models":
            return self._json(200, {"object": "list", "data": [{"id": "stub-a", "object": "model", "created": 0,
                                                                 "owned_by": "stub"}]})
        parts = self.path.rstrip("/").split("/")  # ["", "v1", "batches", id]
        if parts[2:3] == ["batches"] and len(parts) == 4:
            batch = stub.advance(parts[3])
            return self._json(200, batch) if batch else self._json(404, {"error": {"message": "no such batch"}})
        if parts[2:3] == ["files"] and len(parts) == 5 and parts[4] == "content":
            content = stub.files.get(parts[3])
            return self._send(200, content, "application/octet-stream") if content is not None else self._json(
                404, {"error": {"message": "no such file"}})
        return self._json(404, {"error": {"message": f"unknown path {self.path}"}})

    def do_POST(self):
        stub = self.server.stub
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        stub.paths.append(("POST", self.path))
        if self._refused():
            return
        path = self.path.rstrip("/")
        if path.endswith("/chat/completions"):
            stub.chat_calls += 1
            return self._json(500, {"error": {"message": "this stub answers only through batches"}})
        if path == "/v1/files":
            message = BytesParser(policy=default_policy).parsebytes(
                b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + raw)
            fields = {part.get_param("name", header="content-disposition"): part.get_content()
                      for part in message.iter_parts()}
            content = fields["file"]
            content = content if isinstance(content, bytes) else content.encode()
            if stub.together and str(fields.get("purpose")).strip() != "batch-api":
                return self._json(400, {"error": {"message": "purpose must be batch-api"}})
            file_id = stub.add_file(content)
            return self._json(200, {"id": file_id, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                                    "filename": "batch.jsonl", "purpose": str(fields.get("purpose", "batch")),
                                    "status": "processed"})
        body = json.loads(raw or b"{}")
        if path == "/v1/batches":
            created = stub.create(body)
            return self._json(200, {"job": created, "warning": None} if stub.together else created)
        if path.startswith("/v1/batches/") and path.endswith("/cancel"):
            return self._json(200, stub.cancel(path.split("/")[3]))
        return self._json(404, {"error": {"message": f"unknown path {self.path}"}})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    stub: "BatchStub"


class BatchStub:
    def __init__(self, answers: list[str] | None = None, *, together: bool = False):
        self.together, self.key = together, "tgp-stub-key-0000"
        self.answers = answers or ["Paris.", "The capital of France is Paris.", "Lyon."]
        self.respond = None
        self.hold = False
        self.expire_after: int | None = None
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        self.created: list[str] = []  # batch ids, in order of creation
        self.chat_calls = 0
        self.paths: list[tuple[str, str]] = []
        self._lock = threading.RLock()  # advance() finishes a batch, adding its files, under the lock
        self.base_url = ""

    def __enter__(self) -> "BatchStub":
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.stub = self
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add_file(self, content: bytes) -> str:
        with self._lock:
            file_id = f"file-{len(self.files) + 1}"
            self.files[file_id] = content
        return file_id

    def create(self, body: dict) -> dict:
        lines = [json.loads(line) for line in self.files[body["input_file_id"]].decode().splitlines() if line.strip()]
        with self._lock:
            batch_id = f"batch_{len(self.batches) + 1}"
            self.batches[batch_id] = {
                "id": batch_id, "object": "batch", "endpoint": body["endpoint"], "errors": None,
                "input_file_id": body["input_file_id"], "completion_window": body.get("completion_window", "24h"),
                "status": "validating", "output_file_id": None, "error_file_id": None,
                "created_at": int(time.time()), "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
                "metadata": body.get("metadata"), "_lines": lines}
            self.created.append(batch_id)
        return self.shown(batch_id)

    def shown(self, batch_id: str) -> dict:
        batch = {k: v for k, v in self.batches[batch_id].items() if not k.startswith("_")}
        if self.together:
            counts = batch.pop("request_counts")
            batch["status"] = {"cancelling": "IN_PROGRESS"}.get(batch["status"], batch["status"].upper())
            batch["progress"] = 100.0 * (counts["completed"] + counts["failed"]) / max(1, counts["total"])
        return batch

    def advance(self, batch_id: str) -> dict | None:
        with self._lock:
            batch = self.batches.get(batch_id)
            if batch is None:
                return None
            if batch["status"] == "validating":
                batch["status"] = "in_progress"
            elif batch["status"] == "in_progress" and not self.hold:
                self._finish(batch)
            elif batch["status"] == "cancelling":
                batch["status"] = "cancelled"
        return self.shown(batch_id)

    def cancel(self, batch_id: str) -> dict:
        with self._lock:
            self.batches[batch_id]["status"] = "cancelling"
        return self.shown(batch_id)

    def _finish(self, batch: dict) -> None:
        lines = batch["_lines"]
        done = lines if self.expire_after is None else lines[:self.expire_after]
        out = [json.dumps({"id": f"req_{k}", "custom_id": line["custom_id"], "error": None, "response": {
            "status_code": 200, "request_id": f"r{k}", "body": self._completion(line["body"])}})
            for k, line in enumerate(done)]
        errors = [json.dumps({"id": f"req_x{k}", "custom_id": line["custom_id"], "response": None, "error": {
            "code": "batch_expired", "message": "This request could not be executed before the completion window "
                                                "expired."}}) for k, line in enumerate(lines[len(done):])]
        batch["output_file_id"] = self.add_file(("\n".join(out) + "\n").encode()) if out else None
        batch["error_file_id"] = self.add_file(("\n".join(errors) + "\n").encode()) if errors else None
        batch["request_counts"] = {"total": len(lines), "completed": len(done), "failed": len(errors)}
        batch["status"] = "completed" if self.expire_after is None else "expired"

    def _completion(self, body: dict) -> dict:
        if self.respond is not None:
            text = self.respond(body)
        elif body.get("temperature") == 0:
            text = self.answers[0]
        else:
            text = self.answers[random.Random(body.get("seed")).randrange(len(self.answers))]
        return {"id": "chatcmpl-b", "object": "chat.completion", "created": 0, "model": body["model"] + "-batch",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 7, "completion_tokens": len(text.split()),
                          "total_tokens": 7 + len(text.split())}}
