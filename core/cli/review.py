"""Review: `spread label`, `agreement`, `golden`, `export`, `import`."""

from __future__ import annotations

import sys

import click

from core.cli.common import json_option, pass_store, print_json, reviewer
from core.config import SpreadError
from core.store import Store, runs

expected_call_option = click.option(
    "--expected-call", "expected_calls", type=(str, str), multiple=True, metavar="TOOL ARGUMENTS",
    help="a tool call the answer should have made: one of the run's tools and its arguments as JSON, checked "
         "against the tool's schema, e.g. --expected-call get_weather '{\"city\": \"Paris\"}'; repeat for several")


def _calls(given) -> list[dict] | None:
    return [{"name": name, "arguments": arguments} for name, arguments in given] or None


@click.command("label")
@click.argument("response_id", type=int)
@click.option("--verdict", required=True, type=click.Choice(["pass", "fail", "unsure"]))
@click.option("--reviewer", "who", help="who is labelling (default: $SPREAD_REVIEWER, else $USER)")
@click.option("--score", type=click.IntRange(1, 5), metavar="N", help="a score from 1 to 5")
@click.option("--tag", "tags", multiple=True, metavar="T", help="a tag; repeat for several")
@click.option("--correction", help="the corrected or ideal answer")
@click.option("--note", help="a note for the team")
@expected_call_option
@json_option
@pass_store
def label_command(store: Store, response_id, verdict, who, score, tags, correction, note, expected_calls, as_json):
    """Label one answer pass / fail / unsure; a reviewer's later label of it replaces the
    earlier one (its history is kept)."""
    from core.review import labels

    who = reviewer(who)
    labels.label(store, response_id, who, labels.Label(verdict=verdict, score=score, tags=list(tags),
                                                correction=correction, note=note,
                                                correction_calls=_calls(expected_calls)))
    stored = [r for r in labels.labels_for(store, [response_id]) if r["reviewer"] == " ".join(who.split())]
    if as_json:
        print_json(stored[0])
    else:
        print(f"answer {response_id}: {verdict} by {who}")


@click.command("agreement")
@click.argument("run_id", type=int)
@json_option
@pass_store
def agreement_command(store: Store, run_id, as_json):
    """How far reviewers agree on one run's answers."""
    from core.review import labels

    with store.connection() as db:
        if runs.get_run(db, run_id) is None:
            raise SpreadError(f"no run with id {run_id}")
    given = labels.labels_for_run(store, run_id)
    result = labels.agreement(given) | {"disagreements": labels.disagreements(given)}
    if as_json:
        print_json(result)
        return
    if result["percent"] is None:
        print(f"run {run_id}: agreement needs two reviewers on the same answers "
              f"(reviewers so far: {', '.join(result['reviewers']) or 'none'})")
        return
    print(f"run {run_id}: {len(result['reviewers'])} reviewers, {result['answers']} answers labelled by all: "
          f"{result['percent']:.0%} agree, {result['kappa_kind']} kappa {result['kappa']}")
    for row in result["disagreements"][:20]:
        print(f"  answer {row['response_id']}: " + ", ".join(f"{r} {v}" for r, v in row["verdicts"].items()))


@click.group("golden")
def golden_group():
    """Golden sets: create, add answers, check, list."""


@golden_group.command("create")
@click.argument("name")
@click.option("--description", default="")
@pass_store
def golden_create(store: Store, name, description):
    """Create an empty golden set."""
    from core.review import golden

    golden.create_set(store, name, description=description, created_by=reviewer())
    print(f"golden set {name!r} created")


@golden_group.command("add")
@click.argument("name")
@click.option("--response", "responses", type=int, multiple=True, metavar="ID",
              help="an answer id; repeat for several")
@click.option("--trace", "trace_calls", multiple=True, metavar="ID",
              help="a stored production call (its id on the Traces page, or its span id): the conversation, "
                   "tools and production answer are kept; repeat for several")
@click.option("--correction", metavar="TEXT",
              help="the correct answer: the new item's reference (a failed answer needs one)")
@expected_call_option
@click.option("--to-item", "item_key", metavar="KEY",
              help="add the (failed) answers to this item's rejected answers instead of making new items")
@pass_store
def golden_add(store: Store, name, responses, trace_calls, correction, expected_calls, item_key):
    """Add labelled answers, or production calls, to a set (one new version). A failed answer is
    never a reference: give --correction (or, for a tool-call answer, --expected-call), or
    --to-item to reject it in an existing item. A production answer given a correction is
    kept as a rejected answer."""
    from core.review import golden

    if not responses and not trace_calls:
        raise click.UsageError("give --response ID or --trace ID (repeat for several)")
    if trace_calls:
        if responses or item_key:
            raise SpreadError("--trace adds production calls as new items: give it without --response and --to-item")
        from core import config
        from core.formats.traces import golden as traced
        from core.store import Store

        version = traced.add_calls(Store(config.db_path()), name, list(trace_calls), who=reviewer(),
                                   correction=correction, correction_calls=_calls(expected_calls))
        print(f"{len(trace_calls)} production call(s) added to {name!r}: version {version}")
        return

    if item_key:
        if correction or expected_calls:
            raise SpreadError("--correction and --expected-call make a new item; --to-item adds to an existing one: "
                              "choose one")
        version = golden.add_rejected(store, name, item_key, list(responses), who=reviewer())
        print(f"{len(responses)} answer(s) rejected in item {item_key} of {name!r}: version {version}")
        return
    version = golden.add_responses(store, name, list(responses), who=reviewer(), correction=correction,
                                   correction_calls=_calls(expected_calls))
    print(f"{len(responses)} item(s) added to {name!r}: version {version}")


