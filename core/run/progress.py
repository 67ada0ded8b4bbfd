"""A run's live progress per model × temperature, for a page that refreshes every second.

Counting a run's answers again on every refresh costs more the larger the run (7 ms at
10,000 answers, 58 ms at 100,000, per viewer per second). `LiveProgress` counts once,
then reads only the rows stored since its last look: a refresh costs the same at 10
answers or 100,000.

One thing it cannot see is a row replaced in place: a resume that retries error cells
turns error rows into answers without adding rows. It counts everything again when the
run ends, so the final figures are exact.

During a database outage it keeps showing its last state, with `outage` saying why it
is not moving (core/store/status.py), instead of failing the panel every second.
"""

from __future__ import annotations

from core.store import Store, responses, runs
from core.store import status as database_status

ACTIVE = ("queued", "pending", "running", "cancelling")


class LiveProgress:
    def __init__(self, store: Store, run_id: int):
        self.store, self.run_id = store, run_id
        self.last_id = 0
        self.status: str | None = None
        self._cells: dict[tuple[str, float], dict] = {}
        self._shown: dict | None = None

    def refresh(self) -> dict | None:
        """The run (as `runs.run_state`) with `counts` (per model × temperature: received,
        errors), `received` and `errors`; None if there is no such run. While the database
        cannot be reached, the last state with `outage` (one line); the error itself when
        there is no state yet to show."""
        try:
            self._shown = self._read()
        except Exception as error:
            outage = database_status.problem(error)
            if outage is None or self._shown is None:
                raise
            database_status.note(outage)
            return self._shown | {"outage": outage}
        return self._shown

    def _read(self) -> dict | None:
        with self.store.connection() as db:
            run = runs.run_state(db, self.run_id)
            if run is None:
                return None
            ended = self.status in ACTIVE and run["status"] not in ACTIVE
            if ended:
                self._cells, self.last_id = {}, 0
            rows, self.last_id = responses.cell_counts_after(db, self.run_id, self.last_id)
        self.status = run["status"]
        for row in rows:
            cell = self._cells.setdefault((row["model"], float(row["temperature"])),
                                          {"model": row["model"], "temperature": row["temperature"],
                                           "received": 0, "errors": 0, "answers": 0, "cost_usd": 0.0,
                                           "unknown_cost": 0})
            for field in ("received", "errors", "answers", "cost_usd", "unknown_cost"):
                cell[field] += row[field]
        counts = list(self._cells.values())
        return run | {"counts": counts, "received": sum(c["received"] for c in counts),
                      "errors": sum(c["errors"] for c in counts)}
