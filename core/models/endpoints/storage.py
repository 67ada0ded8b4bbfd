"""The catalogue in the store (the endpoints table): list, get, add, update, duplicate,
remove, and resolving a name (a catalogue entry, else a bare litellm id)."""

from __future__ import annotations

import json

from core.config import SpreadError
from core.models.endpoints.endpoint import Endpoint, bare
from core.models.endpoints.validation import validate
from core.store import Store, hold, now_iso, write
from core.store import endpoints as endpoint_rows

COLUMNS = ("name", "model", "api_base", "key_env", "params", "price_in", "price_out", "max_concurrency", "rpm",
           "timeout_s", "tpm", "deployments", "router", "info")
JSON_COLUMNS = {"params": "{}", "deployments": "[]", "router": "{}", "info": "{}"}


def _from_row(row: dict) -> Endpoint:
    data = {k: row.get(k) for k in COLUMNS}
    for column, empty in JSON_COLUMNS.items():
        data[column] = json.loads(row.get(column) or empty)
    return Endpoint(**data, source="catalogue")


def _row(endpoint: Endpoint) -> dict:
    row = {k: getattr(endpoint, k) for k in COLUMNS}
    for column in JSON_COLUMNS:
        row[column] = json.dumps(row[column], sort_keys=True)
    return row


def _no_database(store: Store) -> bool:
    """No file yet is an empty catalogue: reading it must not create one (a dry run writes nothing)."""
    return not store.exists


def list_endpoints(store: Store) -> list[Endpoint]:
    if _no_database(store):
        return []
    with store.connection() as db:
        return [_from_row(r) for r in endpoint_rows.all_rows(db)]


def names(store: Store) -> list[str]:
    if _no_database(store):
        return []
    with store.connection() as db:
        return endpoint_rows.names(db)


def embedding_names(store: Store) -> list[str]:
    """The endpoints that embed text (model_info mode: embedding), for meaning clusters."""
    return [e.name for e in list_endpoints(store) if e.mode == "embedding"]


def get(store: Store, name: str) -> Endpoint | None:
    if _no_database(store):
        return None
    with store.connection() as db:
        found = endpoint_rows.row(db, (name or "").strip())
    return _from_row(found) if found else None


def embedding_endpoint(store: Store, name: str) -> Endpoint:
    """The catalogue endpoint named `name` that makes embeddings, or a one-line SpreadError."""
    endpoint = get(store, name)
    if endpoint is None:
        raise SpreadError(f"no endpoint named {name!r} (spread models list)", "embeddings")
    if endpoint.mode != "embedding":
        raise SpreadError(f"endpoint {name!r} is not an embedding endpoint (its model_info needs mode: embedding)",
                          "embeddings")
    return endpoint


def fingerprint(store: Store) -> str:
    """Changes whenever the catalogue does: a cache key for pages."""
    if _no_database(store):
        return "0:"
    with store.connection() as db:
        return endpoint_rows.fingerprint(db)


def add(store: Store, endpoint: Endpoint, *, who: str = "", replace: bool = False) -> Endpoint:
    """Add an endpoint (or, with replace, overwrite the one of that name)."""
    endpoint = validate(endpoint)
    with store.connection() as db, write(db):
        _insert(db, endpoint, who, replace)
    return endpoint


def add_all(store: Store, endpoints: list[Endpoint], *, who: str = "", replace: bool = False) -> None:
    """Several endpoints in one transaction: all of them or none."""
    with store.connection() as db, write(db):
        for endpoint in endpoints:
            _insert(db, endpoint, who, replace)


def _insert(db, endpoint: Endpoint, who: str, replace: bool) -> None:
    hold(db, f"endpoint:{endpoint.name}")  # two servers adding one name: the second is refused
    existing = endpoint_rows.created(db, endpoint.name)
    if existing and not replace:
        raise SpreadError(f"an endpoint named {endpoint.name!r} already exists: edit it, or remove it first", "name")
    endpoint_rows.put(db, _row(endpoint), existing or (now_iso(), who))


def update(store: Store, name: str, endpoint: Endpoint, *, who: str = "") -> Endpoint:
    """Change an endpoint's settings, its name included. Runs already made keep theirs."""
    endpoint = validate(endpoint)
    with store.connection() as db, write(db):
        for locked in sorted({name, endpoint.name}):  # one order everywhere: no deadlock
            hold(db, f"endpoint:{locked}")
        created = endpoint_rows.created(db, name)
        if created is None:
            raise SpreadError(f"no endpoint named {name!r}", "name")
        if endpoint.name != name:
            if endpoint_rows.created(db, endpoint.name):
                raise SpreadError(f"an endpoint named {endpoint.name!r} already exists", "name")
            endpoint_rows.delete(db, name)
        endpoint_rows.put(db, _row(endpoint), created)
    return endpoint


def duplicate(store: Store, name: str, new_name: str | None = None, *, who: str = "") -> Endpoint:
    """A copy under a new name ("NAME copy", "NAME copy 2", … unless given), to edit."""
    original = get(store, name)
    if original is None:
        raise SpreadError(f"no endpoint named {name!r}", "name")
    taken = set(names(store))
    if not new_name:
        new_name = f"{name} copy"
        k = 2
        while new_name in taken:
            new_name, k = f"{name} copy {k}", k + 1
    copy = Endpoint.from_settings(original.settings() | {"name": new_name})
    return add(store, copy, who=who)


def remove(store: Store, name: str) -> None:
    """Remove an endpoint from the catalogue. Runs made with it keep its settings."""
    with store.connection() as db, write(db):
        if not endpoint_rows.delete(db, name):
            raise SpreadError(f"no endpoint named {name!r}", "name")


def resolve(store: Store, name: str, api_base: str | None = None) -> Endpoint:
    """A catalogue entry by that name, else the name as a bare litellm id (with api_base)."""
    found = get(store, name)
    return found if found is not None else bare(name, api_base)
