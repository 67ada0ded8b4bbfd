"""The endpoints table: the team's catalogue of named models (core/models/endpoints/ reads
and validates them). `key_env` names the variable that holds a key, never the key."""

from __future__ import annotations

from core.store.clock import now_iso
from core.store.schema import Database


def all_rows(db: Database) -> list[dict]:
    return list(db.query("select * from endpoints order by lower(name), name"))


def names(db: Database) -> list[str]:
    return [r[0] for r in db.execute("select name from endpoints order by lower(name), name").fetchall()]


def row(db: Database, name: str) -> dict | None:
    rows = list(db.query("select * from endpoints where name = ?", [name]))
    return rows[0] if rows else None


def fingerprint(db: Database) -> str:
    """Changes whenever the catalogue does."""
    count, latest = db.execute("select count(*), max(updated_at) from endpoints").fetchone()
    return f"{count}:{latest}"


def created(db: Database, name: str) -> tuple[str, str] | None:
    """(created_at, created_by) of the endpoint of that name, if there is one."""
    found = db.execute("select created_at, created_by from endpoints where name = ?", [name]).fetchone()
    return tuple(found) if found else None


def put(db: Database, columns: dict, created: tuple[str, str]) -> None:
    """Write the endpoint `columns` describe, replacing one of that name, keeping when and by
    whom it was first made."""
    db["endpoints"].insert(columns | {"created_at": created[0], "created_by": created[1], "updated_at": now_iso()},
                           replace=True)


def delete(db: Database, name: str) -> bool:
    """Whether there was one to delete."""
    return db.execute("delete from endpoints where name = ?", [name]).rowcount > 0
