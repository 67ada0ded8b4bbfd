"""Production traces in: files of LLM calls (OTLP as JSON or protobuf with the GenAI
semantic conventions or OpenInference, Langfuse exports, OpenAI chat-completion logs) and
OTLP/HTTP requests (collector.py) become rows of `llm_calls` (core/store/traces.py).

The package: otlp.py (OTLP files and bodies, span by span), spans.py (a span as an LLM
call: GenAI v1.37.0 and its older layouts, OpenInference), records.py (Langfuse, OpenAI
logs), calls.py (the call as stored), secrets.py (what never reaches the database),
collector.py (the OTLP/HTTP receiver), this module (the importer). May import what
core.formats may.

Files are streamed and written in batches, one transaction each: a 1,000,000-span file
never sits in memory. A record that is not an LLM call (an HTTP span, a Langfuse SPAN) is
skipped and counted; a malformed one is listed with its line or span id and skipped; the
same call imported twice is stored once.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable, Iterator

from core.config import SpreadError
from core.formats.traces import otlp, records, spans
from core.formats.traces.calls import Call, Malformed, line_key
from core.formats.traces.secrets import Redactor
from core.store import Store, now_iso
from core.store import traces as stored

FORMATS = ("auto", "otlp-json", "otlp-protobuf", "openinference", "langfuse", "openai-jsonl")
BATCH = 1000
MAX_LISTED = 10_000  # rejected records listed one by one; beyond, only counted


@dataclass
class Report:
    """What an import did; `as_dict()` is `spread import-traces --json`'s last line."""
    imported: int = 0
    skipped: int = 0  # not LLM calls
    rejected: int = 0  # malformed
    duplicates: int = 0  # stored already (or twice in the input)
    filtered_out: int = 0  # LLM calls outside --since/--until/--service/--model
    rejected_items: list[dict] = field(default_factory=list)
    redactions: dict[str, int] = field(default_factory=dict)
    formats: dict[str, str] = field(default_factory=dict)  # file -> format read
    dry_run: bool = False

    def reject(self, file: str, where: str, reason: str) -> None:
        self.rejected += 1
        if len(self.rejected_items) < MAX_LISTED:
            self.rejected_items.append({"file": file, "where": where, "reason": reason})

    def as_dict(self) -> dict:
        return {"imported": self.imported, "skipped": self.skipped, "rejected": self.rejected,
                "duplicates": self.duplicates, "filtered_out": self.filtered_out,
                "rejected_items": self.rejected_items,
                "rejected_items_truncated": self.rejected > len(self.rejected_items),
                "redactions": self.redactions, "formats": self.formats, "dry_run": self.dry_run}


@dataclass
class Selection:
    """Which calls an import keeps (times as ISO 8601 UTC)."""
    since: str | None = None
    until: str | None = None
    service: str | None = None
    model: str | None = None

    def keeps(self, call: Call) -> bool:
        if self.since and (not call.started_at or call.started_at < self.since):
            return False
        if self.until and (not call.started_at or call.started_at >= self.until):
            return False
        if self.service and call.service != self.service:
            return False
        return not self.model or self.model in (call.model_requested, call.model_reported)

    def any(self) -> bool:
        return any((self.since, self.until, self.service, self.model))


