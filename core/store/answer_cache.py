"""Repository of the answer cache: stored answers by their request's key (core/run/cache.py)."""

from __future__ import annotations

CHUNK = 500  # keys per query: well inside both engines' limits on parameters


def answers(db, keys: list[str], run_id: int) -> dict[str, dict]:
    """For each key answered before (a good answer of another run), the earliest such answer."""
    found: dict[str, dict] = {}
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start:start + CHUNK]
        rows = db.query(f"select * from responses where cache_key in ({', '.join('?' * len(chunk))}) "
                        "and error_type is null and run_id != ? order by id", [*chunk, run_id])
        for row in rows:
            found.setdefault(row["cache_key"], row)
    return found


def new_cost(db, run_id: int) -> dict:
    """A run's answers reused from the cache, and the cost of the others: what it spent (None
    when an answer it paid for has no known price)."""
    row = db.execute("select count(*) filter (where cached_from is not null), "
                     "coalesce(sum(cost_usd) filter (where cached_from is null), 0), "
                     "count(*) filter (where cached_from is null and error_type is null and cost_usd is null) "
                     "from responses where run_id = ?", [run_id]).fetchone()
    return {"cached": row[0], "cost_usd_new": None if row[2] else row[1]}  # unknown, never a made-up $0


def by_model(db, run_id: int) -> dict[str, dict]:
    """Per model: samples taken by calls (`calls`), reused from the cache (`cached`), and the
    cost of the calls (`cost_usd_new`; None when an answer's price is unknown)."""
    return {row["model"]: {"calls": row["calls"], "cached": row["cached"],
                           "cost_usd_new": None if row["unpriced"] else row["cost"]}
            for row in db.query(
                "select model, count(*) filter (where cached_from is null) as calls, "
                "count(*) filter (where cached_from is not null) as cached, "
                "coalesce(sum(cost_usd) filter (where cached_from is null), 0) as cost, "
                "count(*) filter (where cached_from is null and error_type is null and cost_usd is null) as unpriced "
                "from responses where run_id = ? group by model order by model", [run_id])}
