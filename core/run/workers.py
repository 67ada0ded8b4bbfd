"""Where samples are taken: in the engine's own process, or in sampler processes.

litellm costs a few milliseconds of CPU per call, on the one core that runs Python's
event loop. A large run through litellm at high concurrency asks for more calls per
second than one core can make, so it fans out to worker processes, one per core. (Calls
straight to an OpenAI-compatible server, core/models/direct.py, stay in the engine's
process: see `processes_for`.) The engine keeps
everything else: the limits (core/models/limits.py: it never hands out more than the
run's budget, whichever process takes the call), the store writes, progress and cancel.
A worker gets a job and returns a row.

Workers are forked (`start`) by a process that exists for the run (the CLI, a detached
run), after it has imported litellm, warmed it and frozen its heap, and before its event
loop starts: each worker begins with a warm client at no cost, and a fork from a
process with one thread and no running loop is safe. The app's own process never forks.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import pickle
import signal
import socket
import struct
import threading
import traceback

from core.models import direct, local_llm
from core.run import sampler
from core.run.plan import RunSpec

# A run fans out to processes when it is large enough to pay for them: at least this
# many calls (not on the embedded model) and this many in flight. Below that, one
# process keeps up with the provider (bench/bench_fanout.py).
PROCESS_MIN_CALLS = 1000
PROCESS_MIN_CONCURRENCY = 32
MAX_PROCESSES = 8


def remote(spec: RunSpec, model: str) -> bool:
    """Calls that can go to a sampler process: not the embedded model (it lives in the
    engine's), and not an endpoint with a requests-per-minute limit (its rate is kept by
    the engine's gate, retries included; at its rate one process keeps up anyway)."""
    endpoint = spec.endpoint(model)
    return not local_llm.is_local(endpoint.model) and not endpoint.rpm


def beside_embedded(spec: RunSpec) -> bool:
    """Whether a run samples an embedded model and a remote one."""
    local = [local_llm.is_local(spec.endpoint(model).model) for model in spec.models]
    return any(local) and not all(local)


def processes_for(spec: RunSpec, calls: int, direct_calls: int = 0) -> int:
    """How many sampler processes a run gets (0: sample in-process), for `calls` remote
    calls through litellm and `direct_calls` straight to an OpenAI-compatible server.
    Only litellm's calls earn processes: a direct call costs a fraction of the CPU
    (core/models/direct.py), one process keeps up with a loopback server at 500 in flight,
    and handing a call to another process costs more CPU than it saves (bench/README
    figures). Remote calls beside the embedded model get one process whatever their
    number: timed there, their latency is not spent waiting for the GIL behind the local
    model's threads. SPREAD_SAMPLER_PROCESSES overrides the choice for both (0 turns
    processes off)."""
    override = os.environ.get("SPREAD_SAMPLER_PROCESSES", "").strip()
    if override.isdigit():
        return min(int(override), MAX_PROCESSES) if calls + direct_calls else 0
    cores = os.cpu_count() or 1
    if cores >= 2 and calls >= PROCESS_MIN_CALLS and spec.concurrency >= PROCESS_MIN_CONCURRENCY:
        return min(cores, MAX_PROCESSES)
    return 1 if calls + direct_calls and beside_embedded(spec) else 0


class WorkerDied(RuntimeError):
    pass


def start(spec: RunSpec, secrets: list[str], count: int) -> "Processes":
    """Fork `count` sampler processes. Call with one thread and no event loop running."""
    if threading.active_count() > 1:
        raise RuntimeError("sampler processes are forked before any thread or event loop starts")
    context = multiprocessing.get_context("fork")
    workers: list[_Worker] = []
    for k in range(count):
        ours, theirs = socket.socketpair()
        # The child closes the engine's ends it inherits (its own and earlier workers'), or
        # a worker would keep another's socket open and never see the engine go away.
        inherited = [w.sock for w in workers] + [ours]
        process = context.Process(target=_worker_main, args=(theirs, inherited, spec, secrets),
                                  name=f"spread-sampler-{k}", daemon=True)
        process.start()
        theirs.close()
        workers.append(_Worker(process, ours))
    return Processes(workers)


class Processes:
    """Sampler processes; each job goes to the worker with the fewest jobs in flight."""

    def __init__(self, workers: list["_Worker"]):
        self._workers = workers

    def __len__(self) -> int:
        return len(self._workers)

    async def open(self) -> None:
        """Connect to the workers from the engine's event loop; returns when all are ready."""
        for worker in self._workers:
            await worker.open()
        await asyncio.gather(*(worker.ready for worker in self._workers))

    async def sample(self, job: sampler.Job) -> dict | None:
        worker = min(self._workers, key=lambda w: len(w.pending))
        return await worker.sample(job)

    def stop(self) -> None:
        """Cancel requested: workers stop retrying; the calls in flight finish."""
        for worker in self._workers:
            worker.send(("stop",))

    async def close(self) -> None:
        for worker in self._workers:
            worker.close()
        await asyncio.to_thread(self.join)

    def join(self, timeout_s: float = 5.0) -> None:
        for worker in self._workers:
            worker.sock.close()
            worker.process.join(timeout_s)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()


class _Worker:
    """The engine's end of one sampler process: a socket of length-prefixed pickles."""

    def __init__(self, process, sock: socket.socket):
        self.process, self.sock = process, sock
        self.pending: dict[int, asyncio.Future] = {}
        self.prompts_sent: set = set()
        self._next = 0
        self.writer = None
        self._reading = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_unix_connection(sock=self.sock)
        self.ready = asyncio.get_running_loop().create_future()
        self._reading = asyncio.create_task(self._read())

    def send(self, message) -> None:
        _write(self.writer, message)

    async def sample(self, job: sampler.Job) -> dict | None:
        self._next += 1
        job_id = self._next
        future = asyncio.get_running_loop().create_future()
        self.pending[job_id] = future
        # A prompt crosses to a worker once; later jobs name it by its (variant, input).
        key = job.cell.prompt_key
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
                kind, job_id, payload = await _read(self.reader)
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
        if self._reading is not None:
            self._reading.cancel()
        if self.writer is not None:
            self.writer.close()


def _write(writer: asyncio.StreamWriter, message) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    writer.write(struct.pack("!I", len(data)) + data)


async def _read(reader: asyncio.StreamReader):
    (size,) = struct.unpack("!I", await reader.readexactly(4))
    return pickle.loads(await reader.readexactly(size))


# --- inside a sampler process ---------------------------------------------------------

def _worker_main(sock: socket.socket, inherited: list[socket.socket], spec: RunSpec, secrets: list[str]) -> None:
    for other in inherited:
        other.close()
    # A SIGTERM to the whole group (a container stopping) is the engine's to handle: it lets
    # the calls in flight here end, then closes the socket, and this process exits.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        asyncio.run(_serve_with_client(sock, spec, secrets))
    except KeyboardInterrupt:
        pass  # Ctrl-C reaches the whole process group; the engine reports it


async def _serve_with_client(sock: socket.socket, spec: RunSpec, secrets: list[str]) -> None:
    async with direct.session():  # one HTTP client for the worker's direct calls
        await _serve(sock, spec, secrets)


async def _serve(sock: socket.socket, spec: RunSpec, secrets: list[str]) -> None:
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    cancel = threading.Event()
    samples = sampler.Sampler(spec, secrets, cancel)
    prompts: dict = {}
    tasks: set[asyncio.Task] = set()

    async def one(job_id: int, job: sampler.Job) -> None:
        try:
            _write(writer, ("row", job_id, await samples.sample(job)))
        except asyncio.CancelledError:
            raise
        except BaseException:
            _write(writer, ("error", job_id, traceback.format_exc(limit=5)))
        await writer.drain()

    _write(writer, ("ready", 0, None))
    try:
        while True:
            message = await _read(reader)
            if message[0] == "stop":
                cancel.set()
                continue
            _, job_id, run_id, cell, messages = message
            if messages is not None:
                prompts[cell.prompt_key] = messages
            task = asyncio.create_task(one(job_id, sampler.Job(run_id, cell, prompts[cell.prompt_key])))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass  # the engine closed its end (done, or gone): stop
    for task in list(tasks):
        task.cancel()
