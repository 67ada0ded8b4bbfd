"""A loopback server speaking the Gemini API's batch mode (`models/{m}:batchGenerateContent`,
`batches/{id}`, `batches/{id}:cancel`), and, to prove it is never used, counting live
`models/{m}:generateContent` calls. Standard library only.

A batch is an operation: BATCH_STATE_PENDING for `steps` status reads, then
BATCH_STATE_SUCCEEDED with every answer inline, keyed by its request's metadata key;
counts are strings and zero counts are left out, as Google's JSON does. It checks the
`x-goog-api-key` header and that every request is a `generateContent` request (contents
with parts). `hold = True` keeps batches pending; `expire_after = k` ends a batch
BATCH_STATE_EXPIRED with only its first k requests answered; a cancel ends it
BATCH_STATE_CANCELLED with none.
"""
from __future__ import annotations

import json

from json_handler import BatchStubBase, JsonHandler

BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
OUTPUT_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput"


def _error(status: int, code: str, message: str) -> dict:
    return {"error": {"code": status, "message": message, "status": code}}


class _Handler(JsonHandler):

    def _refused(self) -> bool:
        if self.headers.get("x-goog-api-key") != self.server.stub.key:
            self._json(400, _error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key."))
            return True
        return False

    def do_GET(self):
        stub = self.server.stub
        stub.paths.append(("GET", self.path))
        if self._refused():
            return
        name = self.path.removeprefix("/v1beta/")
        if name not in stub.operations:
            return self._json(404, _error(404, "NOT_FOUND", "no batch"))
        return self._json(200, stub.advance(name))

    def do_POST(self):
        stub = self.server.stub
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        stub.paths.append(("POST", self.path))
        if self._refused():
            return
        path = self.path.removeprefix("/v1beta/")
        if path.startswith("models/") and path.endswith(":generateContent"):
            stub.live_calls += 1
            return self._json(500, _error(500, "INTERNAL", "not in this test"))
        if path.startswith("models/") and path.endswith(":batchGenerateContent"):
            model = path.removeprefix("models/").removesuffix(":batchGenerateContent")
            items = json.loads(raw)["batch"]["input_config"]["requests"]["requests"]
            for item in items:
                contents = item["request"].get("contents")
                if not contents or not all(content.get("parts") for content in contents):
                    return self._json(400, _error(400, "INVALID_ARGUMENT", "contents must have parts"))
            return self._json(200, stub.create(model, items))
        if path.startswith("batches/") and path.endswith(":cancel"):
            stub.cancel(path.removesuffix(":cancel"))
            return self._json(200, {})
        return self._json(404, _error(404, "NOT_FOUND", self.path))


class GeminiBatchStub(BatchStubBase):
    handler = _Handler

    def __init__(self, answers=("Paris.", "The capital of France is Paris.", "Lyon."), steps: int = 2):
        super().__init__(answers, steps)
        self.key = "AIza-test-key-1234567890"
        self.operations: dict[str, dict] = {}

    def create(self, model: str, items: list[dict]) -> dict:
        with self._lock:
            name = f"batches/stub{len(self.operations) + 1:04d}"
            self.requests[name] = items
            self.reads[name] = 0
            self.operations[name] = {"name": name, "metadata": {
                "@type": BATCH_TYPE, "model": f"models/{model}", "displayName": "spread", "name": name,
                "state": "BATCH_STATE_PENDING",
                "batchStats": {"requestCount": str(len(items)), "pendingRequestCount": str(len(items))}}}
            self.created.append(name)
            return json.loads(json.dumps(self.operations[name]))

    def _answer(self, k: int, item: dict, model: str) -> dict:
        text = self.answers[k % len(self.answers)]
        return {"response": {"candidates": [{"content": {"parts": [{"text": text}], "role": "model"},
                                             "finishReason": "STOP", "index": 0}],
                             "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": len(text.split()),
                                               "totalTokenCount": 12 + len(text.split())},
                             "modelVersion": model + "-001"},
                "metadata": item["metadata"]}

    def _end(self, name: str, state: str, answered: int) -> None:
        operation = self.operations[name]
        model = operation["metadata"]["model"].removeprefix("models/")
        items = self.requests[name]
        stats = {"requestCount": str(len(items))}
        if answered:
            stats["successfulRequestCount"] = str(answered)
        operation["metadata"].update(state=state, batchStats=stats)
        operation["done"] = True
        if answered:
            operation["response"] = {"@type": OUTPUT_TYPE, "inlinedResponses": {"inlinedResponses": [
                self._answer(k, item, model) for k, item in enumerate(items[:answered])]}}

    def advance(self, name: str) -> dict:
        with self._lock:
            operation = self.operations[name]
            self.reads[name] += 1
            if not operation.get("done") and not self.hold and self.reads[name] >= self.steps:
                total = len(self.requests[name])
                if self.expire_after is None:
                    self._end(name, "BATCH_STATE_SUCCEEDED", total)
                else:
                    self._end(name, "BATCH_STATE_EXPIRED", self.expire_after)
            return json.loads(json.dumps(operation))

    def cancel(self, name: str) -> None:
        with self._lock:
            if not self.operations[name].get("done"):
                self._end(name, "BATCH_STATE_CANCELLED", 0)