@golden_group.command("check")
@click.argument("name")
@click.option("--fix", is_flag=True, help="resolve every contradiction (the latest label on the text, else "
                                          "rejected) in one new version")
@json_option
@pass_store
def golden_check(store: Store, name, fix, as_json):
    """List items that hold one text both accepted and rejected; --fix resolves them."""
    from core.review import golden

    result = golden.check(store, name, fix=fix, who=reviewer())
    if as_json:
        print_json(result)
        return
    if not result["items"]:
        print(f"{name!r} version {result['version']}: no item holds a text both accepted and rejected")
        return
    for entry in result["items"]:
        texts = ", ".join(f"{c['text']!r} ({c['as']})" for c in entry["contradictions"])
        print(f"item {entry['item_key'][:8]} · {' '.join(entry['prompt'].split())[:60]}: also rejected: {texts}")
        for note in entry["resolution"]:
            print(f"   {'fixed' if result['fixed'] else 'fix'}: {note}")
    print(f"{len(result['items'])} item(s) fixed: version {result['version']}" if result["fixed"]
          else f"{len(result['items'])} item(s) contradict themselves: run `spread golden check {name} --fix`")


@golden_group.command("list")
@json_option
@pass_store
def golden_list(store: Store, as_json):
    """List golden sets with their versions and sizes."""
    from core.review import golden

    sets = golden.list_sets(store)
    if as_json:
        print_json(sets)
        return
    for row in sets:
        print(f"{row['name']:<30} v{row['version']:<4} {row['items']:>5} items  {row['description'] or ''}")


@click.command("export")
@click.argument("name")
@click.option("--format", "fmt", required=True, type=click.Choice(["jsonl", "csv", "openai", "promptfoo", "parquet"]))
@click.option("--out", required=True, metavar="FILE")
@pass_store
def export_command(store: Store, name, fmt, out):
    """Export a golden set (jsonl, csv, openai, promptfoo, parquet)."""
    from core.formats import golden_files

    count, version = golden_files.export_to(store, name, fmt, out)
    print(f"{count} items of {name!r} version {version} written to {out} ({fmt})")


@click.command("import")
@click.argument("name")
@click.argument("file")
@click.option("--skip-bad", is_flag=True, help="import the valid lines of a file that has bad ones (default: import nothing)")
@json_option
@pass_store
def import_command(store: Store, name, file, skip_bad, as_json):
    """Import a JSONL or CSV file into a golden set, all or nothing."""
    from core.formats import golden_files

    result = golden_files.import_file(store, name, file, skip_bad=skip_bad, who=reviewer())
    if as_json:
        print_json(result)
        return
    print(f"{result['imported']} items imported into {name!r} (version {result['version']}), "
          f"{result['skipped']} bad lines skipped")
    for error in result["errors"][:20]:
        print(f"  skipped {error}", file=sys.stderr)


@click.group("clusters")
def clusters_group():
    """Meaning clusters: why two answers share one or not, and a reviewer's merge or split."""


@clusters_group.command("explain")
@click.argument("answer_a", type=int)
@click.argument("answer_b", type=int)
@click.option("--method", type=click.Choice(["minilm", "tfidf", "exact"]))
@click.option("--threshold", type=float)
@json_option
@pass_store
def clusters_explain(store: Store, answer_a, answer_b, method, threshold, as_json):
    """Why two answers of one input are merged or kept apart (similarity, conflicting facts)."""
    from dataclasses import asdict

    from core.review import decisions

    pair = decisions.explain(store, answer_a, answer_b, method=method, threshold=threshold)
    if as_json:
        print_json(asdict(pair))
        return
    print(f"{'same meaning' if pair.same else 'different meanings'}: {pair.reason}")
    print(f"similarity {pair.similarity:.3f}" + (f" · conflicts: {'; '.join(pair.conflicts)}" if pair.conflicts else "")
          + (f" · agreements: {'; '.join(pair.agreements)}" if pair.agreements else ""))


def _decision_command(action: str, summary: str, done: str):
    """`spread clusters merge|split A B`: one reviewer's decision on two answers."""
    @clusters_group.command(action, help=summary)
    @click.argument("answer_a", type=int)
    @click.argument("answer_b", type=int)
    @click.option("--reviewer", "who", help="who decides (default: $SPREAD_REVIEWER, else $USER)")
    @pass_store
    def command(store: Store, answer_a, answer_b, who):
        from core.review import decisions

        decision_id = decisions.decide(store, answer_a, answer_b, action, reviewer=reviewer(who))
        print(f"decision {decision_id}: answers {answer_a} and {answer_b} {done}")
    return command


_decision_command("merge", "Record that two answers mean the same: later analyses of the run put them in one "
                  "cluster.", "mean the same")
_decision_command("split", "Record that two answers differ: later analyses move the second out of the first's "
                  "cluster.", "mean different things")


COMMANDS = [label_command, agreement_command, golden_group, export_command, import_command, clusters_group]
