"""The labels and label_history tables: each reviewer's current verdict on an answer (one
per reviewer and answer) and every change ever made to one, so nothing said is lost."""

from __future__ import annotations

import json
from typing import NamedTuple

from core.store.responses import insert_rows
from core.store.schema import Database

# The columns a label's content is made of (besides whose and which answer's it is).
FIELDS = ("verdict", "score", "tags", "correction", "note", "via_cluster", "correction_calls")
CHUNK = 500  # ids bound per statement: under SQLite's bound-parameter limit


def _chunks(ids):
    ids = list(ids)
    for start in range(0, len(ids), CHUNK):
        yield ids[start:start + CHUNK]


def _marks(chunk) -> str:
    return ",".join("?" * len(chunk))


def decode(row: dict) -> dict:
    row = dict(row)
    row["tags"] = json.loads(row["tags"]) if row.get("tags") else []
    row["correction_calls"] = json.loads(row["correction_calls"]) if row.get("correction_calls") else None
    return row


def existing_answers(db: Database, ids) -> set[int]:
    """Which of these response ids exist."""
    found = set()
    for chunk in _chunks(ids):
        found |= {r[0] for r in db.execute(f"select id from responses where id in ({_marks(chunk)})", chunk).fetchall()}
    return found


def tools_offered(db: Database, ids) -> list[list[dict] | None]:
    """The distinct tool lists the wordings of these answers declared (None: no tools)."""
    found: dict[str, list[dict] | None] = {}
    for chunk in _chunks(ids):
        for (tools,) in db.execute(
                "select distinct run_variants.tools from responses join run_variants on run_variants.run_id = "
                "responses.run_id and run_variants.variant = responses.variant "
                f"where responses.id in ({_marks(chunk)})", chunk).fetchall():
            found[tools or ""] = json.loads(tools) if tools else None
    return list(found.values())


def by_reviewer(db: Database, reviewer: str, ids: list[int]) -> dict[int, dict]:
    """This reviewer's current label rows of these answers, by response id (raw columns)."""
    return {row["response_id"]: row for row in db.query(
        f"select * from labels where reviewer = ? and response_id in ({_marks(ids)})", [reviewer, *ids])}


def write(db: Database, reviewer: str, values: dict, *, update_ids: list[int], insert_for: list[int],
          history_for: list[int], now: str) -> None:
    """Inside a transaction: set `values` (FIELDS) on the label rows `update_ids`, add this
    reviewer's label to the answers `insert_for`, and record the change of `history_for`:
    three statements, not two per answer (a round trip each on PostgreSQL)."""
    fields = [values[k] for k in FIELDS]
    db.conn.executemany(f"update labels set {', '.join(f'{k} = ?' for k in FIELDS)}, updated_at = ? where id = ?",
                        [[*fields, now, label_id] for label_id in update_ids])
    insert_rows(db, "labels", (*FIELDS, "response_id", "reviewer", "created_at", "updated_at"),
                [[*fields, rid, reviewer, now, now] for rid in insert_for])
    insert_rows(db, "label_history", (*FIELDS, "response_id", "reviewer", "changed_at"),
                [[*fields, rid, reviewer, now] for rid in history_for])


def of_answers(db: Database, response_ids: list[int], reviewer: str | None = None) -> list[dict]:
    """Every reviewer's current label of these answers (or only this reviewer's), decoded."""
    mine = " and reviewer = ?" if reviewer is not None else ""
    out = []
    for chunk in _chunks(response_ids):
        out += [decode(r) for r in db.query(
            f"select * from labels where response_id in ({_marks(chunk)}){mine} order by response_id, reviewer",
            chunk + ([reviewer] if reviewer is not None else []))]
    return out


def of_run(db: Database, run_id: int) -> list[dict]:
    return [decode(r) for r in db.query(
        "select labels.* from labels join responses on responses.id = labels.response_id "
        "where responses.run_id = ? order by labels.response_id, labels.reviewer", [run_id])]


