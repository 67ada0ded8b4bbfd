"""A run plan (prompt × models × temperatures × N) and the engine that fans it out.

The engine is one coroutine, `execute(run_id)`: it reads the plan from the store,
works out which cells are still missing, samples them with a global and a per-model
concurrency limit, retries what can recover, and writes each answer (or error row)
the moment it arrives. Running it again on the same run fills only what is missing.

The CLI runs it with `asyncio.run`. The app hands it to `background()`, one
long-lived event loop on its own thread per process, never the Streamlit script thread.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from typing import Callable

from core import config, store

from core.run import llm, local_llm, models
from core.config import SpreadError

MAX_N = 1000
MAX_PROMPT_CHARS = 1_000_000
HEARTBEAT_S = 2.0


@dataclass
class RunSpec:
    prompt: str
    models: list[str]
    temperatures: list[float]
    n: int
    system: str = ""
    name: str = ""
    max_tokens: int | None = 256
    seed: int | None = None  # sample i gets seed + i: reproducible, yet each sample differs
    top_p: float | None = None
    api_base: str | None = None  # for every model but the embedded one
    concurrency: int = 8
    per_model_concurrency: int = 4
    stream: bool = True
    timeout_s: float = 120.0
    max_attempts: int = 4
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RunSpec":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    def messages(self) -> list[dict]:
        messages = [{"role": "system", "content": self.system}] if self.system.strip() else []
        return messages + [{"role": "user", "content": self.prompt}]

    def cells(self) -> list[tuple[str, float, int]]:
        return [(m, t, i) for m in self.models for t in self.temperatures for i in range(self.n)]

    def seed_for(self, sample_idx: int) -> int | None:
        return None if self.seed is None else self.seed + sample_idx

    def api_base_for(self, model: str) -> str | None:
        return None if model == local_llm.MODEL_ID else self.api_base


def validate(spec: RunSpec, *, check_providers: bool = True) -> RunSpec:
    """Normalise a plan or raise a one-line SpreadError. Nothing is written before this passes."""
    if not isinstance(spec.prompt, str) or not spec.prompt.strip():
        raise SpreadError("the prompt is empty", "prompt")
    if len(spec.prompt) + len(spec.system or "") > MAX_PROMPT_CHARS:
        raise SpreadError(f"the prompt is longer than {MAX_PROMPT_CHARS:,} characters", "prompt")
    for field, text in (("prompt", spec.prompt), ("system", spec.system or ""), ("name", spec.name or "")):
        config.check_text(text, f"the {field}", field)
    if not spec.models:
        raise SpreadError("no model chosen", "models")
    models_seen = []
    for model in spec.models:
        model = (model or "").strip()
        if model and model not in models_seen:
            models_seen.append(model)
    if not models_seen:
        raise SpreadError("no model chosen", "models")
    if not spec.temperatures:
        raise SpreadError("no temperature chosen", "temperatures")
    temperatures = []
    for t in spec.temperatures:
        if not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t):
            raise SpreadError(f"temperature {t!r} is not a number", "temperatures")
        if not 0 <= t <= 2:
            raise SpreadError(f"temperature {t} is outside 0..2", "temperatures")
        if round(float(t), 3) not in temperatures:
            temperatures.append(round(float(t), 3))
    if not isinstance(spec.n, int) or isinstance(spec.n, bool) or not 1 <= spec.n <= MAX_N:
        raise SpreadError(f"N must be a whole number in 1..{MAX_N} (got {spec.n!r})", "n")
    if spec.max_tokens is not None and not (isinstance(spec.max_tokens, int) and 1 <= spec.max_tokens <= 200_000):
        raise SpreadError(f"max tokens must be a whole number in 1..200000 (got {spec.max_tokens!r})", "max_tokens")
    if spec.top_p is not None and not 0 < spec.top_p <= 1:
        raise SpreadError(f"top_p must be in (0, 1] (got {spec.top_p})", "top_p")
    if spec.seed is not None and not (isinstance(spec.seed, int) and 0 <= spec.seed < 2**31 - MAX_N):
        raise SpreadError(f"seed must be a whole number in 0..{2**31 - MAX_N - 1}", "seed")
    if not 1 <= spec.concurrency <= 256 or not 1 <= spec.per_model_concurrency <= 256:
        raise SpreadError("concurrency must be in 1..256", "concurrency")
    if spec.api_base is not None and not spec.api_base.strip():
        spec.api_base = None
    spec.models, spec.temperatures = models_seen, temperatures
    spec.name = (spec.name or "").strip() or spec.prompt.strip().splitlines()[0][:60]
    if check_providers:
        for model in spec.models:
            try:
                models.check_model(model, spec.api_base_for(model))
            except SpreadError as e:
                raise SpreadError(str(e), "api_base" if "api_base" in str(e) else "models") from None
    return spec


def parse_temperatures(text: str) -> list[float]:
    """ "0, 0.7, 1" -> [0.0, 0.7, 1.0], or a SpreadError naming the bad item."""
    values = []
    for item in text.replace(";", ",").replace(" ", ",").split(","):
        if not item.strip():
            continue
        try:
            values.append(float(item))
        except ValueError:
            raise SpreadError(f"temperature {item.strip()!r} is not a number", "temperatures") from None
    return values


def parse_seed(text: str) -> int | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise SpreadError(f"seed {text!r} is not a whole number", "seed") from None


def create(spec: RunSpec, *, db_path=None, created_by: str = "") -> int:
    """Validate the plan and record it; returns the run id."""
    spec = validate(spec)
    with store.connect(db_path) as db:
        return store.create_run(db, spec=spec.as_dict(), planned=len(spec.cells()), created_by=created_by)


@dataclass
class Progress:
    planned: int
    received: int = 0
    errors: int = 0
    cost_usd: float = 0.0
    started: float = field(default_factory=time.perf_counter)


async def execute(
    run_id: int,
    *,
    db_path=None,
    retry_errors: bool = False,
    on_answer: Callable[[Progress, dict], None] | None = None,
    cancel: threading.Event | None = None,
) -> dict:
    """Sample every missing cell of a run, saving each answer as it arrives. Returns a summary."""
    with store.connect(db_path) as db:
        run = store.get_run(db, run_id)
        if run is None:
            raise SpreadError(f"no run with id {run_id}")
        spec = RunSpec.from_dict(run["spec"])
        done = store.done_cells(db, run_id, include_errors=not retry_errors)
        store.set_run_status(db, run_id, "running")
    todo = [cell for cell in spec.cells() if cell not in done]
    # Load litellm and the embedded model before the clock starts: neither belongs in
    # an answer's latency, and a cold import would block the loop.
    await asyncio.to_thread(llm.get)
    if local_llm.MODEL_ID in spec.models and todo:
        await asyncio.to_thread(local_llm.server)
    progress = Progress(planned=len(spec.cells()), received=len(done))
    cancel = cancel or threading.Event()
    limit_all = asyncio.Semaphore(spec.concurrency)
    limit_model = {m: asyncio.Semaphore(spec.per_model_concurrency) for m in spec.models}
    secrets = models.secret_values()

    async def one(cell):
        model = cell[0]
        async with limit_all, limit_model[model]:
            if cancel.is_set():
                return
            row = await _sample_with_retries(spec, run_id, cell, secrets, cancel)
        if row is None:
            return
        await asyncio.to_thread(_save, db_path, row)
        progress.received += 1
        progress.errors += row.get("error_type") is not None
        progress.cost_usd += row.get("cost_usd") or 0.0
        if on_answer:
            on_answer(progress, row)

    async def watch():
        # Heartbeat (so a dead worker shows as interrupted) and cancel requests from
        # other processes (`spread cancel`, another app server).
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            status = await asyncio.to_thread(_heartbeat, db_path, run_id)
            if status == "cancelling":
                cancel.set()

    watcher = asyncio.create_task(watch())
    tasks = [asyncio.create_task(one(cell)) for cell in todo]
    try:
        await asyncio.gather(*tasks)
    except asyncio.CancelledError:
        cancel.set()
        for task in tasks:
            task.cancel()
        raise
    finally:
        watcher.cancel()
        status = "cancelled" if cancel.is_set() else "done"
        await asyncio.to_thread(_set_status, db_path, run_id, status)
    return summary(run_id, db_path=db_path, wall_s=time.perf_counter() - progress.started)


async def _sample_with_retries(spec: RunSpec, run_id: int, cell, secrets, cancel) -> dict | None:
    model, temperature, sample_idx = cell
    seed = spec.seed_for(sample_idx)
    api_base = spec.api_base_for(model)
    row = {"run_id": run_id, "model": model, "temperature": temperature,
           "sample_idx": sample_idx, "seed": seed}
    for attempt in range(1, spec.max_attempts + 1):
        start = time.perf_counter()
        try:
            out = await asyncio.wait_for(
                llm.sample(
                    model, spec.messages(), temperature=temperature, max_tokens=spec.max_tokens,
                    seed=seed, top_p=spec.top_p, api_base=api_base,
                    api_key=models.api_key_for(model, api_base), stream=spec.stream,
                    timeout_s=spec.timeout_s,
                ),
                # A stream that stalls after its first bytes escapes the HTTP timeout.
                timeout=spec.timeout_s * 1.5,
            )
        except asyncio.CancelledError:
            raise
        except Exception as error:  # every failure becomes a typed error row, never lost
            error_type, retry_after = llm.classify(error)
            if error_type in llm.RETRYABLE and attempt < spec.max_attempts and not cancel.is_set():
                await asyncio.sleep(backoff_s(spec, attempt, retry_after))
                continue
            return row | {"attempts": attempt, "error_type": error_type,
                          "error_message": llm.error_message(error, secrets),
                          "latency_ms": (time.perf_counter() - start) * 1000}
        return row | {
            "text": out.text, "finish_reason": out.finish_reason,
            "prompt_tokens": out.prompt_tokens, "completion_tokens": out.completion_tokens,
            "cost_usd": models.cost_usd(model, out.prompt_tokens, out.completion_tokens),
            "latency_ms": (time.perf_counter() - start) * 1000, "ttft_ms": out.ttft_ms,
            "attempts": attempt, "provider_model": out.provider_model,
        }
    return None


def backoff_s(spec: RunSpec, attempt: int, retry_after: float | None) -> float:
    """Exponential backoff with full jitter; a provider's Retry-After wins when longer."""
    ceiling = min(spec.backoff_max_s, spec.backoff_base_s * 2 ** (attempt - 1))
    wait = random.uniform(ceiling / 2, ceiling)
    if retry_after is not None:
        wait = max(wait, min(retry_after, spec.backoff_max_s))
    return wait


