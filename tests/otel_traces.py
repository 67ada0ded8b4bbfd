"""Trace files made by the real OpenTelemetry SDK: spans recorded with opentelemetry-sdk,
encoded by the OTLP exporter's own encoder (opentelemetry-exporter-otlp-proto-common) as
an ExportTraceServiceRequest, written as protobuf or as JSON."""

from __future__ import annotations

import json

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode


_stores: dict = {}


def shared():
    """The test's Store on $SPREAD_DB (one per database in this process, as a server has)."""
    from core import config
    from core.store import Store

    target = str(config.db_path())
    if target not in _stores:
        _stores[target] = Store(target)
    return _stores[target]


class Recorder:
    """A tracer provider whose finished spans are kept in memory."""

    def __init__(self, service: str = "shop-api"):
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(resource=Resource.create({"service.name": service}))
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("test.instrumentation")

    def span(self, name: str, attributes: dict, events: list[tuple[str, dict]] = (), error: str | None = None,
             start: int | None = None, end: int | None = None):
        span = self.tracer.start_span(name, attributes=attributes, start_time=start)
        for event_name, event_attributes in events:
            span.add_event(event_name, event_attributes)
        if error:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=end)
        return span

    def request(self):
        return encode_spans(self.exporter.get_finished_spans())

    def protobuf(self) -> bytes:
        return self.request().SerializeToString()

    def json(self) -> str:
        """OTLP/JSON: hex ids, as the OTLP/JSON encoding (and the Collector) writes them."""
        data = json_format.MessageToDict(self.request())
        for resource_spans in data.get("resourceSpans", []):
            for scope_spans in resource_spans.get("scopeSpans", []):
                for span in scope_spans.get("spans", []):
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in span:
                            import base64
                            span[key] = base64.b64decode(span[key]).hex()
        return json.dumps(data)


def current_chat(recorder: Recorder, question: str, answer: str, *, model: str = "gpt-4o-mini",
                 system: str = "You are a helpful shop assistant.", extra: dict | None = None, **kw):
    """A chat call in the GenAI conventions' current layout (v1.37)."""
    return recorder.span(f"chat {model}", {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": model,
        "gen_ai.response.model": model + "-2024-07-18", "gen_ai.request.temperature": 0.7,
        "gen_ai.request.max_tokens": 200, "gen_ai.usage.input_tokens": 25, "gen_ai.usage.output_tokens": 9,
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.system_instructions": json.dumps([{"type": "text", "content": system}]),
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": question}]}]),
        "gen_ai.output.messages": json.dumps([{"role": "assistant", "finish_reason": "stop",
                                               "parts": [{"type": "text", "content": answer}]}]),
        **(extra or {})}, **kw)
