"""A loopback server speaking Anthropic's Message Batches (`/v1/messages/batches`), and, to
prove it is never used, counting live `/v1/messages` calls. Standard library only.

A batch is in_progress for `steps` status reads, then ended; each request is answered with
`answers` (in turn) as an Anthropic message, with usage. It checks what Anthropic checks:
the `x-api-key` and `anthropic-version` headers, `max_tokens` on every request, and no
`seed` (Anthropic's API has none). `hold = True` keeps batches in progress; `expire_after
= k` ends a batch with only its first k requests answered, the rest expired; a cancel
ends it with the requests not yet answered canceled.
"""
from __future__ import annotations

import json

from json_handler import BatchStubBase, JsonHandler


class _Handler(JsonHandler):

    def _refused(self) -> bool:
        stub = self.server.stub
        if self.headers.get("x-api-key") != stub.key or not self.headers.get("anthropic-version"):
            self._json(401, {"type": "error", "error": {"type": "authentication_error",
                                                         "message": "invalid x-api-key"}})
            return True
        return False

    def do_GET(self):
        stub = self.server.stub
        stub.paths.append(("GET", self.path))
        if self._refused():
            return
        parts = self.path.rstrip("/").split("/")  # ["", "v1", "messages", "batches", id, ("results")]
        batch = stub.batches.get(parts[4]) if len(parts) >= 5 and parts[2:4] == ["messages", "batches"] else None
        if batch is None:
            return self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": "no batch"}})
        if len(parts) == 6 and parts[5] == "results":
            if batch["processing_status"] != "ended":
                return self._json(400, {"type": "error", "error": {"type": "invalid_request_error",
                                                                    "message": "batch not ended"}})
            body = "\n".join(json.dumps(r) for r in stub.results[batch["id"]]) + "\n"
            return self._send(200, body.encode(), "application/binary")
        return self._json(200, stub.advance(batch["id"]))

    def do_POST(self):
        stub = self.server.stub
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        stub.paths.append(("POST", self.path))
        if self._refused():
            return
        parts = self.path.rstrip("/").split("/")
        if parts[2:] == ["messages"]:
            stub.live_calls += 1
            return self._json(500, {"type": "error", "error": {"type": "api_error", "message": "not in this test"}})
        if parts[2:] == ["messages", "batches"]:
            requests = json.loads(raw)["requests"]
            for request in requests:
                params = request["params"]
                if "max_tokens" not in params or "seed" in params:
                    return self._json(400, {"type": "error", "error": {
                        "type": "invalid_request_error", "message": "max_tokens is required; seed is unknown"}})
            return self._json(200, stub.create(requests))
        if len(parts) == 6 and parts[2:4] == ["messages", "batches"] and parts[5] == "cancel":
            return self._json(200, stub.cancel(parts[4]))
        return self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": self.path}})


class AnthropicBatchStub(BatchStubBase):
    handler = _Handler

    def __init__(self, answers=("Paris.", "The capital of France is Paris.", "Lyon."), steps: int = 2):
        super().__init__(answers, steps)
        self.key = "sk-ant-test-key-123456"
        self.batches: dict[str, dict] = {}
        self.results: dict[str, list[dict]] = {}

    def _counts(self, batch_id: str) -> dict:
        kinds = [r["result"]["type"] for r in self.results.get(batch_id, [])]
        pending = len(self.requests[batch_id]) - len(kinds)
        return {"processing": pending, "succeeded": kinds.count("succeeded"), "errored": kinds.count("errored"),
                "canceled": kinds.count("canceled"), "expired": kinds.count("expired")}

    def create(self, requests: list[dict]) -> dict:
        with self._lock:
            batch_id = f"msgbatch_{len(self.batches) + 1:04d}"
            self.requests[batch_id] = requests
            self.reads[batch_id] = 0
            self.batches[batch_id] = {"id": batch_id, "type": "message_batch", "processing_status": "in_progress",
                                      "results_url": None, "request_counts": {}}
            self.created.append(batch_id)
            self.batches[batch_id]["request_counts"] = self._counts(batch_id)
            return self.batches[batch_id]

    def _answer(self, k: int, request: dict) -> dict:
        text = self.answers[k % len(self.answers)]
        return {"custom_id": request["custom_id"], "result": {"type": "succeeded", "message": {
            "id": f"msg_{k}", "type": "message", "role": "assistant", "model": request["params"]["model"] + "-20250101",
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 12, "output_tokens": len(text.split())}}}}

    def _end(self, batch_id: str, *, answered: int, rest: str) -> None:
        requests = self.requests[batch_id]
        self.results[batch_id] = [self._answer(k, r) for k, r in enumerate(requests[:answered])] + [
            {"custom_id": r["custom_id"], "result": {"type": rest}} for r in requests[answered:]]
        batch = self.batches[batch_id]
        batch.update(processing_status="ended", request_counts=self._counts(batch_id),
                     results_url=f"{self.base_url}/v1/messages/batches/{batch_id}/results")

    def advance(self, batch_id: str) -> dict:
        with self._lock:
            batch = self.batches[batch_id]
            self.reads[batch_id] += 1
            if batch["processing_status"] == "in_progress" and not self.hold and self.reads[batch_id] >= self.steps:
                total = len(self.requests[batch_id])
                self._end(batch_id, answered=total if self.expire_after is None else self.expire_after,
                          rest="expired")
            return dict(batch)

    def cancel(self, batch_id: str) -> dict:
        with self._lock:
            if self.batches[batch_id]["processing_status"] != "ended":
                self._end(batch_id, answered=0, rest="canceled")
            return dict(self.batches[batch_id])
