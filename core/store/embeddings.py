"""The embeddings table: one vector per (method, normalised answer text), shared by every
run that gave that answer."""

from __future__ import annotations

from core.store.clock import now_iso
from core.store.database import write
from core.store.schema import Database


def get_embeddings(db: Database, method: str, hashes: list[str]) -> dict[str, bytes]:
    found = {}
    for start in range(0, len(hashes), 500):  # stay under SQLite's bound-parameter limit
        chunk = hashes[start:start + 500]
        found.update(db.execute(
            f"select text_hash, vector from embeddings where method = ? and text_hash in ({','.join('?' * len(chunk))})",
            [method, *chunk],
        ).fetchall())
    return found


def save_embeddings(db: Database, method: str, vectors: dict[str, bytes], dims: int) -> None:
    with write(db):
        db.conn.executemany(
            "insert into embeddings (method, text_hash, dims, vector, created_at) values (?, ?, ?, ?, ?) "
            "on conflict do nothing",
            [(method, h, dims, v, now_iso()) for h, v in vectors.items()],
        )
