"""The runs table and its companions (prompts, run_variants, run_inputs, run_prompts): a
run's plan, the prompt version of each wording, its inputs and the prompt rendered for each
(wording, input), its status and who holds it.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from typing import Callable

from core.store.clock import now_iso
from core.store.database import hold, write
from core.store.schema import Database


def _prompt_hash(system: str, template: str) -> str:
    return hashlib.sha256(json.dumps([system, template]).encode()).hexdigest()


def _get_or_create_prompt(db: Database, name: str, system: str, template: str, who: str) -> int:
    """Same name and text: reuse. Same name, new text: the next version."""
    digest = _prompt_hash(system, template)
    hold(db, f"prompt:{name}")  # two servers saving a new version of one prompt: one after the other
    row = db.execute(
        "select id from prompts where name = ? and content_hash = ?", [name, digest]
    ).fetchone()
    if row:
        return row[0]
    (latest,) = db.execute(
        "select coalesce(max(version), 0) from prompts where name = ?", [name]
    ).fetchone()
    return db["prompts"].insert(
        {
            "name": name, "version": latest + 1, "system": system, "template": template,
            "content_hash": digest, "created_at": now_iso(), "created_by": who,
        }
    ).last_pk


def create_run(db: Database, *, spec: dict, planned: int, variants: list[dict] | None = None,
               inputs: list[dict] | None = None, rendered: dict[tuple[int, int], tuple[str, str]] | None = None,
               sent: dict[tuple[int, int], list[dict]] | None = None, created_by: str = "",
               along: Callable[[Database, int], None] | None = None) -> int:
    """Record a validated run plan in one transaction: the run, a prompt version per
    variant, its inputs, and the prompt rendered for each (variant, input).

    `variants` are {"label", "name", "system", "prompt"} and, for a conversation or a
    structured answer, "messages", "tools", "tool_choice", "response_format"; `rendered`
    maps (variant, input) to (system, prompt), `sent` to the messages as sent. Without them,
    the plan is one prompt (spec's) and one input. `along(db, run_id)` writes what another
    table keeps about the run (a regression's request) in the same transaction.
    """
    name = spec.get("name") or "untitled"
    if variants is None:
        variants = [{"label": "A", "name": "", "prompt": spec["prompt"], "system": spec.get("system") or ""}]
        inputs, rendered = [{}], {(0, 0): (spec.get("system") or "", spec["prompt"])}
    with write(db):
        # A wording is versioned under its own name; unnamed wordings of a run with several are
        # "run · A", "run · B": wording B is not a newer version of A.
        several = len(variants) > 1
        prompt_ids = [_get_or_create_prompt(
            db, v.get("name") or (f"{name} · {v.get('label') or 'A'}" if several else name), v.get("system") or "",
            v["prompt"], created_by) for v in variants]
        run_id = db["runs"].insert(
            {
                "prompt_id": prompt_ids[0], "name": name, "spec": json.dumps(spec),
                "status": "pending", "planned": planned, "created_at": now_iso(),
                "created_by": created_by,
            }
        ).last_pk
        db["run_variants"].insert_all(
            {"run_id": run_id, "variant": k, "label": v["label"], "prompt_id": prompt_ids[k],
             **{shape: _json_or_none(v.get(shape)) for shape in VARIANT_SHAPES}}
            for k, v in enumerate(variants))
        db["run_inputs"].insert_all(
            {"run_id": run_id, "input": k, "vars": json.dumps(values, ensure_ascii=False)}
            for k, values in enumerate(inputs))
        db["run_prompts"].insert_all(
            {"run_id": run_id, "variant": v, "input": i, "system": system, "prompt": prompt,
             "messages": _json_or_none((sent or {}).get((v, i)))}
            for (v, i), (system, prompt) in rendered.items())
        if along is not None:
            along(db, run_id)
        return run_id


# A variant's prompt shape, each stored as JSON (NULL: a text prompt, no tools, free text).
VARIANT_SHAPES = ("messages", "tools", "tool_choice", "response_format")


def _json_or_none(value) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


def run_variants(db: Database, run_id: int) -> list[dict]:
    """A run's prompt variants: index, label, and the prompt version each one is."""
    rows = list(db.query(
        "select run_variants.variant, run_variants.label, prompts.id as prompt_id, prompts.name, "
        "prompts.version, prompts.system, prompts.template as prompt, "
        + ", ".join(f"run_variants.{shape}" for shape in VARIANT_SHAPES) + " "
        "from run_variants join prompts on prompts.id = run_variants.prompt_id "
        "where run_variants.run_id = ? order by run_variants.variant", [run_id]))
    for row in rows:  # a text variant (made before shapes, or without them) has NULL shape columns
        for shape in VARIANT_SHAPES:
            value = row.pop(shape)
            if value is not None:
                row[shape] = json.loads(value)
    return rows


def run_inputs(db: Database, run_id: int) -> list[dict]:
    return [{"input": i, "vars": json.loads(v)} for i, v in db.execute(
        "select input, vars from run_inputs where run_id = ? order by input", [run_id]).fetchall()]


def rendered_prompts(db: Database, run_id: int) -> dict[tuple[int, int], tuple[str, str]]:
    """(variant, input) -> (system, prompt) as sent."""
    return {(v, i): (system, prompt) for v, i, system, prompt in db.execute(
        "select variant, input, system, prompt from run_prompts where run_id = ?", [run_id]).fetchall()}


def sent_messages(db: Database, run_id: int) -> dict[tuple[int, int], list[dict]]:
    """(variant, input) -> the messages sent, where kept (runs from before conversations
    sent their system message and prompt: `rendered_prompts`)."""
    return {(v, i): json.loads(messages) for v, i, messages in db.execute(
        "select variant, input, messages from run_prompts where run_id = ? and messages is not null",
        [run_id]).fetchall()}


def prompt_sent(db: Database, run_id: int, variant: int, input_idx: int) -> tuple[list[dict] | None, str, str] | None:
    """One (variant, input) of a run as sent: (messages where kept, system, prompt), or None."""
    row = db.execute("select messages, system, prompt from run_prompts where run_id = ? and variant = ? and input = ?",
                     [run_id, variant, input_idx]).fetchone()
    return None if row is None else (None if row[0] is None else json.loads(row[0]), row[1] or "", row[2] or "")


def prompt_answered(db: Database, response_id: int) -> tuple[list[dict] | None, str, str] | None:
    """What an answer was asked with, as `prompt_sent` gives it, or None."""
    row = db.execute("select run_prompts.messages, run_prompts.system, run_prompts.prompt from responses "
                     "join run_prompts on run_prompts.run_id = responses.run_id "
                     "and run_prompts.variant = responses.variant and run_prompts.input = responses.input "
                     "where responses.id = ?", [response_id]).fetchone()
    return None if row is None else (None if row[0] is None else json.loads(row[0]), row[1] or "", row[2] or "")


def set_run_status(db: Database, run_id: int, status: str) -> None:
    fields: dict = {"status": status, "heartbeat_at": time.time()}
    if status == "running":
        fields["started_at"] = now_iso()
        fields["finished_at"] = None
        fields["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    elif status in ("done", "cancelled", "failed"):
        fields["finished_at"] = now_iso()
    with write(db):
        db["runs"].update(run_id, fields)


def _with_effective_status(run: dict) -> dict:
    """A run marked running whose worker died or went quiet was interrupted (killed,
    server restart): its worker's process is gone from this host, or it stopped writing."""
    run = dict(run)
    if run["status"] in ("running", "cancelling") and (
            _worker_is_dead(run.get("worker")) or time.time() - (run["heartbeat_at"] or 0) > STALE_AFTER_S):
        run["status"] = "interrupted"
    return run


def _worker_is_dead(worker: str | None) -> bool:
    host, _, pid = (worker or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's worker: only its heartbeat can tell
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def get_run(db: Database, run_id: int) -> dict | None:
    rows = list(db.query(RUN_SUMMARY_SQL + " where runs.id = ? group by runs.id, prompts.version", [run_id]))
    if not rows:
        return None
    run = _with_effective_status(rows[0])
    run["spec"] = spec_of(run["spec"])
    return run


def spec_of(text: str) -> dict:
    """A run's stored plan; plans from before variants and inputs read as one of each."""
    spec = json.loads(text)
    spec.setdefault("variants", [{"label": "A", "name": "", "prompt": spec.get("prompt", ""),
                                  "system": spec.get("system") or ""}])
    spec.setdefault("n_inputs", 1)
    return spec


RUN_SUMMARY_SQL = """
select runs.id, runs.name, runs.status, runs.planned, runs.spec, runs.created_at,
       runs.started_at, runs.finished_at, runs.heartbeat_at, runs.created_by, runs.worker,
       prompts.version as prompt_version,
       count(responses.id) as received,
       count(responses.id) filter (where responses.error_type is null) as answers,
       count(responses.id) filter (where responses.error_type is not null) as errors,
       sum(responses.cost_usd) as cost_usd,
       count(responses.id) filter (where responses.error_type is null
                                  and responses.cost_usd is null) as unknown_cost,
       count(responses.id) filter (where responses.cached_from is not null) as cached
from runs
join prompts on prompts.id = runs.prompt_id
left join responses on responses.run_id = runs.id
"""


def list_runs(db: Database, limit: int = 200) -> list[dict]:
    rows = db.query(RUN_SUMMARY_SQL + " group by runs.id, prompts.version order by runs.id desc limit ?", [limit])
    runs = []
    for row in rows:
        run = _with_effective_status(row)
        spec = spec_of(run.pop("spec"))
        run["models"] = spec["models"]
        run["temperatures"] = spec["temperatures"]
        run["n"] = spec["n"]
        run["prompt"] = spec["variants"][0]["prompt"]
        run["variants"] = [v["label"] for v in spec["variants"]]
        run["n_inputs"] = spec["n_inputs"]
        runs.append(run)
    return runs


def run_state(db: Database, run_id: int) -> dict | None:
    """A run's status and plan without aggregating its answers: cheap at any size."""
    rows = list(db.query("select id, name, status, planned, spec, created_at, started_at, finished_at, heartbeat_at, "
                         "worker from runs where id = ?", [run_id]))
    if not rows:
        return None
    run = _with_effective_status(rows[0])
    run["spec"] = spec_of(run["spec"])
    return run


def newest_finished(db: Database, limit: int) -> list[int]:
    """The ids of the newest runs that finished sampling, newest first."""
    return [row["id"] for row in db.query("select id from runs where status = 'done' order by finished_at desc, id desc "
                                          "limit ?", [limit])]


def latest_active_run(db: Database) -> dict | None:
    """The newest run still pending or running, for a page opened mid-run."""
    row = db.execute(
        "select id from runs where status in ('queued', 'pending', 'running', 'cancelling') order by id desc limit 1"
    ).fetchone()
    return get_run(db, row[0]) if row else None


# A "running" run whose worker has not written for this long is shown as interrupted.
STALE_AFTER_S = 30.0


def prompt_version(db: Database, name: str, version: int) -> tuple[str, str] | None:
    """(system, template) of one version of a named prompt."""
    found = db.execute("select system, template from prompts where name = ? and version = ?", [name, version]).fetchone()
    return tuple(found) if found else None


def set_spec(db: Database, run_id: int, spec: dict) -> None:
    with write(db):
        db.execute("update runs set spec = ? where id = ?", [json.dumps(spec), run_id])


def ask_to_cancel(db: Database, run_id: int) -> None:
    """Mark a running run `cancelling`: whoever samples it stops at its next heartbeat."""
    with write(db):
        db.execute("update runs set status = 'cancelling' where id = ?", [run_id])
