"""Where samples are taken: in the engine's own process, or in sampler processes.

litellm costs a few milliseconds of CPU per call, on the one core that runs Python's
event loop. A large run at high concurrency asks for more calls per second than one
core can make, so it fans out to worker processes, one per core, each with its own
warm litellm client. The engine keeps everything else: the limits (core/run/limits.py:
it never hands out more than the run's budget, whichever process takes the call), the
store writes, progress and cancel. Workers get a job and return a row.

Workers are forked from a forkserver that has imported litellm once: a new worker is
ready in milliseconds, not the seconds a cold import takes. `warm_up()` starts that
import early, beside the engine's own.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import pickle
import socket
import struct
import threading
import traceback

from core.run import local_llm, sampler
from core.run.plan import RunSpec

# A run fans out to processes when it is large enough to pay for them: at least this
# many calls (not on the embedded model) and this many in flight. Below that, one
# process keeps up with the provider (bench/bench_fanout.py).
PROCESS_MIN_CALLS = 1000
PROCESS_MIN_CONCURRENCY = 32
_PRELOAD = ["litellm", "core.run.llm", "core.run.workers"]


def processes_for(spec: RunSpec, calls: int) -> int:
    """How many sampler processes a run of `calls` remote calls gets (0: sample in-process).
    SPREAD_SAMPLER_PROCESSES overrides the choice (0 turns processes off)."""
    override = os.environ.get("SPREAD_SAMPLER_PROCESSES", "").strip()
    if override:
        return max(0, int(override))
    cores = os.cpu_count() or 1
    if cores < 2 or calls < PROCESS_MIN_CALLS or spec.concurrency < PROCESS_MIN_CONCURRENCY:
        return 0
    return min(cores, 8)


def _context():
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    return context


def warm_up() -> None:
    """Start the forkserver (it imports litellm) now, so workers are ready when a run starts."""
    from core.run import llm

    llm.configure_environment()  # the forkserver inherits the environment litellm reads at import
    _context()
    from multiprocessing import forkserver

    forkserver.ensure_running()


class InProcess:
    """Samples in the engine's own event loop."""

    def __init__(self, spec: RunSpec, secrets: list[str], cancel: threading.Event):
        self.spec, self.secrets, self.cancel = spec, secrets, cancel

    async def sample(self, job: sampler.Job) -> dict | None:
        return await sampler.sample(self.spec, job, self.secrets, self.cancel)

    def stop(self) -> None:
        pass  # the shared cancel event already tells sample() to stop retrying

    async def close(self) -> None:
        pass


class WorkerDied(RuntimeError):
    pass


class Processes:
    """Sampler processes; each job goes to the worker with the fewest jobs in flight."""

    def __init__(self, spec: RunSpec, secrets: list[str], count: int):
        self.spec, self.secrets, self.count = spec, secrets, count
        self._workers: list[_Worker] = []

    async def start(self) -> "Processes":
        from core.run import llm

        llm.configure_environment()
        context = _context()
        setup = {"spec": self.spec, "secrets": self.secrets, "env": dict(os.environ)}
        for k in range(self.count):
            ours, theirs = socket.socketpair()
            process = context.Process(target=_worker_main, args=(theirs, setup), name=f"spread-sampler-{k}",
                                      daemon=True)
            await asyncio.to_thread(process.start)  # blocks until the forkserver has litellm loaded
            theirs.close()
            worker = _Worker(process, ours)
            await worker.open()
            self._workers.append(worker)
        # Ready means warm: litellm configured and its first-call imports done.
        await asyncio.gather(*(worker.ready for worker in self._workers))
        return self

    async def sample(self, job: sampler.Job) -> dict | None:
        worker = min(self._workers, key=lambda w: len(w.pending))
        return await worker.sample(job)

    def stop(self) -> None:
        for worker in self._workers:
            worker.send(("stop",))

    async def close(self) -> None:
        for worker in self._workers:
            worker.close()
        await asyncio.to_thread(lambda: [w.process.join(5) for w in self._workers])
        for worker in self._workers:
            if worker.process.is_alive():
                worker.process.kill()


class _Worker:
    """The engine's end of one sampler process: a socket of length-prefixed pickles."""

    def __init__(self, process, sock: socket.socket):
        self.process, self.sock = process, sock
        self.pending: dict[int, asyncio.Future] = {}
        self.prompts_sent: set = set()
        self._next = 0

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_unix_connection(sock=self.sock)
        self.ready = asyncio.get_running_loop().create_future()
        self._reading = asyncio.create_task(self._read())

    def send(self, message) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        self.writer.write(struct.pack("!I", len(data)) + data)

    async def sample(self, job: sampler.Job) -> dict | None:
        self._next += 1
        job_id = self._next
        future = asyncio.get_running_loop().create_future()
        self.pending[job_id] = future
        # A prompt crosses to a worker once; later jobs name it by its (variant, input).
        key = job.cell[:2]
        messages = None if key in self.prompts_sent else job.messages
        self.prompts_sent.add(key)
        self.send(("job", job_id, job.run_id, job.cell, messages))
        await self.writer.drain()
        try:
            return await future
        finally:
            self.pending.pop(job_id, None)

    async def _read(self) -> None:
        try:
            while True:
                (size,) = struct.unpack("!I", await self.reader.readexactly(4))
                kind, job_id, payload = pickle.loads(await self.reader.readexactly(size))
                if kind == "ready":
                    self.ready.set_result(True)
                    continue
                future = self.pending.get(job_id)
                if future is None or future.done():
                    continue
                if kind == "row":
                    future.set_result(payload)
                else:
                    future.set_exception(WorkerDied(f"a sampler process failed: {payload}"))
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        for future in [self.ready, *self.pending.values()]:
            if not future.done():
                future.set_exception(WorkerDied(f"sampler process {self.process.pid} exited"))

    def close(self) -> None:
        self._reading.cancel()
        self.writer.close()


# --- inside a sampler process ---------------------------------------------------------

def _worker_main(sock: socket.socket, setup: dict) -> None:
    os.environ.clear()
    os.environ.update(setup["env"])  # keys loaded from the secrets file after the forkserver started
    try:
        asyncio.run(_serve(sock, setup["spec"], setup["secrets"]))
    except KeyboardInterrupt:
        pass


async def _serve(sock: socket.socket, spec: RunSpec, secrets: list[str]) -> None:
    from core.run import llm

    llm.get()
    await llm.warm()
    llm.freeze_heap()
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    cancel = threading.Event()
    prompts: dict = {}
    tasks: set[asyncio.Task] = set()

    def reply(message) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        writer.write(struct.pack("!I", len(data)) + data)

    async def one(job_id: int, job: sampler.Job) -> None:
        try:
            reply(("row", job_id, await sampler.sample(spec, job, secrets, cancel)))
        except asyncio.CancelledError:
            raise
        except BaseException:
            reply(("error", job_id, traceback.format_exc(limit=5)))
        await writer.drain()

    reply(("ready", 0, None))
    try:
        while True:
            (size,) = struct.unpack("!I", await reader.readexactly(4))
            message = pickle.loads(await reader.readexactly(size))
            if message[0] == "stop":
                cancel.set()
                continue
            _, job_id, run_id, cell, messages = message
            if messages is not None:
                prompts[cell[:2]] = messages
            task = asyncio.create_task(one(job_id, sampler.Job(run_id, cell, prompts[cell[:2]])))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass  # the engine closed its end (done, or killed): stop
    for task in list(tasks):
        task.cancel()


def remote(model: str) -> bool:
    """Calls that can go to a sampler process (the embedded model lives in the engine's)."""
    return model != local_llm.MODEL_ID
