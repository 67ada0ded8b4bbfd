"""OTLP trace files and request bodies, read span by span.

An `ExportTraceServiceRequest` (opentelemetry-proto) comes as protobuf or as JSON (the
OTLP/JSON encoding: lowerCamelCase keys, hex ids; the protobuf JSON mapping's base64 ids
and snake_case keys are read too), either one request per file or one per line (the
Collector's file exporter). Files are streamed: protobuf by walking the wire format down
to each span (only one span is decoded at a time), JSON lines one line at a time, one JSON
document with ijson's event parser. Memory stays bounded by the largest span.

A span comes out as a plain dict: trace_id, span_id, parent_span_id (hex), name, kind,
start_ns, end_ns, attributes (flat dict), events [{name, time_ns, attributes}], status
{code, message}, resource (flat dict), scope (name).
"""

from __future__ import annotations

import base64
import json
import mmap
from pathlib import Path
from typing import Iterator

from core.formats.traces.calls import Malformed

# Span.StatusCode in opentelemetry-proto: 0 unset, 1 ok, 2 error.
STATUS_ERROR = 2


class Truncated(ValueError):
    """Protobuf that ends inside a field: the file or body was cut short."""


# --- protobuf ----------------------------------------------------------------------------

def _varint(buf, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise Truncated("protobuf ends inside a number")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise Truncated("protobuf number too long")


def _fields(buf, pos: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(field number, start, end) of each length-delimited field in buf[pos:end]; other
    wire types skipped."""
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if wire == 2:
            length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise Truncated("protobuf ends inside a field")
            yield number, pos, pos + length
            pos += length
        elif wire == 0:
            _, pos = _varint(buf, pos, end)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise Truncated(f"not OTLP protobuf (wire type {wire})")
        if pos > end:
            raise Truncated("protobuf ends inside a field")


RELEASE_EVERY = 16 * 1024 * 1024  # bytes of a mapped file read before its pages are let go


def protobuf_spans(buf) -> Iterator[dict]:
    """Every span of an ExportTraceServiceRequest in `buf` (bytes or an mmap). The pages of a
    mapped file already read are released as it goes: its resident memory stays bounded
    however large the file."""
    from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    released = 0
    mapped = isinstance(buf, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED")

    for number, start, end in _fields(buf, 0, len(buf)):
        if number != 1:  # resource_spans
            continue
        resource: dict = {}
        for field, s, e in _fields(buf, start, end):
            if field == 1:
                resource = {kv.key: _proto_value(kv.value) for kv in Resource.FromString(bytes(buf[s:e])).attributes}
            elif field == 2:  # scope_spans
                scope = ""
                for inner, ss, se in _fields(buf, s, e):
                    if inner == 1:
                        scope = InstrumentationScope.FromString(bytes(buf[ss:se])).name
                    elif inner == 2:
                        try:
                            span = Span.FromString(bytes(buf[ss:se]))
                        except Exception as error:  # protobuf's DecodeError
                            raise Truncated(f"a span is not valid protobuf ({error})") from None
                        yield _proto_span(span, resource, scope)
                        if mapped and se - released > RELEASE_EVERY:
                            upto = se - se % mmap.PAGESIZE
                            buf.madvise(mmap.MADV_DONTNEED, released, upto - released)
                            released = upto


def _proto_value(value):
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_proto_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _proto_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind)


def _proto_span(span, resource: dict, scope: str) -> dict:
    return {
        "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
        "parent_span_id": span.parent_span_id.hex() or None, "name": span.name, "kind": span.kind,
        "start_ns": span.start_time_unix_nano, "end_ns": span.end_time_unix_nano,
        "attributes": {kv.key: _proto_value(kv.value) for kv in span.attributes},
        "events": [{"name": e.name, "time_ns": e.time_unix_nano,
                    "attributes": {kv.key: _proto_value(kv.value) for kv in e.attributes}} for e in span.events],
        "status": {"code": span.status.code, "message": span.status.message},
        "resource": resource, "scope": scope,
    }


# --- JSON ------------------------------------------------------------------------------

def _get(obj: dict, camel: str, snake: str | None = None, default=None):
    if camel in obj:
        return obj[camel]
    return obj.get(snake or _snake(camel), default)


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def _json_value(value):
    if not isinstance(value, dict):
        return value
    for kind in ("stringValue", "string_value"):
        if kind in value:
            return value[kind]
    for kind in ("intValue", "int_value"):
        if kind in value:
            return int(value[kind])
    for kind in ("doubleValue", "double_value"):
        if kind in value:
            return float(value[kind])
    for kind in ("boolValue", "bool_value"):
        if kind in value:
            return bool(value[kind])
    for kind in ("arrayValue", "array_value"):
        if kind in value:
            return [_json_value(v) for v in (value[kind] or {}).get("values") or []]
    for kind in ("kvlistValue", "kvlist_value"):
        if kind in value:
            return _json_attributes((value[kind] or {}).get("values") or [])
    for kind in ("bytesValue", "bytes_value"):
        if kind in value:
            return value[kind]
    return None


def _json_attributes(items) -> dict:
    if not isinstance(items, list):
        raise Malformed("attributes are not a list")
    return {kv["key"]: _json_value(kv.get("value")) for kv in items if isinstance(kv, dict) and "key" in kv}


def _hex_id(value, size: int) -> str | None:
    """An id in OTLP/JSON (hex) or in the protobuf JSON mapping (base64)."""
    if not value:
        return None
    text = str(value)
    if len(text) == 2 * size:
        try:
            bytes.fromhex(text)
            return text.lower()
        except ValueError:
            pass
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise Malformed(f"not a span or trace id: {text[:40]!r}") from None
    if len(raw) != size:
        raise Malformed(f"not a span or trace id: {text[:40]!r}")
    return raw.hex()


def json_span(span: dict, resource: dict, scope: str) -> dict:
    if not isinstance(span, dict):
        raise Malformed("a span is not an object")
    status = _get(span, "status") or {}
    code = _get(status, "code", default=0)
    if isinstance(code, str):  # the enum by name in the protobuf JSON mapping
        code = {"STATUS_CODE_ERROR": 2, "STATUS_CODE_OK": 1}.get(code, 0)
    try:
        return {
            "trace_id": _hex_id(_get(span, "traceId"), 16), "span_id": _hex_id(_get(span, "spanId"), 8),
            "parent_span_id": _hex_id(_get(span, "parentSpanId"), 8), "name": _get(span, "name", default=""),
            "kind": _get(span, "kind", default=0),
            "start_ns": int(_get(span, "startTimeUnixNano", default=0) or 0),
            "end_ns": int(_get(span, "endTimeUnixNano", default=0) or 0),
            "attributes": _json_attributes(_get(span, "attributes", default=[]) or []),
            "events": [{"name": e.get("name", ""), "time_ns": int(_get(e, "timeUnixNano", default=0) or 0),
                        "attributes": _json_attributes(_get(e, "attributes", default=[]) or [])}
                       for e in _get(span, "events", default=[]) or []],
            "status": {"code": code, "message": _get(status, "message", default="")},
            "resource": resource, "scope": scope,
        }
    except (TypeError, ValueError, AttributeError, KeyError) as error:
        if isinstance(error, Malformed):
            raise
        raise Malformed(f"not an OTLP span ({error})") from None


def request_spans(request) -> Iterator[dict]:
    """Every span of one ExportTraceServiceRequest as parsed JSON; a span that cannot be
    read comes out as a Malformed exception in its place (the caller lists it)."""
    if not isinstance(request, dict) or not ("resourceSpans" in request or "resource_spans" in request):
        raise Malformed("not an OTLP trace request (no resourceSpans)")
    for resource_spans in _get(request, "resourceSpans") or []:
        resource = _json_attributes(((resource_spans or {}).get("resource") or {}).get("attributes") or [])
        for scope_spans in _get(resource_spans, "scopeSpans") or []:
            scope = ((scope_spans or {}).get("scope") or {}).get("name", "")
            for span in _get(scope_spans, "spans") or []:
                try:
                    yield json_span(span, resource, scope)
                except Malformed as error:
                    yield _Rejected(_span_label(span), str(error))


class _Rejected(dict):
    """A span that could not be read, in the stream of spans."""

    def __init__(self, where: str, reason: str):
        super().__init__(rejected=where, reason=reason)


def _span_label(span) -> str:
    if isinstance(span, dict):
        found = _get(span, "spanId")
        if found:
            return f"span {found}"
    return "a span"


def json_document_spans(stream) -> Iterator[dict]:
    """Spans of one (possibly huge) JSON ExportTraceServiceRequest, streamed with ijson."""
    import ijson

    resource: dict = {}
    scope = ""
    builder = None
    target = None
    depth = 0
    for prefix, event, value in ijson.parse(stream, use_float=True):
        if builder is not None:
            builder.event(event, value)
            depth += {"start_map": 1, "start_array": 1, "end_map": -1, "end_array": -1}.get(event, 0)
            if depth == 0:
                built = builder.value
                builder = None
                if target == "resource":
                    resource = _json_attributes((built or {}).get("attributes") or [])
                elif target == "scope":
                    scope = (built or {}).get("name", "")
                else:
                    try:
                        yield json_span(built, resource, scope)
                    except Malformed as error:
                        yield _Rejected(_span_label(built), str(error))
            continue
        parts = prefix.split(".")
        if event not in ("start_map",):
            continue
        if len(parts) == 3 and parts[0] in ("resourceSpans", "resource_spans") and parts[2] == "resource":
            target = "resource"
        elif len(parts) == 5 and parts[2] in ("scopeSpans", "scope_spans") and parts[4] == "scope":
            target = "scope"
        elif len(parts) == 6 and parts[4] == "spans" and parts[5] == "item":
            target = "span"
        else:
            if len(parts) == 2 and parts[1] == "item" and parts[0] in ("resourceSpans", "resource_spans"):
                resource, scope = {}, ""
            continue
        builder = ijson.ObjectBuilder()
        builder.event(event, value)
        depth = 1


def file_spans(path: Path, encoding: str) -> Iterator[dict]:
    """Spans of an OTLP file, `encoding` "json" or "protobuf"."""
    if encoding == "protobuf":
        with open(path, "rb") as handle:
            if path.stat().st_size == 0:
                return
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                yield from protobuf_spans(buf)
        return
    with open(path, "rb") as handle:
        first = handle.readline()
        try:
            first_request = json.loads(first)
        except ValueError:
            first_request = None
        if isinstance(first_request, dict):  # one request per line (the Collector's file exporter)
            handle.seek(0)
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    request = json.loads(line)
                    spans = list(request_spans(request))
                except (ValueError, Malformed) as error:
                    reason = str(error) if isinstance(error, Malformed) else "not valid JSON"
                    yield _Rejected(f"line {number}", reason)
                    continue
                yield from spans
            return
        handle.seek(0)
        try:
            yield from json_document_spans(handle)
        except Exception as error:  # ijson's IncompleteJSONError, JSONError
            if type(error).__module__.startswith("ijson"):
                raise Malformed(f"not valid JSON ({str(error).splitlines()[0][:80]})") from None
            raise


def body_spans(body: bytes, content_type: str) -> Iterator[dict]:
    """Spans of one OTLP/HTTP request body (already decompressed)."""
    if "json" in content_type:
        try:
            request = json.loads(body)
        except ValueError:
            raise Malformed("the body is not valid JSON") from None
        yield from request_spans(request)
    else:
        yield from protobuf_spans(body)