def _save(db_path, row: dict) -> None:
    with store.connect(db_path) as db:
        store.save_response(db, row)


def _heartbeat(db_path, run_id: int) -> str:
    with store.connect(db_path) as db:
        store.heartbeat(db, run_id)
        return db.execute("select status from runs where id = ?", [run_id]).fetchone()[0]


def _set_status(db_path, run_id: int, status: str) -> None:
    with store.connect(db_path) as db:
        store.set_run_status(db, run_id, status)


def warm_embeddings(run_id: int, db_path=None) -> int:
    """Compute and cache the meaning embeddings of a run's answers; returns how many texts."""
    from core.analyse import embed

    if not embed.model_available():
        return 0
    with store.connect(db_path) as db:
        texts = [r["text"] for r in store.responses(db, run_id) if r["error_type"] is None and r["text"]]
    distinct = list({embed.normalise(t): t for t in texts}.values())
    if distinct:
        embed.cached(distinct, "minilm", db_path=db_path)
    return len(distinct)


def request_cancel(run_id: int, *, db_path=None) -> None:
    """Ask the worker running this run, in any process, to stop after the answers in flight."""
    with store.connect(db_path) as db:
        run = store.get_run(db, run_id)
        if run is None:
            raise SpreadError(f"no run with id {run_id}")
        if run["status"] in ("running", "pending"):
            with store.write(db):
                db.execute("update runs set status = 'cancelling' where id = ?", [run_id])
    background().cancel(run_id)


