"""The responses table: every answer a model gave, one row per (run, wording, input,
model, temperature, sample), written the moment it arrives and never rewritten.
"""

from __future__ import annotations

import time

from core.store.clock import now_iso
from core.store.database import is_postgres, write
from core.store.schema import Database

RESPONSE_FIELDS = (
    "run_id", "variant", "input", "model", "temperature", "sample_idx", "seed", "text", "finish_reason",
    "prompt_tokens", "completion_tokens", "cost_usd", "latency_ms", "ttft_ms", "attempts",
    "error_type", "error_message", "provider_model", "created_at", "deployment", "tool_calls", "json_value",
    "cache_key", "cached_from",  # the answer cache (core/run/cache.py)
    "system_fingerprint",
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


def of_run(db: Database, run_id: int) -> list[dict]:
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


def received(db: Database, run_id: int) -> tuple[int, int | None]:
    """(answers, the last one's id) of a run: what changes whenever an answer arrives."""
    return tuple(db.execute("select count(*), max(id) from responses where run_id = ?", [run_id]).fetchone())
