"""What `spread serve` keeps (core/serve/): the run each request joins, and what was decided.

A served request is an input of an ordinary run, one run per route, day and request
shape; its k answers are that input's samples. `serve_runs` finds the run again, and
`serve_requests` holds one row per request: how many answers were asked, failed and set
aside, the confidence reported, whether it abstained or fell back, the latency added.
"""

from __future__ import annotations

import json

from core.store.clock import now_iso
from core.store.database import hold, write
from core.store.responses import RESPONSE_FIELDS, SAVE_RESPONSE_CONFLICT, insert_rows
from core.store.runs import create_run, spec_of
from core.store.schema import Database

REQUEST_FIELDS = ("run_id", "input", "route", "answered_by", "created_at", "asked", "k", "failed", "filtered",
                  "clusters", "confidence", "semantic_entropy", "threshold", "abstained", "fallback", "status",
                  "chosen_response_id", "latency_ms", "slowest_call_ms", "prompt_tokens", "completion_tokens",
                  "cost_usd", "error")


def find_run(db: Database, route: str, day: str, shape: str) -> int | None:
    row = db.execute("select run_id from serve_runs where route = ? and day = ? and shape = ?",
                     [route, day, shape]).fetchone()
    return row[0] if row else None


def open_run(db: Database, route: str, day: str, shape: str, *, spec: dict, variant: dict, created_by: str) -> int:
    """The run of this route, day and shape: found, else made (a run with no input yet)."""
    found = find_run(db, route, day, shape)
    if found is not None:
        return found
    run_id = create_run(db, spec=spec, planned=0, variants=[variant], inputs=[], rendered={}, sent={},
                        created_by=created_by)
    with write(db):
        hold(db, f"serve-run:{route}:{day}:{shape}")
        db.execute("update runs set status = 'done', started_at = ? where id = ?", [now_iso(), run_id])
        db.execute("insert into serve_runs (route, day, shape, run_id) values (?, ?, ?, ?) "
                   "on conflict (route, day, shape) do nothing", [route, day, shape, run_id])
        winner = find_run(db, route, day, shape)
        if winner != run_id:  # another server made it first: this empty run goes
            for table in ("run_variants", "run_inputs", "run_prompts"):
                db.execute(f"delete from {table} where run_id = ?", [run_id])
            db.execute("delete from runs where id = ?", [run_id])
    return winner


def save_request(db: Database, run_id: int, *, vars: dict, system: str, prompt: str, messages: list[dict],
                 rows: list[dict], request: dict, checks: list[tuple[int, str, str, dict]],
                 chosen_sample: int | None) -> tuple[int, dict[int, int], int]:
    """One served request as one transaction: a new input of the run with the messages as
    sent, its answers (and error rows), their check results, and the decision.

    `rows` are response rows without run or input; `checks` are (sample index, check key,
    type, outcome {passed, score, reason}); `chosen_sample` is the answer returned.
    Returns (input, response id per sample index, request id)."""
    with write(db):
        hold(db, f"serve-run:{run_id}")
        (input_idx,) = db.execute("select coalesce(max(input), -1) + 1 from run_inputs where run_id = ?",
                                  [run_id]).fetchone()
        # Plain statements: sqlite-utils' insert lists the tables before each one, which was a
        # tenth of a served request's CPU (bench/bench_serve.py).
        db.execute("insert into run_inputs (run_id, input, vars) values (?, ?, ?)",
                   [run_id, input_idx, json.dumps(vars, ensure_ascii=False)])
        db.execute("insert into run_prompts (run_id, variant, input, system, prompt, messages) "
                   "values (?, 0, ?, ?, ?, ?)", [run_id, input_idx, system, prompt,
                                                 json.dumps(messages, ensure_ascii=False)])
        stamp = now_iso()
        values = [[{**row, "run_id": run_id, "input": input_idx, "variant": 0,
                    "created_at": row.get("created_at") or stamp}.get(f) for f in RESPONSE_FIELDS] for row in rows]
        insert_rows(db, "responses", RESPONSE_FIELDS, values, SAVE_RESPONSE_CONFLICT)
        ids = {sample: response_id for sample, response_id in db.execute(
            "select sample_idx, id from responses where run_id = ? and input = ?", [run_id, input_idx]).fetchall()}
        (spec_text,) = db.execute("select spec from runs where id = ?", [run_id]).fetchone()
        spec = spec_of(spec_text)
        spec["n_inputs"] = input_idx + 1
        spec["n"] = max(spec.get("n") or 0, len(rows))
        spec["temperatures"] = sorted({*spec.get("temperatures", []), *(row["temperature"] for row in rows)})
        spec["models"] = list(dict.fromkeys([*spec.get("models", []), *(row["model"] for row in rows)]))
        db.execute("update runs set spec = ?, planned = planned + ?, heartbeat_at = null, finished_at = ? "
                   "where id = ?", [json.dumps(spec), len(rows), stamp, run_id])
        if checks:
            db.conn.executemany(
                "insert into check_results (response_id, check_key, type, passed, score, reason, judge_calls, "
                "judge_cost_usd, created_at) values (?, ?, ?, ?, ?, ?, 0, null, ?) "
                "on conflict (response_id, check_key) do nothing",
                [(ids[sample], key, kind, None if o["passed"] is None else int(o["passed"]), o["score"], o["reason"],
                  stamp) for sample, key, kind, o in checks if sample in ids])
        record = {**request, "run_id": run_id, "input": input_idx, "created_at": stamp,
                  "chosen_response_id": ids.get(chosen_sample) if chosen_sample is not None else None}
        (request_id,) = db.execute(
            f"insert into serve_requests ({', '.join(REQUEST_FIELDS)}) values ({', '.join('?' * len(REQUEST_FIELDS))}) "
            "returning id", [record.get(f) for f in REQUEST_FIELDS]).fetchone()
    return input_idx, ids, request_id


def requests(db: Database, *, route: str | None = None, run_id: int | None = None, since: str | None = None,
             limit: int = 100_000) -> list[dict]:
    """Served requests, newest first."""
    where, params = [], []
    for column, value in (("route", route), ("run_id", run_id)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if since is not None:
        where.append("created_at >= ?")
        params.append(since)
    sql = "select * from serve_requests" + (" where " + " and ".join(where) if where else "")
    return list(db.query(sql + " order by id desc limit ?", [*params, limit]))


def served_runs(db: Database) -> list[dict]:
    return list(db.query("select * from serve_runs order by day desc, route"))


def chosen_verdicts(db: Database, *, route: str | None = None, run_id: int | None = None) -> list[dict]:
    """Each served request whose majority answer reviewers labelled: the confidence reported
    and every reviewer's verdict on that answer (one row per label)."""
    # Abstained requests count too: their majority answer is what a lower threshold returns.
    where, params = ["serve_requests.chosen_response_id is not null"], []
    if route is not None:
        where.append("serve_requests.route = ?")
        params.append(route)
    if run_id is not None:
        where.append("serve_requests.run_id = ?")
        params.append(run_id)
    return list(db.query(
        "select serve_requests.id as request_id, serve_requests.confidence, serve_requests.k, "
        "serve_requests.chosen_response_id as response_id, labels.reviewer, labels.verdict "
        "from serve_requests join labels on labels.response_id = serve_requests.chosen_response_id "
        f"where {' and '.join(where)} order by serve_requests.id", params))


def golden_set_runs(db: Database, name: str) -> list[int]:
    """The runs made on a golden set's items (spread regress), oldest first."""
    return [row[0] for row in db.execute(
        "select distinct run_id from regress_runs where set_name = ? and run_id is not null order by run_id",
        [name]).fetchall()]
