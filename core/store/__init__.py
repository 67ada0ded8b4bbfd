"""The store: one `Store` (core/store/database.py) over a SQLite file (the default) or a
team's PostgreSQL (`SPREAD_DB=postgresql://…`, core/store/postgres.py), the schema and its
numbered migrations (schema.py), and the queries, written once in the SQL both engines
accept.

The package: database.py (Store, units of work, errors), schema.py (migrations), this
module (queries), postgres.py (the PostgreSQL engine), copy.py (a database copied between
engines), status.py (what a page and the log say when the database fails). May import:
the base modules (core.config, core.display, core.jsonvalue) only.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from core import config
from core.store.database import (BUSY_TIMEOUT_MS, LoginRefused, Store, Unreachable, commits_without_waiting_for_disk,
                                 hold, is_postgres, opening_failed, unreachable, write)
from core.store.schema import Database, describe, migrations

# A "running" run whose worker has not written for this long is shown as interrupted.
STALE_AFTER_S = 30.0


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


_stores: dict[str, Store] = {}


@contextmanager
def connect(target: str | Path | None = None) -> Iterator[Database]:
    """One connection on the database `target` names (default: `SPREAD_DB`)."""
    target = config.database(target) if target else config.db_path()
    key = str(target)
    if key not in _stores:
        _stores[key] = Store(target)
    with _stores[key].connection() as db:
        yield db


def close_pools() -> None:
    for opened in _stores.values():
        opened.close()


schema = describe
lock = hold


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