def summary(run_id: int, *, db_path=None, wall_s: float | None = None) -> dict:
    with store.connect(db_path) as db:
        run = store.get_run(db, run_id)
    return {
        "run_id": run_id,
        "status": run["status"],
        "planned": run["planned"],
        "responses": run["answers"],
        "errors": run["errors"],
        "cost_usd": run["cost_usd"] if not run["unknown_cost"] else None,
        "cost_usd_known": run["cost_usd"] or 0.0,
        "answers_with_unknown_cost": run["unknown_cost"],
        "wall_s": round(wall_s, 3) if wall_s is not None else None,
    }


# --- the app's background worker ----------------------------------------------------

class Background:
    """One event loop on a daemon thread per process: runs survive page reruns and tabs."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="spread-runner", daemon=True)
        self._thread.start()
        self._jobs: dict[int, tuple[Future, threading.Event]] = {}
        self._lock = threading.Lock()

    def submit(self, run_id: int, *, db_path=None, retry_errors: bool = False) -> Future:
        with self._lock:
            job = self._jobs.get(run_id)
            if job and not job[0].done():
                return job[0]
            cancel = threading.Event()
            future = asyncio.run_coroutine_threadsafe(
                self._run(run_id, db_path=db_path, retry_errors=retry_errors, cancel=cancel), self.loop
            )
            self._jobs[run_id] = (future, cancel)
            return future

    @staticmethod
    async def _run(run_id: int, **kwargs) -> dict:
        summary = await execute(run_id, **kwargs)
        # Embed the answers now, while nobody waits: opening the run on the Spread page
        # then finds every embedding cached (10,000 answers: 13 s cold, 1 s cached).
        await asyncio.to_thread(warm_embeddings, run_id, kwargs.get("db_path"))
        return summary

    def cancel(self, run_id: int) -> None:
        with self._lock:
            job = self._jobs.get(run_id)
        if job:
            job[1].set()

    def active(self) -> list[int]:
        with self._lock:
            return [run_id for run_id, (future, _) in self._jobs.items() if not future.done()]


_background: Background | None = None
_background_lock = threading.Lock()


def background() -> Background:
    global _background
    with _background_lock:
        if _background is None:
            _background = Background()
        return _background


def start(spec: RunSpec, *, db_path=None, created_by: str = "") -> int:
    """Validate, record and start a run in the background; returns its id at once."""
    run_id = create(spec, db_path=db_path, created_by=created_by)
    background().submit(run_id, db_path=db_path)
    return run_id


def resume(run_id: int, *, db_path=None, retry_errors: bool = False) -> None:
    background().submit(run_id, db_path=db_path, retry_errors=retry_errors)
