"""The store: schema, numbered migrations and every query Spread makes, on a SQLite file
(the default) or a team's PostgreSQL (`SPREAD_DB=postgresql://…`, see core/store/postgres.py).

Queries are written once, in the SQL both engines accept. Rules, because a team shares one file:
- WAL and a busy timeout on every connection; one connection per unit of work
  (`connect()`), never shared across threads.
- A write that reads first starts with BEGIN IMMEDIATE (`write()`): a deferred
  BEGIN that reads then writes fails at once when another writer holds the lock.
- Migrations are numbered functions applied, under that lock, on every open.

The package: this module (schema, migrations, queries), postgres.py (the PostgreSQL
engine), copy.py (a database copied between engines), status.py (what a page and the
log say when the database fails). May import: the base modules (core.config,
core.display, core.jsonvalue) only.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from core import config


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

BUSY_TIMEOUT_MS = 30_000
# A "running" run whose worker has not written for this long is shown as interrupted.
STALE_AFTER_S = 30.0

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
    # A run is a row that workers claim (core/run/lease.py): the worker sampling it holds
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


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


_migrated: set[str] = set()


def is_postgres(db) -> bool:
    return getattr(db, "engine", "sqlite") == "postgresql"


@contextmanager
def connect(target: str | Path | None = None) -> Iterator[Database]:
    """One connection for one unit of work, on the SQLite file or the PostgreSQL database
    `target` names (default: `SPREAD_DB`). Creates the file and applies migrations."""
    target = config.database(target) if target else config.db_path()
    if config.is_url(target):
        with _connect_postgres(str(target)) as db:
            yield db
        return
    path = Path(target)
    if path.is_dir():
        raise config.SpreadError(f"database path {path} is a folder, not a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000)
    except (OSError, sqlite3.Error) as e:
        raise config.SpreadError(f"cannot open database {path}: {e}") from None
    db = Database(conn)
    try:
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA foreign_keys = ON")
        if str(path) not in _migrated:
            _migrate(db, path)
            _migrated.add(str(path))
        yield db
    except sqlite3.DatabaseError as e:
        if "file is not a database" in str(e):
            raise config.SpreadError(f"{path} is not a SQLite database") from None
        raise
    finally:
        conn.close()


@contextmanager
def _connect_postgres(url: str) -> Iterator[Database]:
    from core.store import postgres

    try:
        raw = postgres.pool.get(url)
    except postgres.psycopg.Error as e:
        raise opening_failed(e, url) from None
    db = postgres.PostgresDatabase(raw)
    try:
        if url not in _migrated:
            _migrate_postgres(db)
            _migrated.add(url)
        yield db
    finally:
        postgres.pool.put(url, raw)


def _first_line(error: Exception, url: str | None = None) -> str:
    """An error's first line, scrubbed of the database's secrets (libpq quotes URLs,
    conninfo strings and the token it could not parse)."""
    return config.scrub((str(error).strip().splitlines() or [type(error).__name__])[0], url)


# libpq's words for a login the server refused (no SQLSTATE is given before a session exists).
_LOGIN_REFUSED = ("authentication failed", "no password supplied", "pg_hba.conf", "password is required",
                  "not permitted to log in")


def opening_failed(error: Exception, url: str) -> config.SpreadError:
    """What a failed PostgreSQL connection means, as one line without secrets: the server is
    unreachable (worth retrying), it refused the login, or the URL cannot be read."""
    why = _first_line(error, url)
    message = f"cannot open database {config.shown(url)}: {why}"
    where, who = config.server(url), config.user(url)
    if any(words in why for words in _LOGIN_REFUSED) or ('role "' in why and "does not exist" in why):
        return LoginRefused(message, where=where, user=who)
    if "connection option" in why or "URI" in why or "connection info string" in why:
        return config.InvalidDatabase(config.shown(url), why)
    if "does not exist" in why:  # the database named: a fix for the operator, not a wait
        return config.SpreadError(message)
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(error, psycopg.OperationalError):
        return Unreachable(message, where=where, user=who)
    return config.SpreadError(message)


# Any fixed number: the key of the advisory lock that serialises migrations across servers.
MIGRATION_LOCK = 0x5350524541


def _migrate_postgres(db) -> None:
    if not migrations.pending(db):
        return
    db.execute("select pg_advisory_lock(?)", [MIGRATION_LOCK])  # two servers starting at once: one migrates
    try:
        migrations.apply(db)
    finally:
        db.execute("select pg_advisory_unlock(?)", [MIGRATION_LOCK])


def _migrate(db: Database, path: Path) -> None:
    if db.journal_mode != "wal":
        db.enable_wal()
    if migrations.pending(db):
        with write(db):  # two processes opening a new file at once: one migrates, one waits
            migrations.apply(db)


def schema(db: Database) -> dict[str, dict]:
    """Each table's columns (name → int, float, str or bytes), primary key and unique
    indexes, the same shape on both engines: what `spread db copy` copies and what the
    tests compare between a SQLite file and a PostgreSQL database."""
    if is_postgres(db):
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


@contextmanager
def write(db: Database) -> Iterator[Database]:
    """One logical change as one transaction, holding the write lock from the start
    (on PostgreSQL a plain transaction: row locks, unique keys and `lock()` do that work)."""
    if is_postgres(db):
        with db.transaction():
            yield db
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.conn.rollback()
        raise
    else:
        db.conn.commit()


class Unreachable(config.SpreadError):
    """The PostgreSQL server could not be reached (stopped, restarting, refusing connections).
    `where` is its HOST:PORT, `user` the user the URL logs in as: what a page may show."""

    def __init__(self, message: str, *, where: str = "", user: str = ""):
        super().__init__(message)
        self.where, self.user = where, user


class LoginRefused(config.SpreadError):
    """The PostgreSQL server refused the login (a wrong password, an unknown user): waiting
    does not fix it, the URL does."""

    def __init__(self, message: str, *, where: str = "", user: str = ""):
        super().__init__(message)
        self.where, self.user = where, user


def unreachable(error: BaseException) -> bool:
    """An error that says the database cannot be reached for now (a PostgreSQL server
    stopping or restarting, a dropped connection, a SQLite file locked past the busy
    timeout): the work is worth retrying, not abandoning."""
    if isinstance(error, Unreachable):
        return True
    if isinstance(error, sqlite3.OperationalError):
        return "locked" in str(error)
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(error, psycopg.OperationalError)


@contextmanager
def commits_without_waiting_for_disk(db: Database) -> Iterator[Database]:
    """For this connection, while inside: a commit returns once the database has it, before
    it is on disk (an operating-system crash, not a killed process, can take the last back)."""
    db.execute("set synchronous_commit = off" if is_postgres(db) else "PRAGMA synchronous = NORMAL")
    try:
        yield db
    finally:
        if is_postgres(db):  # the connection goes back to the pool: labels keep full syncs
            db.execute("reset synchronous_commit")


def lock(db: Database, name: str) -> None:
    """Inside `write(db)`: hold `name` until the transaction ends, so that two writers that
    read then write the same thing (a reviewer's label, a golden set) take turns instead
    of both acting on what they read. SQLite's BEGIN IMMEDIATE already holds the whole
    file; PostgreSQL takes a transaction-scoped advisory lock on the name."""
    if is_postgres(db):
        db.execute("select pg_advisory_xact_lock(hashtext(?))", [name])


# --- prompts and runs -------------------------------------------------------------

def _prompt_hash(system: str, template: str) -> str:
    return hashlib.sha256(json.dumps([system, template]).encode()).hexdigest()


def _get_or_create_prompt(db: Database, name: str, system: str, template: str, who: str) -> int:
    """Same name and text: reuse. Same name, new text: the next version."""
    digest = _prompt_hash(system, template)
    lock(db, f"prompt:{name}")  # two servers saving a new version of one prompt: one after the other
    row = db.execute(
        "select id from prompts where name = ? and content_hash = ?", [name, digest]
    ).fetchone()
    if row:
        return row[0]
    (latest,) = db.execute(
        "select coalesce(max(version), 0) from prompts where name = ?", [name]
    ).fetchone()
    return db["prompts"].insert(
        {
            "name": name, "version": latest + 1, "system": system, "template": template,
            "content_hash": digest, "created_at": now_iso(), "created_by": who,
        }
    ).last_pk


def create_run(db: Database, *, spec: dict, planned: int, variants: list[dict] | None = None,
               inputs: list[dict] | None = None, rendered: dict[tuple[int, int], tuple[str, str]] | None = None,
               sent: dict[tuple[int, int], list[dict]] | None = None, created_by: str = "") -> int:
    """Record a validated run plan in one transaction: the run, a prompt version per
    variant, its inputs, and the prompt rendered for each (variant, input).

    `variants` are {"label", "name", "system", "prompt"} and, for a conversation or a
    structured answer, "messages", "tools", "tool_choice", "response_format"; `rendered`
    maps (variant, input) to (system, prompt), `sent` to the messages as sent. Without them,
    the plan is one prompt (spec's) and one input.
    """
    name = spec.get("name") or "untitled"
    if variants is None:
        variants = [{"label": "A", "name": "", "prompt": spec["prompt"], "system": spec.get("system") or ""}]
        inputs, rendered = [{}], {(0, 0): (spec.get("system") or "", spec["prompt"])}
    with write(db):
        # A wording is versioned under its own name; unnamed wordings of a run with several are
        # "run · A", "run · B": wording B is not a newer version of A.
        several = len(variants) > 1
        prompt_ids = [_get_or_create_prompt(
            db, v.get("name") or (f"{name} · {v.get('label') or 'A'}" if several else name), v.get("system") or "",
            v["prompt"], created_by) for v in variants]
        run_id = db["runs"].insert(
            {
                "prompt_id": prompt_ids[0], "name": name, "spec": json.dumps(spec),
                "status": "pending", "planned": planned, "created_at": now_iso(),
                "created_by": created_by,
            }
        ).last_pk
        db["run_variants"].insert_all(
            {"run_id": run_id, "variant": k, "label": v["label"], "prompt_id": prompt_ids[k],
             **{shape: _json_or_none(v.get(shape)) for shape in VARIANT_SHAPES}}
            for k, v in enumerate(variants))
        db["run_inputs"].insert_all(
            {"run_id": run_id, "input": k, "vars": json.dumps(values, ensure_ascii=False)}
            for k, values in enumerate(inputs))
        db["run_prompts"].insert_all(
            {"run_id": run_id, "variant": v, "input": i, "system": system, "prompt": prompt,
             "messages": _json_or_none((sent or {}).get((v, i)))}
            for (v, i), (system, prompt) in rendered.items())
        return run_id


# A variant's prompt shape, each stored as JSON (NULL: a text prompt, no tools, free text).
VARIANT_SHAPES = ("messages", "tools", "tool_choice", "response_format")


def _json_or_none(value) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


def cluster_decisions(db: Database, run_id: int) -> list[dict]:
    """Reviewers' merge and split decisions on a run's clusters, in the order they were made."""
    return list(db.query("select * from cluster_decisions where run_id = ? order by id", [run_id]))


def run_variants(db: Database, run_id: int) -> list[dict]:
    """A run's prompt variants: index, label, and the prompt version each one is."""
    rows = list(db.query(
        "select run_variants.variant, run_variants.label, prompts.id as prompt_id, prompts.name, "
        "prompts.version, prompts.system, prompts.template as prompt, "
        + ", ".join(f"run_variants.{shape}" for shape in VARIANT_SHAPES) + " "
        "from run_variants join prompts on prompts.id = run_variants.prompt_id "
        "where run_variants.run_id = ? order by run_variants.variant", [run_id]))
    for row in rows:  # a text variant of any release reads as before
        for shape in VARIANT_SHAPES:
            value = row.pop(shape)
            if value is not None:
                row[shape] = json.loads(value)
    return rows


def run_inputs(db: Database, run_id: int) -> list[dict]:
    return [{"input": i, "vars": json.loads(v)} for i, v in db.execute(
        "select input, vars from run_inputs where run_id = ? order by input", [run_id]).fetchall()]


def rendered_prompts(db: Database, run_id: int) -> dict[tuple[int, int], tuple[str, str]]:
    """(variant, input) -> (system, prompt) as sent."""
    return {(v, i): (system, prompt) for v, i, system, prompt in db.execute(
        "select variant, input, system, prompt from run_prompts where run_id = ?", [run_id]).fetchall()}


def sent_messages(db: Database, run_id: int) -> dict[tuple[int, int], list[dict]]:
    """(variant, input) -> the messages sent, where kept (runs from before conversations
    sent their system message and prompt: `rendered_prompts`)."""
    return {(v, i): json.loads(messages) for v, i, messages in db.execute(
        "select variant, input, messages from run_prompts where run_id = ? and messages is not null",
        [run_id]).fetchall()}


def prompt_sent(db: Database, run_id: int, variant: int, input_idx: int) -> tuple[list[dict] | None, str, str] | None:
    """One (variant, input) of a run as sent: (messages where kept, system, prompt), or None."""
    row = db.execute("select messages, system, prompt from run_prompts where run_id = ? and variant = ? and input = ?",
                     [run_id, variant, input_idx]).fetchone()
    return None if row is None else (None if row[0] is None else json.loads(row[0]), row[1] or "", row[2] or "")


def prompt_answered(db: Database, response_id: int) -> tuple[list[dict] | None, str, str] | None:
    """What an answer was asked with, as `prompt_sent` gives it, or None."""
    row = db.execute("select run_prompts.messages, run_prompts.system, run_prompts.prompt from responses "
                     "join run_prompts on run_prompts.run_id = responses.run_id "
                     "and run_prompts.variant = responses.variant and run_prompts.input = responses.input "
                     "where responses.id = ?", [response_id]).fetchone()
    return None if row is None else (None if row[0] is None else json.loads(row[0]), row[1] or "", row[2] or "")


def set_run_status(db: Database, run_id: int, status: str) -> None:
    fields: dict = {"status": status, "heartbeat_at": time.time()}
    if status == "running":
        fields["started_at"] = now_iso()
        fields["finished_at"] = None
        fields["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    elif status in ("done", "cancelled", "failed"):
        fields["finished_at"] = now_iso()
    with write(db):
        db["runs"].update(run_id, fields)


def _with_effective_status(run: dict) -> dict:
    """A run marked running whose worker died or went quiet was interrupted (killed,
    server restart): its worker's process is gone from this host, or it stopped writing."""
    run = dict(run)
    if run["status"] in ("running", "cancelling") and (
            _worker_is_dead(run.get("worker")) or time.time() - (run["heartbeat_at"] or 0) > STALE_AFTER_S):
        run["status"] = "interrupted"
    return run


def _worker_is_dead(worker: str | None) -> bool:
    host, _, pid = (worker or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's worker: only its heartbeat can tell
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def get_run(db: Database, run_id: int) -> dict | None:
    rows = list(db.query(RUN_SUMMARY_SQL + " where runs.id = ? group by runs.id, prompts.version", [run_id]))
    if not rows:
        return None
    run = _with_effective_status(rows[0])
    run["spec"] = spec_of(run["spec"])
    return run


def spec_of(text: str) -> dict:
    """A run's stored plan; plans from before variants and inputs read as one of each."""
    spec = json.loads(text)
    spec.setdefault("variants", [{"label": "A", "name": "", "prompt": spec.get("prompt", ""),
                                  "system": spec.get("system") or ""}])
    spec.setdefault("n_inputs", 1)
    return spec


RUN_SUMMARY_SQL = """
select runs.id, runs.name, runs.status, runs.planned, runs.spec, runs.created_at,
       runs.started_at, runs.finished_at, runs.heartbeat_at, runs.created_by, runs.worker,
       prompts.version as prompt_version,
       count(responses.id) as received,
       count(responses.id) filter (where responses.error_type is null) as answers,
       count(responses.id) filter (where responses.error_type is not null) as errors,
       sum(responses.cost_usd) as cost_usd,
       count(responses.id) filter (where responses.error_type is null
                                  and responses.cost_usd is null) as unknown_cost
from runs
join prompts on prompts.id = runs.prompt_id
left join responses on responses.run_id = runs.id
"""


def list_runs(db: Database, limit: int = 200) -> list[dict]:
    rows = db.query(RUN_SUMMARY_SQL + " group by runs.id, prompts.version order by runs.id desc limit ?", [limit])
    runs = []
    for row in rows:
        run = _with_effective_status(row)
        spec = spec_of(run.pop("spec"))
        run["models"] = spec["models"]
        run["temperatures"] = spec["temperatures"]
        run["n"] = spec["n"]
        run["prompt"] = spec["variants"][0]["prompt"]
        run["variants"] = [v["label"] for v in spec["variants"]]
        run["n_inputs"] = spec["n_inputs"]
        runs.append(run)
    return runs


# --- responses ----------------------------------------------------------------------

RESPONSE_FIELDS = (
    "run_id", "variant", "input", "model", "temperature", "sample_idx", "seed", "text", "finish_reason",
    "prompt_tokens", "completion_tokens", "cost_usd", "latency_ms", "ttft_ms", "attempts",
    "error_type", "error_message", "provider_model", "created_at", "deployment", "tool_calls", "json_value",
)


def save_response(db: Database, response: dict) -> None:
    """Write one answer (or error row) the moment it arrives (see `save_responses`)."""
    save_responses(db, [response])


def save_responses(db: Database, responses: list[dict]) -> None:
    """Write answers (or error rows) of one run in one transaction, with the run's heartbeat.

    A good answer replaces an earlier error row for the same cell (a retried resume);
    it never overwrites a good answer, so running a plan twice cannot duplicate or lose one.
    On PostgreSQL the batch is one COPY: a fraction of the time of a row-by-row insert.
    """
    if not responses:
        return
    cells: dict[tuple, list] = {}
    stamp = now_iso()  # once per batch: they arrived together
    for response in responses:
        row = {field: response.get(field) for field in RESPONSE_FIELDS}
        row["variant"], row["input"] = row["variant"] or 0, row["input"] or 0
        row["created_at"] = row["created_at"] or stamp
        cell = tuple(row[f] for f in RESPONSE_FIELDS[:6])
        earlier = cells.get(cell)  # one insert may not touch a row twice: settle it here
        if earlier is None or earlier[RESPONSE_FIELDS.index("error_type")] is not None:
            cells[cell] = [row[f] for f in RESPONSE_FIELDS]
    with write(db):
        insert_rows(db, "responses", RESPONSE_FIELDS, list(cells.values()), SAVE_RESPONSE_CONFLICT)
        for run_id in {response["run_id"] for response in responses}:
            db.execute("update runs set heartbeat_at = ? where id = ?", [time.time(), run_id])


SAVE_RESPONSE_CONFLICT = (
    "on conflict (run_id, variant, input, model, temperature, sample_idx) do update set "
    f"{', '.join(f'{f} = excluded.{f}' for f in RESPONSE_FIELDS[6:])} where responses.error_type is not null"
)


def insert_rows(db: Database, table: str, columns: tuple[str, ...], rows: list[list], on_conflict: str = "") -> None:
    """Many rows at once, inside the caller's transaction: one prepared insert run per row
    (SQLite; a few rows on PostgreSQL), or on PostgreSQL, from a few dozen rows on, one
    COPY and one insert, several times faster there (core/store/postgres.py; bench/bench_store.py)."""
    if is_postgres(db) and len(rows) >= COPY_FROM_ROWS:
        db.copy_insert(table, columns, rows, on_conflict)
    elif rows:
        db.conn.executemany(f"insert into {table} ({', '.join(columns)}) "
                            f"values ({', '.join('?' * len(columns))}) {on_conflict}", rows)


# Below this, COPY's extra statements cost more than they save (copy18's measurements).
COPY_FROM_ROWS = 50


def done_cells(db: Database, run_id: int, *, include_errors: bool = True) -> set[tuple[int, int, str, float, int]]:
    """The (variant, input, model, temperature, sample_idx) cells that already have a row."""
    sql = "select variant, input, model, temperature, sample_idx from responses where run_id = ?"
    if not include_errors:
        sql += " and error_type is null"
    return {tuple(row) for row in db.execute(sql, [run_id]).fetchall()}


def responses(db: Database, run_id: int) -> list[dict]:
    return list(
        db.query(
            "select * from responses where run_id = ? order by variant, input, model, temperature, sample_idx",
            [run_id],
        )
    )


def deployment_counts(db: Database, run_id: int) -> dict[str, dict[str, int]]:
    """Per model group: how many answers each of its deployments gave."""
    counts: dict[str, dict[str, int]] = {}
    for model, deployment, n in db.execute(
            "select model, deployment, count(*) from responses where run_id = ? and deployment is not null "
            "group by model, deployment order by model, deployment", [run_id]).fetchall():
        counts.setdefault(model, {})[deployment] = n
    return counts


def cell_counts(db: Database, run_id: int) -> list[dict]:
    """Per model × temperature: rows received and how many are errors."""
    return list(db.query(
        "select model, temperature, count(*) as received, "
        "count(*) filter (where error_type is not null) as errors "
        "from responses where run_id = ? group by model, temperature",
        [run_id],
    ))


def cost_by_model(db: Database, run_id: int) -> dict[str, dict]:
    """Per model: rows received, good answers, their known cost and how many have no price."""
    return {row["model"]: row for row in db.query(
        "select model, count(*) as received, count(*) filter (where error_type is null) as answers, "
        "coalesce(sum(cost_usd), 0) as cost_usd, "
        "count(*) filter (where error_type is null and cost_usd is null) as unknown_cost, "
        "sum(completion_tokens) as completion_tokens "
        "from responses where run_id = ? group by model", [run_id])}


def cell_counts_after(db: Database, run_id: int, after_id: int) -> tuple[list[dict], int]:
    """Per model × temperature, the rows stored after response `after_id`, and the last id
    seen: live progress reads what is new, not the whole run. (`+run_id` keeps SQLite on
    the rowid range instead of the run's index, which would visit every row of the run.)"""
    rows = list(db.query(
        "select model, temperature, count(*) as received, count(*) filter (where error_type is not null) as errors, "
        "count(*) filter (where error_type is null) as answers, coalesce(sum(cost_usd), 0) as cost_usd, "
        "count(*) filter (where error_type is null and cost_usd is null) as unknown_cost, "
        "max(id) as last_id from responses where +run_id = ? and id > ? group by model, temperature",
        [run_id, after_id],
    ))
    return rows, max([after_id] + [row.pop("last_id") for row in rows])


def run_state(db: Database, run_id: int) -> dict | None:
    """A run's status and plan without aggregating its answers: cheap at any size."""
    rows = list(db.query("select id, name, status, planned, spec, created_at, started_at, finished_at, heartbeat_at, "
                         "worker from runs where id = ?", [run_id]))
    if not rows:
        return None
    run = _with_effective_status(rows[0])
    run["spec"] = spec_of(run["spec"])
    return run


def get_draft(db: Database, owner: str) -> dict | None:
    row = db.execute("select plan from drafts where owner = ?", [owner]).fetchone()
    return json.loads(row[0]) if row else None


def save_draft(db: Database, owner: str, plan: dict) -> None:
    with write(db):
        db["drafts"].upsert({"owner": owner, "plan": json.dumps(plan, ensure_ascii=False),
                             "updated_at": now_iso()}, pk="owner")


def latest_active_run(db: Database) -> dict | None:
    """The newest run still pending or running, for a page opened mid-run."""
    row = db.execute(
        "select id from runs where status in ('queued', 'pending', 'running', 'cancelling') order by id desc limit 1"
    ).fetchone()
    return get_run(db, row[0]) if row else None


def get_embeddings(db: Database, method: str, hashes: list[str]) -> dict[str, bytes]:
    found = {}
    for start in range(0, len(hashes), 500):  # stay under SQLite's bound-parameter limit
        chunk = hashes[start:start + 500]
        found.update(db.execute(
            f"select text_hash, vector from embeddings where method = ? and text_hash in ({','.join('?' * len(chunk))})",
            [method, *chunk],
        ).fetchall())
    return found


def save_embeddings(db: Database, method: str, vectors: dict[str, bytes], dims: int) -> None:
    with write(db):
        db.conn.executemany(
            "insert into embeddings (method, text_hash, dims, vector, created_at) values (?, ?, ?, ?, ?) "
            "on conflict do nothing",
            [(method, h, dims, v, now_iso()) for h, v in vectors.items()],
        )