def parse_time(text: str, option: str, now: datetime | None = None) -> str:
    """An ISO 8601 time or date (UTC unless it says), or a duration back from now
    (`90m`, `24h`, `7d`), as ISO 8601 UTC."""
    now = now or datetime.now(timezone.utc)
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text or "")
    if found:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[found[2]]
        return (now - timedelta(**{unit: float(found[1])})).isoformat(timespec="microseconds")
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise SpreadError(f"{option}: {text!r} is not a time (ISO 8601 like 2026-12-01T08:00, or 24h, 7d)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


# --- what a file is ------------------------------------------------------------------------

def sniff(path: Path) -> str:
    """The format of a file, from its name and first record; SpreadError when it is empty
    or not a trace file Spread reads."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(65536)
    except OSError as error:
        raise SpreadError(f"cannot read {path}: {error.strerror or error}") from None
    if size == 0 or not head.strip():
        raise SpreadError(f"{path} is empty")
    if path.suffix.lower() == ".csv":
        return "langfuse"
    start = head.lstrip()[:1]
    if start not in (b"{", b"["):
        if path.suffix.lower() in (".json", ".jsonl", ".ndjson"):
            raise SpreadError(f"{path} is not JSON")
        try:
            head.decode("utf-8")
            looks_text = True
        except UnicodeDecodeError:
            looks_text = False
        if looks_text and path.suffix.lower() not in (".pb", ".bin", ".protobuf", ".otlp"):
            raise SpreadError(f"{path} is not a trace file (not JSON, CSV or OTLP protobuf)")
        return "otlp-protobuf"
    first = _first_record(path)
    if isinstance(first, dict) and ("resourceSpans" in first or "resource_spans" in first):
        return "otlp-json"
    if records.is_langfuse(first):
        return "langfuse"
    if records.is_openai(first):
        return "openai-jsonl"
    raise SpreadError(f"{path} is JSON but not a trace: expected OTLP (resourceSpans), Langfuse observations "
                      "or OpenAI chat-completion logs (request and response per line)")


def _first_record(path: Path):
    """The first record of a JSON lines file, of a JSON array, or the keys of one JSON
    document (enough to tell what it is)."""
    import ijson

    with open(path, "rb") as handle:
        line = handle.readline()
    try:
        return json.loads(line)
    except ValueError:
        pass
    with open(path, "rb") as handle:
        try:
            for prefix, event, value in ijson.parse(handle):
                if prefix == "" and event == "start_array":
                    handle.seek(0)
                    return next(iter(ijson.items(handle, "item", use_float=True)), None)
                if prefix == "" and event == "map_key":
                    if value in ("resourceSpans", "resource_spans"):
                        return {value: []}
                    if value == "data":
                        handle.seek(0)
                        return next(iter(ijson.items(handle, "data.item", use_float=True)), None)
        except Exception as error:
            if type(error).__module__.startswith("ijson"):
                raise SpreadError(f"{path} is not valid JSON") from None
            raise
    return None


# --- records -------------------------------------------------------------------------------

SKIPPED = object()


@dataclass
class Rejected:
    where: str
    reason: str


def read(path: Path, fmt: str) -> Iterator[Call | Rejected | object]:
    """A file's records in order: a Call, SKIPPED (not an LLM call) or Rejected."""
    if fmt in ("otlp-json", "otlp-protobuf", "openinference"):
        encoding = "protobuf" if fmt == "otlp-protobuf" else "json"
        if fmt == "openinference":  # OpenInference is OTLP: JSON or protobuf, as the file is
            with open(path, "rb") as handle:
                encoding = "json" if handle.read(64).lstrip()[:1] in (b"{", b"[") else "protobuf"
        yield from _spans(otlp.file_spans(path, encoding))
    elif fmt == "langfuse":
        yield from _langfuse(path)
    elif fmt == "openai-jsonl":
        yield from _openai(path)
    else:
        raise SpreadError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")


def _spans(found: Iterable[dict]) -> Iterator[Call | Rejected | object]:
    iterator = iter(found)
    while True:
        try:
            span = next(iterator)
        except StopIteration:
            return
        except otlp.Truncated as error:
            yield Rejected("end of file", f"truncated protobuf: {error}; the spans before it were read")
            return
        except Malformed as error:
            yield Rejected("file", str(error))
            return
        if "rejected" in span:
            yield Rejected(span["rejected"], span["reason"])
            continue
        try:
            call = spans.call_from_span(span)
        except Malformed as error:
            yield Rejected(f"span {span['span_id']}", str(error))
            continue
        yield SKIPPED if call is None else call


def _lines(path: Path) -> Iterator[tuple[int, bytes, object]]:
    """(line number, raw line, parsed JSON or a Malformed) per non-blank line."""
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield number, line, json.loads(line)
            except ValueError:
                yield number, line, Malformed("not valid JSON")


def _is_json_lines(path: Path) -> bool:
    with open(path, "rb") as handle:
        first = handle.readline()
    try:
        return isinstance(json.loads(first), dict)
    except ValueError:
        return False


def _langfuse(path: Path) -> Iterator[Call | Rejected | object]:
    def one(where: str, record) -> Call | Rejected | object:
        if isinstance(record, Malformed):
            return Rejected(where, str(record))
        if records.is_openai(record) or (isinstance(record, dict) and "resourceSpans" in record):
            return Rejected(where, "not a Langfuse observation (another format in a Langfuse file)")
        try:
            call = records.langfuse_call(record)
        except Malformed as error:
            return Rejected(where, str(error))
        return SKIPPED if call is None else call

    if path.suffix.lower() == ".csv":
        import csv

        with open(path, newline="", encoding="utf-8-sig") as handle:
            for number, row in enumerate(csv.DictReader(handle), 2):
                yield one(f"line {number}", row)
    elif _is_json_lines(path):
        for number, _, record in _lines(path):
            yield one(f"line {number}", record)
    else:
        import ijson

        with open(path, "rb") as handle:
            is_array = handle.read(1024).lstrip()[:1] == b"["
            handle.seek(0)
            try:
                for k, record in enumerate(ijson.items(handle, "item" if is_array else "data.item", use_float=True)):
                    yield one(f"item {k}", record)
            except Exception as error:
                if type(error).__module__.startswith("ijson"):
                    yield Rejected("end of file", "not valid JSON from here on")
                else:
                    raise


def _openai(path: Path) -> Iterator[Call | Rejected | object]:
    for number, line, record in _lines(path):
        where = f"line {number}"
        if isinstance(record, Malformed):
            yield Rejected(where, str(record))
            continue
        if records.is_langfuse(record) or (isinstance(record, dict) and "resourceSpans" in record):
            yield Rejected(where, "not an OpenAI log line (another format in an OpenAI JSONL file)")
            continue
        try:
            yield records.openai_call(record, line_key(line))
        except Malformed as error:
            yield Rejected(where, str(error))


# --- the importer --------------------------------------------------------------------------

def import_files(store: Store | None, paths: list[str | Path], *, fmt: str = "auto",
                 selection: Selection | None = None, dry_run: bool = False, redact_pii: bool = False,
                 batch: int = BATCH) -> Report:
    """Import trace files into `llm_calls`: every file is checked to be a trace file first
    (nothing is written when one is not), then read record by record and written in
    batches, one transaction each (`dry_run`: nothing written, the same counts)."""
    if fmt not in FORMATS:
        raise SpreadError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")
    selection = selection or Selection()
    files = [Path(p) for p in paths]
    if not files:
        raise SpreadError("no trace file given")
    formats = {}
    for path in files:
        if not path.is_file():
            raise SpreadError(f"{path}: no such file")
        formats[path] = sniff(path) if fmt == "auto" else _checked(path, fmt)
    report = Report(dry_run=dry_run, formats={str(p): f for p, f in formats.items()})
    redactor = Redactor(redact_pii=redact_pii)
    for path, found_format in formats.items():
        writer = _Writer(store, report, redactor, source=path.name, dry_run=dry_run, batch=batch)
        for record in read(path, found_format):
            if record is SKIPPED:
                report.skipped += 1
            elif isinstance(record, Rejected):
                report.reject(str(path), record.where, record.reason)
            elif not selection.keeps(record):
                report.filtered_out += 1
            else:
                writer.add(record)
        writer.flush()
    report.redactions = dict(redactor.counts)
    return report


def _checked(path: Path, fmt: str) -> str:
    """--format given: still refuse an empty file, and a JSON format for a binary file."""
    if path.stat().st_size == 0:
        raise SpreadError(f"{path} is empty")
    if fmt in ("otlp-json", "langfuse", "openai-jsonl") and path.suffix.lower() != ".csv":
        with open(path, "rb") as handle:
            if handle.read(1024).lstrip()[:1] not in (b"{", b"["):
                raise SpreadError(f"{path} is not JSON (--format {fmt})")
    return fmt


class _Writer:
    """Calls redacted, batched, each batch written in one transaction."""

    def __init__(self, store: Store | None, report: Report, redactor: Redactor, *, source: str, dry_run: bool,
                 batch: int):
        self.store, self.report, self.redactor = store, report, redactor
        self.source, self.dry_run, self.batch = source, dry_run, batch
        self.rows: list[dict] = []

    def add(self, call: Call) -> None:
        self.rows.append(redacted_row(call, self.redactor, self.source))
        if len(self.rows) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        rows, self.rows = self.rows, []
        if self.store is None or self.dry_run:
            keys = list({r["source_key"] for r in rows})
            known = set()
            if self.store is not None and self.store.exists:
                with self.store.connection() as db:
                    known = stored.existing_keys(db, keys)
            new = len(keys) - len(known)
        else:
            with self.store.transaction() as db:
                new = stored.insert_calls(db, rows)
        self.report.imported += new
        self.report.duplicates += len(rows) - new


def redacted_row(call: Call, redactor: Redactor, source: str) -> dict:
    """The stored row of a call: credentials dropped, keys (and PII when asked) redacted in
    every text, the number of redactions kept on the row."""
    before = sum(redactor.counts.values())
    call.attributes = redactor.attributes(call.attributes)
    call.messages = redactor.value(call.messages)
    call.tools = redactor.value(call.tools)
    call.parameters = redactor.attributes(call.parameters)
    call.output_text = redactor.text(call.output_text) if call.output_text else call.output_text
    call.output_calls = redactor.value(call.output_calls)
    call.prompt_template = redactor.text(call.prompt_template) if call.prompt_template else call.prompt_template
    call.prompt_variables = redactor.value(call.prompt_variables)
    call.error_message = redactor.text(call.error_message) if call.error_message else call.error_message
    row = call.row()
    row["redactions"] = sum(redactor.counts.values()) - before
    row["source"] = source
    row["imported_at"] = now_iso()
    return row
