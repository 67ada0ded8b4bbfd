"""Repository of `cell_settling`: per cell of a run sampled until settled, its samples and why they ended."""

from __future__ import annotations

from core.store import now_iso, write

CellKey = tuple  # (variant, input, model, temperature)

_COLUMNS = ("run_id", "variant", "input", "model", "temperature", "n", "settled", "stopped_by", "consistency",
            "consistency_low", "consistency_high", "updated_at")


def save(db, run_id: int, decisions: dict[CellKey, dict]) -> None:
    """Record the latest decision of each cell (one transaction)."""
    stamp = now_iso()
    rows = [[run_id, *key, d["n"], int(d["settled"]), d["stopped_by"], d["consistency"], d["consistency_low"],
             d["consistency_high"], stamp] for key, d in decisions.items()]
    if not rows:
        return
    with write(db):
        db.conn.executemany(
            f"insert into cell_settling ({', '.join(_COLUMNS)}) values ({', '.join('?' * len(_COLUMNS))}) "
            "on conflict (run_id, variant, input, model, temperature) do update set "
            + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[5:]), rows)


def load(db, run_id: int) -> dict[CellKey, dict]:
    """Each recorded cell's decision: n, settled (bool), stopped_by, its interval."""
    out = {}
    for row in db.query("select * from cell_settling where run_id = ?", [run_id]):
        key = (row["variant"], row["input"], row["model"], row["temperature"])
        out[key] = {"n": row["n"], "settled": bool(row["settled"]), "stopped_by": row["stopped_by"],
                    "consistency": row["consistency"], "consistency_low": row["consistency_low"],
                    "consistency_high": row["consistency_high"]}
    return out


def samples_taken(db, run_id: int) -> dict[CellKey, int]:
    """Per cell, the samples taken so far (answers and errors): the highest sample index + 1."""
    return {(v, i, m, t): n for v, i, m, t, n in db.execute(
        "select variant, input, model, temperature, max(sample_idx) + 1 from responses where run_id = ? "
        "group by variant, input, model, temperature", [run_id]).fetchall()}
