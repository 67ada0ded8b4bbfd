"""The store: one `Store` over a SQLite file (the default) or a team's PostgreSQL
(`SPREAD_DB=postgresql://…`), the schema, and every SQL statement Spread makes, in
repositories named after their tables.

- database.py: `Store` (units of work, transactions, locks) and what a failure means;
- schema.py: the numbered migrations, applied on every open;
- runs.py, responses.py, labels.py, golden.py, endpoints.py, leases.py, checks.py,
  regressions.py, decisions.py, drafts.py, embeddings.py: the queries, by table;
- postgres.py: PostgreSQL behind sqlite-utils' API; copy.py: a database copied between
  engines; status.py: what a page and the log say when the database fails.

Queries are written once, in the SQL both engines accept. May import: the base modules
(core.config, core.display, core.jsonvalue) only.
"""

from core.store.clock import now_iso
from core.store.database import (LoginRefused, Store, Unreachable, commits_without_waiting_for_disk, hold,
                                 is_postgres, unreachable, write)
from core.store.schema import Database, describe, migrations

__all__ = ["Database", "LoginRefused", "Store", "Unreachable", "commits_without_waiting_for_disk", "describe",
           "hold", "is_postgres", "migrations", "now_iso", "unreachable", "write"]