def history(db: Database, response_id: int) -> list[dict]:
    return [decode(r) for r in db.query("select * from label_history where response_id = ? order by id",
                                        [response_id])]


def tag_lists(db: Database) -> list[list[str]]:
    """The tags of every label that has some (a scan of every label)."""
    return [json.loads(tags) for (tags,) in
            db.execute("select tags from labels where tags is not null and tags != '[]'").fetchall()]


def verdicts_of_run(db: Database, run_id: int, reviewer: str) -> dict[int, tuple[str, int | None]]:
    """response_id -> (verdict, via_cluster) of this reviewer's labels in a run."""
    return {rid: (verdict, via) for rid, verdict, via in db.execute(
        "select labels.response_id, labels.verdict, labels.via_cluster from labels "
        "join responses on responses.id = labels.response_id where responses.run_id = ? and labels.reviewer = ?",
        [run_id, reviewer]).fetchall()}


def disputed(db: Database, run_id: int) -> set[int]:
    """The answers of a run that reviewers gave different verdicts."""
    return {rid for (rid,) in db.execute(
        "select labels.response_id from labels join responses on responses.id = labels.response_id "
        "where responses.run_id = ? group by labels.response_id having count(distinct labels.verdict) > 1",
        [run_id]).fetchall()}


# --- agreement, counted in the database -----------------------------------------------

class Scope(NamedTuple):
    """Which labels: the SQL that joins and selects them, and its parameters."""
    join: str
    where: str
    params: list


def of_a_run(run_id: int) -> Scope:
    return Scope("join responses on responses.id = labels.response_id", "responses.run_id = ?", [run_id])


def of_these_answers(response_ids: list[int]) -> Scope:
    return Scope("", f"labels.response_id in ({_marks(response_ids)})", list(response_ids))


def reviewers_of(db: Database, scope: Scope) -> list[str]:
    join, where, params = scope
    return [r for (r,) in db.execute(
        f"select distinct labels.reviewer from labels {join} where {where} order by 1", params).fetchall()]


def verdict_count_rows(db: Database, scope: Scope, verdicts: tuple[str, ...], reviewers: int) -> list[tuple]:
    """Per answer every reviewer labelled: how many gave each verdict; then how many answers
    share each such row — (count of verdicts[0], …, answers). Fleiss' kappa and the percent
    need nothing else."""
    join, where, params = scope
    columns = ", ".join(f"sum(case when labels.verdict = '{v}' then 1 else 0 end) as v{k}"
                        for k, v in enumerate(verdicts))
    names = ", ".join(f"v{k}" for k in range(len(verdicts)))
    return db.execute(
        f"select {names}, count(*) from (select {columns} from labels {join} where {where} "
        f"group by labels.response_id having count(*) = ?) per_answer group by {names}",
        [*params, reviewers]).fetchall()


def verdict_pairs(db: Database, scope: Scope, first: str, second: str) -> list[tuple]:
    """(first's verdict, second's verdict, answers) over the answers both labelled."""
    join, where, params = scope
    return db.execute(
        "select labels.verdict, other.verdict, count(*) from labels join labels other "
        f"on other.response_id = labels.response_id and other.reviewer = ? {join} "
        f"where {where} and labels.reviewer = ? group by labels.verdict, other.verdict",
        [second, *params, first]).fetchall()


def answer_texts(db: Database, ids: list[int]) -> list[tuple[int, str, str | None]]:
    """(id, text, tool_calls JSON) of these answers."""
    return db.execute(f"select id, text, tool_calls from responses where id in ({_marks(ids)})", ids).fetchall()


def counts_for_cache(db: Database, run_id: int) -> tuple[tuple, tuple]:
    """(answers, max id) and (decisions, max id) of a run: what changes when its clusters may."""
    answers = db.execute("select count(*), max(id) from responses where run_id = ?", [run_id]).fetchone()
    decided = db.execute("select count(*), max(id) from cluster_decisions where run_id = ?", [run_id]).fetchone()
    return tuple(answers), tuple(decided)
