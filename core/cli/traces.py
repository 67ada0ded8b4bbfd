"""Production traffic in: `spread import-traces` (trace files) and `spread collect` (an
OTLP/HTTP receiver)."""

from __future__ import annotations

import os
import signal
import sys

import click

from core.cli.common import json_option, pass_store, print_json
from core.config import SpreadError
from core.store import Store

FORMAT_CHOICES = ("auto", "otlp-json", "otlp-protobuf", "openinference", "langfuse", "openai-jsonl")
redact_pii_option = click.option(
    "--redact-pii", is_flag=True,
    help="also mask e-mail addresses and phone numbers in what is stored (keys and credentials always are)")


@click.command("import-traces")
@click.argument("files", nargs=-1, required=True, metavar="FILE…")
@click.option("--format", "fmt", type=click.Choice(FORMAT_CHOICES), default="auto", show_default=True,
              help="the files' format (auto: told from each file's name and first record)")
@click.option("--since", metavar="T", help="only calls that started at or after T (ISO 8601 like 2026-12-01T08:00, "
              "UTC unless it says; or a duration back from now: 24h, 7d)")
@click.option("--until", metavar="T", help="only calls that started before T (same forms as --since)")
@click.option("--service", metavar="S", help="only calls of this service (OTLP service.name)")
@click.option("--model", metavar="M", help="only calls that asked for, or were answered by, this model")
@redact_pii_option
@click.option("--batch", type=click.IntRange(1, 100_000), default=1000, show_default=True, metavar="N",
              help="calls written per transaction")
@click.option("--dry-run", is_flag=True, help="read and count everything, write nothing")
@json_option
@pass_store
def import_traces_command(store: Store, files, fmt, since, until, service, model, redact_pii, batch, dry_run, as_json):
    """Store the LLM calls in trace files, one row per call: OTLP (ExportTraceServiceRequest as
    JSON, JSON lines or protobuf) with the OpenTelemetry GenAI conventions (v1.37.0, and the
    older OpenLLMetry attributes and span events) or OpenInference; Langfuse observation
    exports (JSON, JSONL, CSV); OpenAI chat-completion logs (JSONL, request and response per
    line). Spans that are not LLM calls are skipped and counted; a malformed record is listed
    and skipped; a call already stored is not stored again. Credentials in attributes are
    dropped and keys in content redacted, always."""
    from core import config
    from core.formats import traces
    from core.store import Store

    selection = traces.Selection(
        since=traces.parse_time(since, "--since") if since else None,
        until=traces.parse_time(until, "--until") if until else None, service=service, model=model)
    if selection.since and selection.until and selection.since >= selection.until:
        raise SpreadError("--since must be before --until")
    report = traces.import_files(store, list(files), fmt=fmt, selection=selection, dry_run=dry_run,
                                 redact_pii=redact_pii, batch=batch)
    if selection.any() and report.filtered_out and not (report.imported or report.duplicates):
        raise SpreadError(f"no LLM call matches the filters ({report.filtered_out} outside them); nothing imported")
    if as_json:
        print_json(report.as_dict())
        return
    verb = "would import" if dry_run else "imported"
    print(f"{verb} {report.imported} call(s); {report.duplicates} already stored, {report.skipped} span(s) or "
          f"record(s) not LLM calls, {report.filtered_out} outside the filters, {report.rejected} rejected")
    for item in report.rejected_items[:20]:
        print(f"  rejected {item['file']}: {item['where']}: {item['reason']}")
    if report.rejected > 20:
        print(f"  … and {report.rejected - 20} more rejected (--json lists them)")
    if report.redactions:
        print("redacted: " + ", ".join(f"{n} {kind}" for kind, n in sorted(report.redactions.items())))


@click.command("collect")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to listen on (0.0.0.0 beside the app servers; then set --token-env)")
@click.option("--port", type=click.IntRange(0, 65535), default=4318, show_default=True,
              help="port (4318 is OTLP/HTTP's; 0 picks a free one)")
@click.option("--token-env", metavar="VAR",
              help="require `Authorization: Bearer <token>`, the token read from this environment variable")
@redact_pii_option
@pass_store
def collect_command(store: Store, host, port, token_env, redact_pii):
    """Receive OTLP/HTTP traces: POST /v1/traces (protobuf or JSON, gzip), the LLM calls stored
    before the request is acknowledged. Point an app's exporter at it, e.g.
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://HOST:4318/v1/traces. Stops on Ctrl-C."""
    from core import config
    from core.formats.traces.collector import Collector
    from core.store import Store

    token = None
    if token_env:
        token = os.environ.get(token_env)
        if not token:
            raise SpreadError(f"--token-env {token_env}: the variable is not set or empty")
    with store.connection():
        pass  # migrate and check the store before taking any traffic
    try:
        server = Collector(store, host, port, token=token, redact_pii=redact_pii)
    except OSError as error:
        raise SpreadError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    if token is None and host not in ("127.0.0.1", "localhost", "::1"):
        print(f"spread collect: warning: listening on {host} without a token (--token-env)", file=sys.stderr)
    print(f"spread collect: receiving OTLP traces at {server.url} into {store.shown}", file=sys.stderr, flush=True)
    signal.signal(signal.SIGTERM, _stop)  # `docker stop`, systemd: the same clean stop as Ctrl-C
    # Ctrl-C stops it even when it was started in the background, where the shell hands it
    # SIGINT ignored (as `spread serve` does, whose event loop takes SIGINT itself).
    signal.signal(signal.SIGINT, _stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        store.close()
        totals = server.totals
        print(f"spread collect: stopped; {totals.stored} call(s) stored from {totals.requests} request(s)",
              file=sys.stderr)
    return 0


def _stop(signum, frame):
    raise KeyboardInterrupt


COMMANDS = [import_traces_command, collect_command]
