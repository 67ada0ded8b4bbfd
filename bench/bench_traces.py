"""Production traces in (a measurement, not a test).

    .venv/bin/python bench/bench_traces.py [--spans 100000] [--repeat 3] [--receiver-spans 20000]

- import: `spread import-traces` of an N-span file per format (OTLP protobuf, OTLP JSON
  lines as the Collector's file exporter writes them, OpenAI chat-completion JSONL), into a
  new SQLite file; one LLM call in four spans is an HTTP span (skipped). Median wall time,
  spans per second and the peak RSS of the importing process.
- receiver: `spread collect` on loopback, with the OTLP/HTTP exporter of
  opentelemetry-exporter-otlp-proto-http sending spans made by the SDK, 512 per request
  (the BatchSpanProcessor's default), from two sender threads; sustained spans per second
  (acknowledged, so stored).
- page (--page-calls N): the Traces page on N stored calls, cold (a new process) and warm.
The files are made from a span the SDK recorded, copied with new ids, so a million spans
take seconds to write.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from measure import ROOT, Results, last_json, run_command  # noqa: E402

CHUNK = 1000  # spans per ExportTraceServiceRequest in the files
ANSWERS = ["It ships tomorrow.", "Your order ships tomorrow.", "It was delivered yesterday.",
           "I cannot see that order.", "It ships tomorrow; tracking follows by e-mail."]


def template_request():
    from otel_traces import Recorder, current_chat

    r = Recorder()
    current_chat(r, "Where is my order 1234? It was due on Monday.", "It ships tomorrow; tracking follows by e-mail.")
    r.span("GET /orders", {"http.request.method": "GET", "url.path": "/orders"})
    return r.request()


def chunks(spans: int):
    """ExportTraceServiceRequests of CHUNK spans: three LLM calls in four, with new ids."""
    request = template_request()
    scope = request.resource_spans[0].scope_spans[0]
    llm, http = scope.spans[0], scope.spans[1]
    made = 0
    while made < spans:
        out = type(request)()
        out.resource_spans.add().CopyFrom(request.resource_spans[0])
        target = out.resource_spans[0].scope_spans[0]
        del target.spans[:]
        for k in range(min(CHUNK, spans - made)):
            span = target.spans.add()
            span.CopyFrom(http if (made + k) % 4 == 3 else llm)
            span.span_id = (made + k + 1).to_bytes(8, "big")
            span.trace_id = (made + k + 1).to_bytes(16, "big")
        made += len(target.spans)
        yield out


def write_files(folder: Path, spans: int, formats: list[str]) -> dict[str, Path]:
    from google.protobuf import json_format

    paths = {"otlp-protobuf": folder / "spans.pb", "otlp-json": folder / "spans.jsonl",
             "openai-jsonl": folder / "openai.jsonl"}
    paths = {fmt: path for fmt, path in paths.items() if fmt in formats}
    if "otlp-protobuf" in paths or "otlp-json" in paths:
        for request in chunks(spans):
            if "otlp-protobuf" in paths:  # serialised requests concatenated are one request
                with open(paths["otlp-protobuf"], "ab") as pb:
                    pb.write(request.SerializeToString())
            if "otlp-json" in paths:
                with open(paths["otlp-json"], "a") as js:
                    js.write(json.dumps(json_format.MessageToDict(request)) + "\n")
    if "openai-jsonl" not in paths:
        return paths
    with open(paths["openai-jsonl"], "w") as out:
        for k in range(spans):
            out.write(json.dumps({
                "request": {"model": "gpt-4o-mini", "messages": [
                    {"role": "system", "content": "You are a helpful shop assistant."},
                    {"role": "user", "content": f"Where is my order {k % 5000}?"}]},
                "response": {"id": f"chatcmpl-{k}", "created": 1780000000 + k, "model": "gpt-4o-mini-2024-07-18",
                             "choices": [{"index": 0, "finish_reason": "stop",
                                          "message": {"role": "assistant", "content": ANSWERS[k % len(ANSWERS)]}}],
                             "usage": {"prompt_tokens": 20, "completion_tokens": 5}}}) + "\n")
    return paths


def bench_import(results: Results, paths: dict[str, Path], spans: int, repeat: int, folder: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for fmt, path in paths.items():
        runs = []
        for k in range(repeat):
            db = folder / f"import-{fmt}-{k}.db"
            measured = run_command([sys.executable, "-m", "core.cli", "--db", str(db), "import-traces", str(path),
                                    "--json"], env=env, timeout_s=3600)
            if measured["returncode"] != 0:
                raise SystemExit(measured["stderr"][-2000:])
            report = last_json(measured["stdout"])
            runs.append(measured)
            results.add({"kind": "run", "format": fmt, "spans": spans, "imported": report["imported"],
                         "skipped": report["skipped"], "wall_s": measured["process_wall_s"],
                         "peak_rss_mb": measured["peak_rss_one_process_mb"],
                         "file_mb": round(path.stat().st_size / 2**20, 1)})
            for extra in folder.glob(f"import-{fmt}-{k}.db*"):
                extra.unlink()
        wall = statistics.median(r["process_wall_s"] for r in runs)
        results.add({"kind": "median", "case": "import", "format": fmt, "spans": spans, "wall_s": wall,
                     "spans_per_s": round(spans / wall),
                     "peak_rss_mb": max(r["peak_rss_one_process_mb"] for r in runs)})


def bench_receiver(results: Results, spans: int, folder: Path) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from otel_traces import Recorder, current_chat

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "core.cli", "--db", str(folder / "collect.db"), "collect",
                                "--port", "0"], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        url = process.stderr.readline().split(" at ", 1)[1].split(" into ", 1)[0]
        batches = []
        recorder = Recorder()
        for k in range(spans):  # made before the clock starts: the sender's own cost is not the receiver's
            current_chat(recorder, f"Question {k % 3000}", f"Answer {k % 7}")
        finished = list(recorder.exporter.get_finished_spans())
        batches = [finished[k:k + 512] for k in range(0, len(finished), 512)]
        failures = []

        def send(mine):
            exporter = OTLPSpanExporter(endpoint=url, timeout=60)
            for batch in mine:
                if exporter.export(batch).name != "SUCCESS":
                    failures.append(1)
            exporter.shutdown()

        start = time.perf_counter()
        threads = [threading.Thread(target=send, args=(batches[k::2],)) for k in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - start
    finally:
        process.terminate()
        try:
            process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            raise SystemExit("spread collect did not stop within 120 s of SIGTERM")
    results.add({"kind": "median", "case": "receiver", "spans": spans, "requests": len(batches),
                 "failures": len(failures), "wall_s": round(wall, 3), "spans_per_s": round(spans / wall)})


def bench_page(results: Results, calls: int, folder: Path) -> None:
    """The Traces page on `calls` stored calls (OpenAI logs: 5,000 distinct questions, five
    phrasings of answers): the first open in a new process (cold), then a rerun (warm)."""
    paths = write_files(folder, calls, ["openai-jsonl"])
    db = folder / "page.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "core.cli", "--db", str(db), "import-traces", str(paths["openai-jsonl"])],
                   env=env, cwd=ROOT, check=True, capture_output=True)
    script = (
        "import json, time\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"at = AppTest.from_file({str(ROOT / 'app.py')!r}, default_timeout=600)\n"
        "start = time.perf_counter(); at.switch_page('pages/traces.py').run(); cold = time.perf_counter() - start\n"
        "assert not at.exception, at.exception\n"
        "start = time.perf_counter(); at.run(); warm = time.perf_counter() - start\n"
        "print(json.dumps({'cold_s': round(cold, 2), 'warm_s': round(warm, 2)}))\n")
    measured = run_command([sys.executable, "-c", script], env={**env, "SPREAD_DB": str(db)}, timeout_s=1800)
    if measured["returncode"] != 0:
        raise SystemExit(measured["stderr"][-2000:])
    results.add({"kind": "median", "case": "traces page", "calls": calls, **last_json(measured["stdout"]),
                 "peak_rss_mb": measured["peak_rss_one_process_mb"]})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--receiver-spans", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--page-calls", type=int, default=0, help="also time the Traces page on this many calls")
    parser.add_argument("--formats", default="otlp-protobuf,otlp-json,openai-jsonl",
                        help="comma-separated: which files to import")
    parser.add_argument("--results", help="append to this file")
    args = parser.parse_args()
    results = Results("traces", Path(args.results) if args.results else None)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = write_files(folder, args.spans, args.formats.split(","))
        bench_import(results, paths, args.spans, args.repeat, folder)
        for path in paths.values():
            path.unlink()
        if args.receiver_spans:
            bench_receiver(results, args.receiver_spans, folder)
        if args.page_calls:
            bench_page(results, args.page_calls, folder)


if __name__ == "__main__":
    main()
