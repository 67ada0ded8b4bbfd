"""The golden_sets, golden_items and golden_changes tables: versioned sets of inputs with
their reference, accepted and rejected answers; every change is a new version, recorded
with who made it and what it did. Items are soft-deleted (`deleted_at`)."""

from __future__ import annotations

import json

from core.store.clock import now_iso
from core.store.schema import Database


def set_named(db: Database, name: str) -> dict | None:
    rows = list(db.query("select * from golden_sets where name = ?", [name]))
    return rows[0] if rows else None


def insert_set(db: Database, name: str, description: str, created_by: str) -> int:
    return db["golden_sets"].insert({"name": name, "description": description, "version": 0,
                                     "created_at": now_iso(), "created_by": created_by}).last_pk


def sets_with_counts(db: Database) -> list[dict]:
    """Every set with `items`, how many items it holds (removed ones aside), by name."""
    return list(db.query(
        "select golden_sets.*, count(golden_items.id) filter (where golden_items.deleted_at is null) as items "
        "from golden_sets left join golden_items on golden_items.set_id = golden_sets.id "
        "group by golden_sets.id order by golden_sets.name"))


def bump(db: Database, set_id: int, action: str, item_key: str | None, who: str, detail: list[str] = ()) -> int:
    """Inside a transaction: the set's next version, and the change that made it."""
    db.execute("update golden_sets set version = version + 1 where id = ?", [set_id])
    (version,) = db.execute("select version from golden_sets where id = ?", [set_id]).fetchone()
    db["golden_changes"].insert({"set_id": set_id, "version": version, "action": action, "item_key": item_key,
                                 "changed_by": who, "changed_at": now_iso(), "detail": "; ".join(detail) or None})
    return version


def set_version(db: Database, set_id: int, version: int) -> None:
    db.execute("update golden_sets set version = ? where id = ?", [version, set_id])


def item(db: Database, set_id: int, item_key: str) -> dict | None:
    found = list(db.query("select * from golden_items where set_id = ? and item_key = ?", [set_id, item_key]))
    return found[0] if found else None


def insert_item(db: Database, row: dict) -> None:
    db["golden_items"].insert(row)


def update_item(db: Database, item_id: int, columns: dict) -> None:
    db["golden_items"].update(item_id, columns | {"updated_at": now_iso()})


def set_texts(db: Database, set_id: int, item_key: str, accepted: list[str], rejected: list[str],
              reference: str | None) -> None:
    db.execute("update golden_items set accepted = ?, rejected = ?, reference = ?, updated_at = ? "
               "where set_id = ? and item_key = ?",
               [json.dumps(accepted, ensure_ascii=False), json.dumps(rejected, ensure_ascii=False), reference,
                now_iso(), set_id, item_key])


def items_of(db: Database, set_id: int, include_removed: bool = False) -> list[dict]:
    sql = "select * from golden_items where set_id = ?" + ("" if include_removed else " and deleted_at is null")
    return list(db.query(sql + " order by id", [set_id]))


def changes_of(db: Database, set_id: int) -> list[dict]:
    return list(db.query("select * from golden_changes where set_id = ? order by id", [set_id]))


def answer(db: Database, response_id: int) -> dict | None:
    rows = list(db.query("select * from responses where id = ?", [response_id]))
    return rows[0] if rows else None


def answers_to_input(db: Database, run_id: int, input_idx: int) -> list[dict]:
    """(id, text, tool_calls) of every answer (errors aside) to one input of a run."""
    return list(db.query("select id, text, tool_calls from responses where run_id = ? and input = ? "
                         "and error_type is null", [run_id, input_idx]))


def drop_if_empty(db: Database, set_id: int) -> None:
    """Inside a transaction: remove a set that holds no item (one made for an import that failed)."""
    if not db.execute("select 1 from golden_items where set_id = ?", [set_id]).fetchone():
        db.execute("delete from golden_changes where set_id = ?", [set_id])
        db.execute("delete from golden_sets where id = ?", [set_id])
