"""Stored LLM calls from production (`llm_calls`, migration m019): written by the trace
importer and the OTLP receiver (core/formats/traces), read by the Traces page, the
production spread and the sampling of real inputs. Every function takes a `db` from
`store.connection()` or `store.transaction()`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

COLUMNS = (
    "source_key", "format", "started_at", "ended_at", "service", "operation", "provider", "model_requested",
    "model_reported", "prompt_name", "prompt_version", "prompt_template", "prompt_variables", "system",
    "messages", "tools", "parameters", "output_text", "output_calls", "output_json", "finish_reason",
    "input_tokens", "output_tokens", "cost_usd", "latency_ms", "ttft_ms", "trace_id", "span_id",
    "parent_span_id", "status", "error_message", "attributes", "input_hash", "prompt_key", "redactions",
    "source", "imported_at",
)
JSON_COLUMNS = ("messages", "tools", "parameters", "output_calls", "output_json", "prompt_variables", "attributes")


@dataclass
class CallFilter:
    """Which calls: a time range (ISO 8601, `until` excluded), a service, a model (requested
    or reported), a prompt (its `prompt_key`), an input (its `input_hash`)."""
    since: str | None = None
    until: str | None = None
    service: str | None = None
    model: str | None = None
    prompt_key: str | None = None
    input_hash: str | None = None
    prompt_name: str | None = None
    prompt_version: str | None = None

    def where(self) -> tuple[str, list]:
        clauses, params = [], []
        if self.since:
            clauses.append("started_at >= ?")
            params.append(self.since)
        if self.until:
            clauses.append("started_at < ?")
            params.append(self.until)
        if self.service:
            clauses.append("service = ?")
            params.append(self.service)
        if self.model:
            clauses.append("(model_requested = ? or model_reported = ?)")
            params += [self.model, self.model]
        if self.prompt_key:
            clauses.append("prompt_key = ?")
            params.append(self.prompt_key)
        if self.prompt_name:
            clauses.append("prompt_name = ?")
            params.append(self.prompt_name)
        if self.prompt_version:
            clauses.append("prompt_version = ?")
            params.append(self.prompt_version)
        if self.input_hash:
            clauses.append("input_hash = ?")
            params.append(self.input_hash)
        return (" where " + " and ".join(clauses) if clauses else ""), params


def existing_keys(db, keys: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start:start + 500]
        found |= {row[0] for row in db.execute(
            f"select source_key from llm_calls where source_key in ({', '.join('?' * len(chunk))})", chunk).fetchall()}
    return found


def insert_calls(db, rows: list[dict]) -> int:
    """Insert the calls not stored yet (by `source_key`); the number inserted. Call inside
    one transaction: a concurrent writer of the same key loses nothing, adds nothing."""
    unique = {row["source_key"]: row for row in rows}
    known = existing_keys(db, list(unique))
    new = [row for key, row in unique.items() if key not in known]
    if new:
        db.conn.executemany(
            f"insert into llm_calls ({', '.join(COLUMNS)}) values ({', '.join('?' * len(COLUMNS))}) "
            "on conflict (source_key) do nothing", [[row.get(c) for c in COLUMNS] for row in new])
    return len(new)


def count(db, where: CallFilter | None = None) -> int:
    clause, params = (where or CallFilter()).where()
    return db.execute(f"select count(*) from llm_calls{clause}", params).fetchone()[0]


def _decoded(row: dict) -> dict:
    for column in JSON_COLUMNS:
        if row.get(column) is not None:
            row[column] = json.loads(row[column])
    return row


def get_call(db, call_id: int) -> dict | None:
    rows = list(db.query("select * from llm_calls where id = ?", [call_id]))
    return _decoded(rows[0]) if rows else None


def calls(db, where: CallFilter | None = None, *, limit: int = 200, offset: int = 0) -> list[dict]:
    clause, params = (where or CallFilter()).where()
    return [_decoded(row) for row in db.query(
        f"select * from llm_calls{clause} order by started_at desc, id desc limit ? offset ?",
        params + [limit, offset])]


def facets(db) -> dict[str, list[str]]:
    """The services and models seen, for filters."""
    return {
        "services": [r[0] for r in db.execute(
            "select distinct service from llm_calls where service is not null order by service").fetchall()],
        "models": [r[0] for r in db.execute(
            "select distinct coalesce(model_reported, model_requested) from llm_calls "
            "where coalesce(model_reported, model_requested) is not null order by 1").fetchall()],
    }


def time_range(db, where: CallFilter | None = None) -> tuple[str | None, str | None]:
    clause, params = (where or CallFilter()).where()
    return tuple(db.execute(f"select min(started_at), max(started_at) from llm_calls{clause}", params).fetchone())


def volume(db, where: CallFilter | None = None, *, bucket: str = "hour") -> list[dict]:
    """Calls per time bucket (hour: the ISO text's first 13 characters, day: 10), service
    and model, with their tokens and known cost."""
    width = {"hour": 13, "day": 10, "minute": 16}[bucket]
    clause, params = (where or CallFilter()).where()
    return list(db.query(
        f"select substr(started_at, 1, {width}) as bucket, coalesce(service, '') as service, "
        "coalesce(model_reported, model_requested, '') as model, count(*) as calls, "
        "sum(input_tokens) as input_tokens, sum(output_tokens) as output_tokens, sum(cost_usd) as cost_usd, "
        "sum(case when status = 'error' then 1 else 0 end) as errors "
        f"from llm_calls{clause} group by 1, 2, 3 order by 1, 2, 3", params))


def measures(db, where: CallFilter | None = None, *, limit: int = 200_000) -> list[dict]:
    """Latency, cost and tokens per call (for distributions), newest first."""
    clause, params = (where or CallFilter()).where()
    return list(db.query(
        "select latency_ms, ttft_ms, cost_usd, input_tokens, output_tokens, "
        "coalesce(model_reported, model_requested, '') as model, coalesce(service, '') as service "
        f"from llm_calls{clause} order by started_at desc limit ?", params + [limit]))


def top_prompts(db, where: CallFilter | None = None, *, limit: int = 20) -> list[dict]:
    """The most frequent prompts: calls, distinct inputs, inputs seen more than once."""
    clause, params = (where or CallFilter()).where()
    return list(db.query(
        "select prompt_key, max(prompt_name) as prompt_name, max(prompt_version) as prompt_version, "
        "max(system) as system, count(*) as calls, count(distinct input_hash) as inputs, "
        "min(started_at) as first_seen, max(started_at) as last_seen, sum(cost_usd) as cost_usd "
        f"from llm_calls{clause} group by prompt_key order by count(*) desc, prompt_key limit ?",
        params + [limit]))


def repeated_inputs(db, where: CallFilter | None = None, *, min_calls: int = 2, limit: int = 50) -> list[dict]:
    """Inputs seen at least `min_calls` times, the most frequent first."""
    clause, params = (where or CallFilter()).where()
    return list(db.query(
        "select input_hash, max(prompt_key) as prompt_key, count(*) as calls, "
        "count(distinct coalesce(model_reported, model_requested)) as models, min(id) as example_id "
        f"from llm_calls{clause} group by input_hash having count(*) >= ? order by count(*) desc, input_hash "
        "limit ?", params + [min_calls, limit]))


def answers_of_inputs(db, input_hashes: list[str], where: CallFilter | None = None) -> list[dict]:
    """Every call answering these inputs: what the production spread of each is made of."""
    if not input_hashes:
        return []
    clause, params = (where or CallFilter()).where()
    joiner = " and " if clause else " where "
    return [_decoded(row) for row in db.query(
        "select id, input_hash, prompt_key, messages, tools, system, prompt_template, prompt_variables, "
        "output_text, output_calls, output_json, finish_reason, input_tokens, output_tokens, cost_usd, "
        "latency_ms, ttft_ms, status, error_message, started_at, "
        "coalesce(model_reported, model_requested, '') as model, model_reported, parameters "
        f"from llm_calls{clause}{joiner}input_hash in ({', '.join('?' * len(input_hashes))}) order by id",
        params + list(input_hashes))]


def distinct_inputs(db, where: CallFilter | None = None, *, limit: int | None = None) -> list[dict]:
    """One row per distinct input (its latest call): what sampling real inputs draws from."""
    clause, params = (where or CallFilter()).where()
    sql = ("select id, input_hash, prompt_key, prompt_name, prompt_version, prompt_template, prompt_variables, "
           "messages, tools, system, count_calls from ("
           "select llm_calls.*, count(*) over (partition by input_hash) as count_calls, "
           "row_number() over (partition by input_hash order by started_at desc, id desc) as newest "
           f"from llm_calls{clause}) latest where newest = 1 order by input_hash")
    if limit:
        sql += " limit ?"
        params = params + [limit]
    return [_decoded(row) for row in db.query(sql, params)]
