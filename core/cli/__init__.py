"""The `spread` command: the same core functions the app uses.

Errors a user can fix exit with status 2 and one line on stderr. With --json, the
last line on stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
from pathlib import Path

from core import store

from core.run import runner
from core.config import SpreadError


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line (and `spread COMMAND --help` for the rest)."""

    def error(self, message: str):
        self.exit(2, f"spread: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="spread",
        description="Sample one prompt across models × temperatures × N and measure how far the answers spread.",
    )
    parser.add_argument("--db", metavar="PATH", help="SQLite file to use (default: $SPREAD_DB or data/spread.db)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="start a run and wait for it to finish",
                              description="Sample a prompt over models × temperatures × N, storing each answer as it arrives.")
    prompt = run.add_mutually_exclusive_group(required=True)
    prompt.add_argument("--prompt", help="the user message")
    prompt.add_argument("--prompt-file", metavar="PATH", help="read the user message from a UTF-8 file (- for stdin)")
    system = run.add_mutually_exclusive_group()
    system.add_argument("--system", default="", help="the system message")
    system.add_argument("--system-file", metavar="PATH", help="read the system message from a UTF-8 file")
    run.add_argument("--model", action="append", required=True, metavar="ID",
                     help="a litellm model id; repeat for several (local/gemma-3-270m is the embedded model)")
    run.add_argument("--temperature", action="append", type=float, required=True, metavar="T",
                     help="a sampling temperature in 0..2; repeat for several")
    run.add_argument("--n", type=int, required=True, help=f"samples per model × temperature (1..{runner.MAX_N})")
    run.add_argument("--max-tokens", type=int, default=256, metavar="K", help="answer length limit (default 256)")
    run.add_argument("--seed", type=int, help="base seed: sample i uses seed+i, so a run repeats exactly")
    run.add_argument("--top-p", type=float, help="nucleus sampling threshold in (0, 1]")
    run.add_argument("--concurrency", type=int, default=8, metavar="C", help="calls in flight at once (default 8)")
    run.add_argument("--per-model", type=int, default=4, metavar="C", help="calls in flight per model (default 4)")
    run.add_argument("--api-base", metavar="URL", help="OpenAI-compatible server for the non-local models")
    run.add_argument("--timeout", type=float, default=120.0, metavar="S", help="seconds per call (default 120)")
    run.add_argument("--max-attempts", type=int, default=4, help="attempts per sample for transient errors (default 4)")
    run.add_argument("--no-stream", action="store_true", help="ask for whole answers (no time to first token)")
    run.add_argument("--name", help="a name for the prompt (versions are kept per name)")
    run.add_argument("--json", action="store_true", help="print a JSON summary as the last line")

    resume = commands.add_parser("resume", help="fill only the cells an interrupted run is missing")
    resume.add_argument("run_id", type=int, metavar="RUN_ID")
    resume.add_argument("--retry-errors", action="store_true", help="also sample again the cells that ended in an error")
    resume.add_argument("--json", action="store_true", help="print a JSON summary as the last line")

    cancel = commands.add_parser("cancel", help="ask a running run to stop after the calls in flight")
    cancel.add_argument("run_id", type=int, metavar="RUN_ID")

    runs = commands.add_parser("runs", help="list runs, newest first")
    runs.add_argument("--json", action="store_true", help="print JSON")

    show = commands.add_parser("show", help="one run: per cell counts, errors, tokens, cost, latency, answers")
    show.add_argument("run_id", type=int, metavar="RUN_ID")
    show.add_argument("--method", choices=["minilm", "tfidf", "exact"],
                      help="group answers by meaning (minilm, the default when installed), wording (tfidf) or exact text")
    show.add_argument("--threshold", type=float,
                      help="similarity for two answers to share a cluster (default 0.65, as in the app)")
    show.add_argument("--json", action="store_true", help="print JSON")

    label = commands.add_parser("label", help="label one answer pass / fail / unsure",
                                description="Label one answer; a reviewer's later label of it replaces the earlier one "
                                            "(its history is kept).")
    label.add_argument("response_id", type=int, metavar="RESPONSE_ID")
    label.add_argument("--verdict", required=True, choices=["pass", "fail", "unsure"])
    label.add_argument("--reviewer", help="who is labelling (default: $SPREAD_REVIEWER, else $USER)")
    label.add_argument("--score", type=int, choices=range(1, 6), metavar="N", help="a score from 1 to 5")
    label.add_argument("--tag", action="append", default=[], metavar="T", help="a tag; repeat for several")
    label.add_argument("--correction", help="the corrected or ideal answer")
    label.add_argument("--note", help="a note for the team")
    label.add_argument("--json", action="store_true", help="print the stored label as JSON")

    agreement_cmd = commands.add_parser("agreement", help="how far reviewers agree on one run's answers")
    agreement_cmd.add_argument("run_id", type=int, metavar="RUN_ID")
    agreement_cmd.add_argument("--json", action="store_true", help="print JSON")

    golden_cmd = commands.add_parser("golden", help="golden sets: create, add answers, list")
    golden_commands = golden_cmd.add_subparsers(dest="golden_command", required=True, metavar="ACTION")
    golden_create = golden_commands.add_parser("create", help="create an empty golden set")
    golden_create.add_argument("name", metavar="NAME")
    golden_create.add_argument("--description", default="")
    golden_add = golden_commands.add_parser("add", help="add labelled answers to a set (one new version)")
    golden_add.add_argument("name", metavar="NAME")
    golden_add.add_argument("--response", type=int, action="append", required=True, metavar="ID",
                            help="an answer id; repeat for several")
    golden_list = golden_commands.add_parser("list", help="list golden sets with their versions and sizes")
    golden_list.add_argument("--json", action="store_true", help="print JSON")

    export_cmd = commands.add_parser("export", help="export a golden set (jsonl, csv, openai, promptfoo, parquet)")
    export_cmd.add_argument("name", metavar="NAME")
    export_cmd.add_argument("--format", required=True, choices=["jsonl", "csv", "openai", "promptfoo", "parquet"])
    export_cmd.add_argument("--out", required=True, metavar="FILE")

    import_cmd = commands.add_parser("import", help="import a JSONL or CSV file into a golden set")
    import_cmd.add_argument("name", metavar="NAME")
    import_cmd.add_argument("file", metavar="FILE")
    import_cmd.add_argument("--skip-bad", action="store_true",
                            help="import the valid lines of a file that has bad ones (default: import nothing)")
    import_cmd.add_argument("--json", action="store_true", help="print JSON")

    models_cmd = commands.add_parser("models", help="the embedded model, then providers and whether their key is set")
    models_cmd.add_argument("--json", action="store_true", help="print JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.db:
        os.environ["SPREAD_DB"] = str(Path(args.db).resolve())
    try:
        return COMMANDS[args.command](args)
    except SpreadError as e:
        print(f"spread: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("spread: interrupted; `spread resume RUN_ID` fills in what is missing", file=sys.stderr)
        return 130
    except sqlite3.OperationalError as e:  # a locked or read-only file after the busy timeout
        print(f"spread: error: database: {e}", file=sys.stderr)
        return 1


def _read_text(path: str) -> str:
    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as e:
        raise SpreadError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpreadError(f"{path} is not valid UTF-8 text (byte {e.start})") from None


def cmd_run(args) -> int:
    if args.prompt_file:
        args.prompt = _read_text(args.prompt_file)
    if args.system_file:
        args.system = _read_text(args.system_file)
    spec = runner.RunSpec(
        prompt=args.prompt, system=args.system, models=args.model, temperatures=args.temperature,
        n=args.n, max_tokens=args.max_tokens, seed=args.seed, top_p=args.top_p,
        concurrency=args.concurrency, per_model_concurrency=args.per_model, api_base=args.api_base,
        timeout_s=args.timeout, max_attempts=args.max_attempts, stream=not args.no_stream,
        name=args.name or "",
    )
    if not 1 <= args.max_attempts <= 20:
        raise SpreadError("max attempts must be in 1..20")
    run_id = runner.create(spec, created_by=os.environ.get("USER", ""))
    if not args.json:
        print(f"run {run_id}: {len(spec.cells())} samples", file=sys.stderr)
    return _execute(run_id, args.json, retry_errors=False)


def cmd_resume(args) -> int:
    with store.connect() as db:
        run = store.get_run(db, args.run_id)
    if run is None:
        raise SpreadError(f"no run with id {args.run_id}")
    return _execute(args.run_id, args.json, retry_errors=args.retry_errors)


def _execute(run_id: int, as_json: bool, *, retry_errors: bool) -> int:
    def on_answer(progress: runner.Progress, row: dict) -> None:
        if not as_json:
            _progress_bar(progress)

    result = asyncio.run(runner.execute(run_id, retry_errors=retry_errors, on_answer=on_answer))
    if as_json:
        print(json.dumps(result))
    else:
        print(file=sys.stderr)
        cost = "unknown" if result["cost_usd"] is None else f"${result['cost_usd']:.6f}"
        print(f"run {run_id} {result['status']}: {result['responses']} answers, {result['errors']} errors, "
              f"cost {cost}, {result['wall_s']:.1f} s")
        print(f"see the answers: spread show {run_id}")
    return 0


def _progress_bar(progress: runner.Progress) -> None:
    width = 30
    filled = int(width * progress.received / max(progress.planned, 1))
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {progress.received}/{progress.planned}"
          f" ({progress.errors} errors)", end="", file=sys.stderr, flush=True)


def cmd_cancel(args) -> int:
    runner.request_cancel(args.run_id)
    print(f"run {args.run_id}: cancel requested")
    return 0


def cmd_runs(args) -> int:
    with store.connect() as db:
        runs = store.list_runs(db)
    if args.json:
        print(json.dumps(runs))
        return 0
    if not runs:
        print("no runs yet: spread run --prompt ... --model local/gemma-3-270m --temperature 1 --n 5")
    for run in runs:
        print(f"{run['id']:>5}  {run['status']:<11} {run['answers']:>5}/{run['planned']:<5} "
              f"{run['errors']:>3} err  {run['created_at'][:19]}  {run['name']}")
    return 0


def cmd_show(args) -> int:
    from core.analyse import spread  # numpy, scipy, scikit-learn: only for the commands that analyse

    if args.threshold is None:
        args.threshold = spread.DEFAULT_THRESHOLD
    if not 0 < args.threshold <= 1:
        raise SpreadError("the threshold must be in (0, 1]")
    with store.connect() as db:
        run = store.get_run(db, args.run_id)
        if run is None:
            raise SpreadError(f"no run with id {args.run_id}")
        rows = store.responses(db, args.run_id)
    analysis = spread.analyse_run(args.run_id, method=args.method, threshold=args.threshold, with_map=False)
    cells = analysis.cells
    for cell in cells:
        cell["answers"] = [
            {"id": r["id"], "sample_idx": r["sample_idx"], "text": r["text"], "error_type": r["error_type"],
             "error_message": r["error_message"]}
            for r in rows if r["model"] == cell["model"] and r["temperature"] == cell["temperature"]
        ]
    if args.json:
        print(json.dumps({"run": run, "method": analysis.method, "threshold": analysis.threshold,
                          "cells": cells, "by_model": analysis.by_model,
                          "by_temperature": analysis.by_temperature}, default=_plain))
        return 0
    spec = run["spec"]
    print(f"run {run['id']} · {run['status']} · {run['answers']}/{run['planned']} answers · {run['errors']} errors"
          f" · clusters by {analysis.method} at {analysis.threshold}")
    print(f"prompt: {spec['prompt']}")
    for cell in cells:
        cost = "unknown" if cell["cost_usd"] is None else f"${cell['cost_usd']:.6f}"
        consistency = "–" if cell["consistency"] is None else (
            f"{cell['consistency']:.0%} [{cell['consistency_low']:.0%}–{cell['consistency_high']:.0%}]")
        print(f"\n== {cell['model']} @ T={cell['temperature']}: {cell['count']} answers, {cell['errors']} errors, "
              f"{cell['n_clusters']} meanings, consistency {consistency}")
        print(f"   tokens in/out {cell['prompt_tokens']}/{cell['completion_tokens']} · latency p50 "
              f"{cell['latency_ms_p50']} ms p95 {cell['latency_ms_p95']} ms · cost {cost}")
        for cluster in cell["clusters"][:5]:
            text = " ".join(cluster["representative"].split())[:120]
            print(f"   {cluster['size']:>4} × {text}")
        errors = [a for a in cell["answers"] if a["error_type"]]
        for answer in errors[:3]:
            print(f"   error #{answer['sample_idx']}: [{answer['error_type']}] {answer['error_message']}")
    return 0


def _plain(value):
    """numpy numbers in JSON."""
    return value.item() if hasattr(value, "item") else str(value)


def cmd_models(args) -> int:
    from core.run import models

    entries = [e.as_dict() for e in models.catalogue()]
    if args.json:
        print(json.dumps(entries))
        return 0
    for entry in entries:
        print(f"{entry['id']:<55} {entry['description']}")
    return 0


def _reviewer(args) -> str:
    return getattr(args, "reviewer", None) or os.environ.get("SPREAD_REVIEWER") or os.environ.get("USER") or ""


def cmd_label(args) -> int:
    from core.review import labels

    reviewer = _reviewer(args)
    labels.label(args.response_id, reviewer, labels.Label(
        verdict=args.verdict, score=args.score, tags=args.tag, correction=args.correction, note=args.note))
    stored = [r for r in labels.labels_for([args.response_id]) if r["reviewer"] == " ".join(reviewer.split())]
    if args.json:
        print(json.dumps(stored[0]))
    else:
        print(f"answer {args.response_id}: {args.verdict} by {reviewer}")
    return 0


def cmd_agreement(args) -> int:
    from core.review import labels

    with store.connect() as db:
        if store.get_run(db, args.run_id) is None:
            raise SpreadError(f"no run with id {args.run_id}")
    given = labels.labels_for_run(args.run_id)
    result = labels.agreement(given) | {"disagreements": labels.disagreements(given)}
    if args.json:
        print(json.dumps(result))
        return 0
    if result["percent"] is None:
        print(f"run {args.run_id}: agreement needs two reviewers on the same answers "
              f"(reviewers so far: {', '.join(result['reviewers']) or 'none'})")
        return 0
    print(f"run {args.run_id}: {len(result['reviewers'])} reviewers, {result['answers']} answers labelled by all: "
          f"{result['percent']:.0%} agree, {result['kappa_kind']} kappa {result['kappa']}")
    for row in result["disagreements"][:20]:
        print(f"  answer {row['response_id']}: " + ", ".join(f"{r} {v}" for r, v in row["verdicts"].items()))
    return 0


def cmd_golden(args) -> int:
    from core.review import golden

    who = _reviewer(args)
    if args.golden_command == "create":
        golden.create_set(args.name, description=args.description, created_by=who)
        print(f"golden set {args.name!r} created")
    elif args.golden_command == "add":
        version = golden.add_responses(args.name, args.response, who=who)
        print(f"{len(args.response)} item(s) added to {args.name!r}: version {version}")
    else:
        sets = golden.list_sets()
        if args.json:
            print(json.dumps(sets))
        for row in [] if args.json else sets:
            print(f"{row['name']:<30} v{row['version']:<4} {row['items']:>5} items  {row['description'] or ''}")
    return 0


def cmd_export(args) -> int:
    from core.review import export

    count, version = export.export_to(args.name, args.format, args.out)
    print(f"{count} items of {args.name!r} version {version} written to {args.out} ({args.format})")
    return 0


def cmd_import(args) -> int:
    from core.review import export

    result = export.import_file(args.name, args.file, skip_bad=args.skip_bad, who=_reviewer(args))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['imported']} items imported into {args.name!r} (version {result['version']}), "
              f"{result['skipped']} bad lines skipped")
        for error in result["errors"][:20]:
            print(f"  skipped {error}", file=sys.stderr)
    return 0


COMMANDS = {
    "run": cmd_run, "resume": cmd_resume, "cancel": cmd_cancel, "runs": cmd_runs,
    "show": cmd_show, "models": cmd_models, "label": cmd_label, "agreement": cmd_agreement,
    "golden": cmd_golden, "export": cmd_export, "import": cmd_import,
}

if __name__ == "__main__":
    sys.exit(main())
