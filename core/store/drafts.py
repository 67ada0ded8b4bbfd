"""The drafts table: each reviewer's Playground plan as it is being written; it outlives
page visits, reloads and server restarts."""

from __future__ import annotations

import json

from core.store.clock import now_iso
from core.store.database import write
from core.store.schema import Database


def get_draft(db: Database, owner: str) -> dict | None:
    row = db.execute("select plan from drafts where owner = ?", [owner]).fetchone()
    return json.loads(row[0]) if row else None


def save_draft(db: Database, owner: str, plan: dict) -> None:
    with write(db):
        db["drafts"].upsert({"owner": owner, "plan": json.dumps(plan, ensure_ascii=False),
                             "updated_at": now_iso()}, pk="owner")
