"""The schema: numbered migrations, applied on every open, written once for both engines
(sqlite-utils' `Database` on SQLite, core/store/postgres.py's look-alike on PostgreSQL).

A migration is never edited once released: a change is a new numbered function, and an
existing database (SQLite and PostgreSQL) migrates in place losing nothing.
"""

from __future__ import annotations

import json
from typing import Callable


def _import_sqlite_utils():
    """sqlite-utils imports pandas and numpy at its own import, when installed, only to
    name a column's type when it creates a table from their values; Spread's tables come
    from its migrations, with types given. Those imports were a third of a second of
    every command's start (`spread --help` included), so they are hidden from it; they
    import as usual afterwards."""
    import sys

    hidden = [name for name in ("pandas", "numpy") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # `import pandas` raises ImportError meanwhile
    try:
        import sqlite_utils
    finally:
        for name in hidden:
            del sys.modules[name]
    return sqlite_utils


Database, Migrations = (sqlite_utils := _import_sqlite_utils()).Database, sqlite_utils.Migrations

migrations = Migrations("spread")


@migrations()
def m001_runs(db: Database) -> None:
    db["prompts"].create(
        {
            "id": int, "name": str, "version": int, "system": str, "template": str,
            "content_hash": str, "created_at": str, "created_by": str,
        },
        pk="id",
    )
    db["prompts"].create_index(["name", "content_hash"], unique=True)
    db["runs"].create(
        {
            "id": int, "prompt_id": int, "name": str, "spec": str, "status": str,
            "planned": int, "created_at": str, "started_at": str, "finished_at": str,
            "heartbeat_at": float, "created_by": str,
        },
        pk="id",
        foreign_keys=[("prompt_id", "prompts", "id")],
    )
    db["responses"].create(
        {
            "id": int, "run_id": int, "model": str, "temperature": float, "sample_idx": int,
            "seed": int, "text": str, "finish_reason": str, "prompt_tokens": int,
            "completion_tokens": int, "cost_usd": float, "latency_ms": float, "ttft_ms": float,
            "attempts": int, "error_type": str, "error_message": str, "provider_model": str,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["responses"].create_index(["run_id", "model", "temperature", "sample_idx"], unique=True)


@migrations()
def m002_embeddings(db: Database) -> None:
    # Keyed by the answer's normalised text: identical answers, in any run, share one row.
    db["embeddings"].create(
        {"method": str, "text_hash": str, "dims": int, "vector": bytes, "created_at": str},
        pk=("method", "text_hash"),
    )


@migrations()
def m003_labels(db: Database) -> None:
    db["labels"].create(
        {
            "id": int, "response_id": int, "reviewer": str, "verdict": str, "score": int, "tags": str,
            "correction": str, "note": str, "via_cluster": int, "created_at": str, "updated_at": str,
        },
        pk="id",
        foreign_keys=[("response_id", "responses", "id")],
    )
    db["labels"].create_index(["response_id", "reviewer"], unique=True)
    # Every change to a label, so nothing a reviewer said is lost when it is edited.
    db["label_history"].create(
        {
            "id": int, "response_id": int, "reviewer": str, "verdict": str, "score": int, "tags": str,
            "correction": str, "note": str, "via_cluster": int, "changed_at": str,
        },
        pk="id",
    )
    db["label_history"].create_index(["response_id"])


@migrations()
def m004_golden(db: Database) -> None:
    db["golden_sets"].create(
        {"id": int, "name": str, "description": str, "version": int, "created_at": str, "created_by": str},
        pk="id",
    )
    db["golden_sets"].create_index(["name"], unique=True)
    db["golden_items"].create(
        {
            "id": int, "set_id": int, "item_key": str, "system": str, "prompt": str, "vars": str,
            "reference": str, "accepted": str, "rejected": str, "assertions": str, "tags": str,
            "source_run_id": int, "source_response_id": int, "added_by": str, "created_at": str,
            "updated_at": str, "deleted_at": str,
        },
        pk="id",
        foreign_keys=[("set_id", "golden_sets", "id")],
    )
    db["golden_items"].create_index(["set_id", "item_key"], unique=True)
    db["golden_changes"].create(
        {"id": int, "set_id": int, "version": int, "action": str, "item_key": str, "changed_by": str,
         "changed_at": str},
        pk="id",
    )


@migrations()
def m005_run_worker(db: Database) -> None:
    # host:pid of the process sampling a run, so a dead worker is noticed at once.
    db["runs"].add_column("worker", str)


@migrations()
def m006_inputs_and_variants(db: Database) -> None:
    """A run samples prompt variants × inputs × models × temperatures × N.

    Each variant is a prompt version; each input a mapping of variables; the prompt
    rendered for a (variant, input) is stored once, not per answer. Runs made before
    this have one variant (0) and one input (0) holding their prompt, and every answer
    moves to that cell: nothing is lost.
    """
    db["run_variants"].create(
        {"run_id": int, "variant": int, "label": str, "prompt_id": int},
        pk=("run_id", "variant"),
        foreign_keys=[("run_id", "runs", "id"), ("prompt_id", "prompts", "id")],
    )
    db["run_inputs"].create({"run_id": int, "input": int, "vars": str}, pk=("run_id", "input"),
                            foreign_keys=[("run_id", "runs", "id")])
    db["run_prompts"].create(
        {"run_id": int, "variant": int, "input": int, "system": str, "prompt": str},
        pk=("run_id", "variant", "input"),
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["responses"].add_column("variant", int, not_null_default=0)
    db["responses"].add_column("input", int, not_null_default=0)
    db.execute("drop index if exists idx_responses_run_id_model_temperature_sample_idx")
    db["responses"].create_index(["run_id", "variant", "input", "model", "temperature", "sample_idx"], unique=True)
    for run_id, prompt_id, spec in db.execute("select id, prompt_id, spec from runs").fetchall():
        spec = json.loads(spec)
        db["run_variants"].insert({"run_id": run_id, "variant": 0, "label": "A", "prompt_id": prompt_id})
        db["run_inputs"].insert({"run_id": run_id, "input": 0, "vars": "{}"})
        db["run_prompts"].insert({"run_id": run_id, "variant": 0, "input": 0,
                                  "system": spec.get("system") or "", "prompt": spec.get("prompt") or ""})


@migrations()
def m007_golden_item_templates(db: Database) -> None:
    # A golden item from a templated run keeps the template and the prompt version it
    # came from, beside its variables, so that it can be re-run with another version.
    for column, kind in (("template", str), ("system_template", str), ("prompt_name", str), ("prompt_version", int)):
        db["golden_items"].add_column(column, kind)


@migrations()
def m008_checks_and_regressions(db: Database) -> None:
    # One row per answer and check: whether it passed, a score, and why. `check_key` is
    # the check as canonical JSON, so a run's checks can change without losing results.
    db["check_results"].create(
        {"id": int, "response_id": int, "check_key": str, "type": str, "passed": int, "score": float,
         "reason": str, "judge_calls": int, "judge_cost_usd": float, "created_at": str},
        pk="id",
        foreign_keys=[("response_id", "responses", "id")],
    )
    db["check_results"].create_index(["response_id", "check_key"], unique=True)
    # A regression run: a golden set re-sampled on a candidate, and the gate's verdict.
    db["regress_runs"].create(
        {"id": int, "set_name": str, "set_version": int, "run_id": int, "model": str, "prompt_version": int,
         "temperature": float, "n": int, "baseline_id": int, "settings": str, "result": str, "gate": str,
         "pass_rate": float, "pass_rate_low": float, "pass_rate_high": float, "created_at": str,
         "created_by": str},
        pk="id",
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["regress_runs"].create_index(["set_name", "id"])


@migrations()
def m009_endpoints(db: Database) -> None:
    # The shared catalogue of named models (see core/models/endpoints/). `key_env` is the
    # name of the variable that holds the key, never the key; `params` is a JSON object.
    db["endpoints"].create(
        {"name": str, "model": str, "api_base": str, "key_env": str, "params": str, "price_in": float,
         "price_out": float, "max_concurrency": int, "rpm": float, "timeout_s": float, "created_at": str,
         "created_by": str, "updated_at": str},
        pk="name",
        not_null={"model", "params"},
    )


@migrations()
def m010_meaning_reviews(db: Database) -> None:
    # A reviewer's decision that two answers of one input mean the same (merge) or not
    # (split), by their normalised text; later analyses of the run respect it.
    db["cluster_decisions"].create(
        {"id": int, "run_id": int, "input": int, "action": str, "text_a": str, "text_b": str, "reviewer": str,
         "created_at": str},
        pk="id",
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["cluster_decisions"].create_index(["run_id"])
    # An LLM judge's verdict on a pair of answers (the optional second opinion), paid once.
    db["pair_judgements"].create({"key": str, "model": str, "same": int, "created_at": str}, pk="key")


@migrations()
def m011_drafts(db: Database) -> None:
    # Each reviewer's Playground plan as it is being written (core/run/drafts.py): it
    # outlives page visits, browser reloads and server restarts.
    db["drafts"].create({"owner": str, "plan": str, "updated_at": str}, pk="owner", not_null={"plan"})


@migrations()
def m012_prompt_shapes(db: Database) -> None:
    """Conversations, tools and structured output (see core/prompts/conversation.py, shapes.py).

    A variant may be a list of messages, with tools, a tool choice and a response format
    (each JSON); the messages sent for a (variant, input) are kept exactly; an answer may
    carry tool calls (a JSON list of {name, arguments}) and its parsed JSON value; a golden
    item keeps the messages it was asked with, the variant's tools and response format
    (`shape`) and the tool calls it expects. All columns are new and NULL for what came before.
    """
    for column in ("messages", "tools", "tool_choice", "response_format"):
        db["run_variants"].add_column(column, str)
    db["run_prompts"].add_column("messages", str)
    db["responses"].add_column("tool_calls", str)
    db["responses"].add_column("json_value", str)
    for column in ("messages", "shape", "tool_calls"):
        db["golden_items"].add_column(column, str)


@migrations()
def m013_model_groups_and_embedding_endpoints(db: Database) -> None:
    # An endpoint imported from a LiteLLM model group holds its deployments (JSON: each
    # one's litellm_params, credentials as os.environ/NAME only) and the router's
    # settings; `info` is the entry's model_info (mode, max_input_tokens, base_model, …)
    # and `tpm` its tokens per minute. A response records which deployment answered.
    db["endpoints"].add_column("deployments", str)
    db["endpoints"].add_column("router", str)
    db["endpoints"].add_column("info", str)
    db["endpoints"].add_column("tpm", float)
    db["responses"].add_column("deployment", str)


@migrations()
def m014_golden_change_details(db: Database) -> None:
    # What a golden change did to an item's texts, in words: which text moved from
    # accepted to rejected (or back) because a later label said so, and what a fix resolved.
    db["golden_changes"].add_column("detail", str)


@migrations()
def m015_run_leases(db: Database) -> None:
    # A run is a row that workers claim (core/store/leases.py): the worker sampling it holds
    # its lease (`lease_owner`, `lease_expires_at`, seconds since the epoch on the
    # database's clock) and renews it at every heartbeat; once it has expired, another
    # worker takes the run over. `retry_errors` is set by a queued resume that also
    # samples error cells again. NULL lease: nobody has claimed the run since this migration.
    db["runs"].add_column("lease_owner", str)
    db["runs"].add_column("lease_expires_at", float)
    db["runs"].add_column("retry_errors", int, not_null_default=0)


@migrations()
def m016_labels_by_reviewer(db: Database) -> None:
    # The Review page reads one reviewer's labels of a run at every rerun: without this
    # index that is a scan of every reviewer's labels (bench/bench_team.py).
    db["labels"].create_index(["reviewer", "response_id"])


@migrations()
def m017_expected_calls(db: Database) -> None:
    # A reviewer's correction of a tool-call answer may be the calls it should have made
    # (JSON: a list of {name, arguments}, arguments parsed), beside or instead of a text
    # correction. NULL for every label made before, and for text corrections.
    db["labels"].add_column("correction_calls", str)
    db["label_history"].add_column("correction_calls", str)

@migrations()
def m018_settling_and_answer_cache(db: Database) -> None:
    # A run sampled until settled (core/run/settle.py): per cell, the samples taken, whether
    # its consistency interval met the run's precision, why its sampling ended ("precision"
    # or "max_n"; NULL while open) and the anytime-valid interval the decision rested on.
    db["cell_settling"].create(
        {"run_id": int, "variant": int, "input": int, "model": str, "temperature": float, "n": int,
         "settled": int, "stopped_by": str, "consistency": float, "consistency_low": float,
         "consistency_high": float, "updated_at": str},
        pk=("run_id", "variant", "input", "model", "temperature"),
        not_null={"run_id", "variant", "input", "model", "temperature", "n", "settled"},
    )
    # The answer cache is the answers already stored (core/run/cache.py): each answer's key
    # (endpoint, messages, tools, response format, parameters, seed and sample index), and,
    # for an answer reused from another run, the answer it copies. NULL for answers from before.
    db["responses"].add_column("cache_key", str)
    db["responses"].add_column("cached_from", int)
    db["responses"].create_index(["cache_key"])
    # Provider batches (core/run/batched.py): recorded the moment the provider creates one, so
    # a restarted server or a resume polls the same batch and never submits its requests twice.
    db["provider_batches"].create(
        {"id": int, "run_id": int, "model": str, "batch_id": str, "input_file_id": str, "status": str,
         "total": int, "completed": int, "failed": int, "cells": str, "collected": int, "submitted_at": str,
         "updated_at": str},
        pk="id", not_null={"run_id", "model", "batch_id", "cells", "collected"},
    )
    db["provider_batches"].create_index(["batch_id"], unique=True)


@migrations()
def m019_traces(db: Database) -> None:
    # Production traffic: one row per LLM call imported from a trace file or received by
    # `spread collect` (core/formats/traces). `source_key` is the span ("span:TRACE:SPAN"),
    # the Langfuse observation or the log line's hash: importing the same file again adds
    # nothing. JSON columns hold text (messages, tools, parameters, output_calls,
    # output_json, prompt_variables, attributes); `input_hash` groups calls with the same
    # conversation, `prompt_key` calls of the same prompt. Credentials never reach a row.
    db["llm_calls"].create(
        {
            "id": int, "source_key": str, "format": str, "started_at": str, "ended_at": str,
            "service": str, "operation": str, "provider": str, "model_requested": str,
            "model_reported": str, "prompt_name": str, "prompt_version": str, "prompt_template": str,
            "prompt_variables": str, "system": str, "messages": str, "tools": str, "parameters": str,
            "output_text": str, "output_calls": str, "output_json": str, "finish_reason": str,
            "input_tokens": int, "output_tokens": int, "cost_usd": float, "latency_ms": float,
            "ttft_ms": float, "trace_id": str, "span_id": str, "parent_span_id": str, "status": str,
            "error_message": str, "attributes": str, "input_hash": str, "prompt_key": str,
            "redactions": int, "source": str, "imported_at": str,
        },
        pk="id",
    )
    db["llm_calls"].create_index(["source_key"], unique=True)
    db["llm_calls"].create_index(["started_at"])
    db["llm_calls"].create_index(["prompt_key", "input_hash"])
    db["llm_calls"].create_index(["input_hash"])


@migrations()
def m020_monitors(db: Database) -> None:
    # A monitor re-samples a golden set on a model on a schedule and compares each check
    # with a pinned baseline regress run (core/watch/). `every` is 15m|1h|6h|1d or a cron
    # expression; `alerts` a JSON list of webhook URLs; `next_due_at` the next due time
    # (UTC, ISO seconds), which a worker advances with a conditional update to claim it;
    # `announced_state` the state the webhooks were last told of (a failed delivery is
    # tried again at the next check). `baseline_n`: samples per item of a `first` baseline.
    db["monitors"].create(
        {"id": int, "name": str, "set_name": str, "model": str, "temperature": float, "n": int, "baseline_n": int,
         "every": str, "baseline_id": int, "baseline_first": int, "alpha": float, "alerts": str, "paused": int, "state": str,
         "announced_state": str,
         "next_due_at": str, "last_check_at": str, "last_alert_at": str, "created_at": str, "created_by": str,
         "updated_at": str},
        pk="id",
    )
    db["monitors"].create_index(["name"], unique=True)
    # One row per execution of a monitor: unique (monitor_id, due_at), so one due time is
    # run once across processes. `signals` is the JSON list of drift signals.
    db["monitor_checks"].create(
        {"id": int, "monitor_id": int, "due_at": str, "forced": int, "claimed_by": str, "started_at": str,
         "finished_at": str, "status": str, "regress_id": int, "run_id": int, "verdict": str, "state": str,
         "pass_rate": float, "pass_rate_low": float, "pass_rate_high": float, "signals": str, "alerted": int,
         "error": str},
        pk="id",
    )
    db["monitor_checks"].create_index(["monitor_id", "due_at"], unique=True)
    # Each webhook delivery of a change of state: its attempts and how it ended. The URL
    # is not repeated here (it may carry a token): `target` is its host only.
    db["monitor_alerts"].create(
        {"id": int, "monitor_id": int, "check_id": int, "state": str, "target": str, "status": str,
         "attempts": int, "http_status": int, "error": str, "created_at": str, "delivered_at": str},
        pk="id",
    )
    db["monitor_alerts"].create_index(["monitor_id", "id"])


@migrations()
def m021_served_requests(db: Database) -> None:
    """`spread serve` (core/serve/): each request is an input of an ordinary run, one run per
    route, day and request shape (tools, tool choice, response format: a run's variant
    holds them), so that Spread, Review and golden sets work on served answers unchanged.
    `serve_runs` finds that run again; `serve_requests` keeps what the endpoint decided
    for each request (the caller's keys and headers are never stored)."""
    db["serve_runs"].create(
        {"route": str, "day": str, "shape": str, "run_id": int},
        pk=("route", "day", "shape"),
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["serve_requests"].create(
        {"id": int, "run_id": int, "input": int, "route": str, "answered_by": str, "created_at": str,
         "asked": int, "k": int, "failed": int, "filtered": int, "clusters": int, "confidence": float,
         "semantic_entropy": float, "threshold": float, "abstained": int, "fallback": int, "status": int,
         "chosen_response_id": int, "latency_ms": float, "slowest_call_ms": float, "prompt_tokens": int,
         "completion_tokens": int, "cost_usd": float, "error": str},
        pk="id",
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["serve_requests"].create_index(["run_id", "input"], unique=True)
    db["serve_requests"].create_index(["route", "created_at"])


@migrations()
def m022_regress_requests(db: Database) -> None:
    """A regression asked for, kept with its run from the moment it is planned: whoever
    finishes the run (the worker that sampled it, or the one that took it over when that
    one died) computes the verdict from it, so a regression outlives the server that
    started it. `settings` is the candidate and the gates as JSON, as in regress_runs;
    `error` why no verdict could be given (e.g. no answer could be scored). A request
    whose run has a row in regress_runs has been judged."""
    db["regress_requests"].create(
        {"run_id": int, "set_name": str, "settings": str, "baseline_id": int, "created_by": str,
         "created_at": str, "error": str},
        pk="run_id",
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["regress_requests"].create_index(["set_name", "run_id"])

@migrations()
def m023_system_fingerprint(db: Database) -> None:
    """The provider's `system_fingerprint` with each answer (NULL where none was given): a
    monitor shows when it changes under an unchanged model name (core/watch/signals.py)."""
    db["responses"].add_column("system_fingerprint", str)


# Any fixed number: the key of the advisory lock that serialises migrations across servers.
MIGRATION_LOCK = 0x5350524541


def migrate_postgres(db) -> None:
    if not migrations.pending(db):
        return
    db.execute("select pg_advisory_lock(?)", [MIGRATION_LOCK])  # two servers starting at once: one migrates
    try:
        migrations.apply(db)
    finally:
        db.execute("select pg_advisory_unlock(?)", [MIGRATION_LOCK])


def migrate_sqlite(db: Database, write: Callable) -> None:
    if db.journal_mode != "wal":
        db.enable_wal()
    if migrations.pending(db):
        with write():  # two processes opening a new file at once: one migrates, one waits
            migrations.apply(db)


def describe(db) -> dict[str, dict]:
    """Each table's columns (name → int, float, str or bytes), primary key and unique
    indexes, the same shape on both engines: what `spread db copy` copies and what the
    tests compare between a SQLite file and a PostgreSQL database."""
    if getattr(db, "engine", "sqlite") == "postgresql":
        tables = [t for t in db.table_names()]
        described = {t: {"columns": {c: k.__name__ for c, k in db[t].columns_dict.items()}, "pk": db[t].pks}
                     for t in tables}
        unique = db.execute(
            "select t.relname, array_agg(a.attname order by array_position(i.indkey::int2[], a.attnum)) "
            "from pg_index i join pg_class t on t.oid = i.indrelid join pg_namespace n on n.oid = t.relnamespace "
            "join pg_attribute a on a.attrelid = t.oid and a.attnum = any(i.indkey) "
            "where n.nspname = current_schema() and i.indisunique and not i.indisprimary "
            "group by t.relname, i.indexrelid").fetchall()
    else:
        described = {t.name: {"columns": {c: k.__name__ for c, k in t.columns_dict.items()}, "pk": t.pks}
                     for t in db.tables}
        unique = [(t.name, list(index.columns)) for t in db.tables for index in t.indexes
                  if index.unique and not index.name.startswith("sqlite_autoindex")]  # the primary key's own
    for table in described.values():
        table["unique"] = []
    for table, columns in unique:
        described[table]["unique"].append(list(columns))
    for table in described.values():
        table["unique"].sort()
    return described
