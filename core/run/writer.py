"""Answers to the store as they arrive, in as few transactions as the arrival rate allows.

One thread, one connection per run. The thread writes whatever has arrived, in one
transaction, and while that transaction commits the next answers queue up for the
next one (a group commit). Nothing waits for a batch to fill: the answers of one turn
of the engine's event loop are handed over as that turn ends, and if the writer is idle
they are written at once. At 500 answers a second a
transaction holds a few answers, and the engine's thread never touches SQLite.

What a crash can lose: an answer is in memory from the moment it arrives until the
transaction that holds it commits (the largest wait seen is in `max_lag_ms`), and before
it arrives it may wait in the socket for the process to get a core. A SIGKILL loses
those answers (their cells stay empty, and a resume samples them again); everything
committed before stays. The engine keeps a call's concurrency slot until `put`'s
future says its answer is committed, so the calls in flight and the answers not yet
committed never outnumber the run's concurrency: that is all a SIGKILL can make a resume
ask again. Measured per mode in bench/bench_crash.py (docs/performance.md).

When the store cannot be reached (a PostgreSQL server restarting), the writer keeps what
it holds and connects again until the store is back; the engine starts no new call
meanwhile (`reachable`), so the run pauses and then continues, losing nothing received.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time

from core.store import Store, commits_without_waiting_for_disk, responses, unreachable

_STOP = object()
# Reconnecting to a store that cannot be reached: first wait, longest wait (seconds).
RETRY_S = (0.5, 5.0)


class Writer:
    def __init__(self, store: Store):
        self.store = store
        self.written = 0
        self.transactions = 0
        self.max_lag_ms = 0.0  # the longest an answer waited in memory before its commit
        self.error: BaseException | None = None
        self.reachable = threading.Event()  # cleared while the store cannot be reached
        self.reachable.set()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()  # (arrived, row, future), or a list of them
        self._turn: list = []  # rows of this turn of the event loop, not yet handed over
        self._loop: asyncio.AbstractEventLoop | None = None  # where the futures of `put` live
        self._thread = threading.Thread(target=self._run, name="spread-writer", daemon=True)
        self._thread.start()

    def put(self, row: dict) -> asyncio.Future | None:
        """Queue one row (from any thread); raises the writer's error if writing failed.
        On an event loop, returns a future that is done once the row is committed (it
        fails with the writer's error).

        Rows put on an event loop's thread reach the writer together as the loop's turn
        ends, not one by one: waking the thread for every row cost the loop 0.2 s of CPU
        per 10,000 answers at 500 in flight. They wait no longer than that turn."""
        if self.error is not None:
            raise self.error
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on an event loop's thread: straight to the writer
            self._queue.put((time.perf_counter(), row, None))
            return None
        self._loop = loop
        committed = loop.create_future()
        if not self._turn:
            loop.call_soon(self._hand_over)
        self._turn.append((time.perf_counter(), row, committed))
        return committed

    def _hand_over(self) -> None:
        if self._turn:
            self._queue.put(self._turn)
            self._turn = []

    async def close(self) -> None:
        """Write everything queued, stop the thread; raises if a write failed."""
        self._hand_over()
        self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join)
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        items: list = []  # taken from the queue, not yet committed
        stop = False
        wait = RETRY_S[0]
        try:
            while True:
                try:
                    with self.store.connection() as db, commits_without_waiting_for_disk(db):
                        # Commits without waiting for the disk: a committed answer survives the
                        # process being killed (it is in the operating system's hands), and only a
                        # power cut can take the last commits back, cells a resume samples again.
                        # This connection writes answers only; labels and plans keep full syncs.
                        while True:
                            if items:
                                responses.save_responses(db, [row for _, row, _ in items])
                                done = time.perf_counter()
                                self.written += len(items)
                                self.transactions += 1
                                self.max_lag_ms = max(self.max_lag_ms, (done - items[0][0]) * 1000)
                                self._settle(items, None)
                                items, wait = [], RETRY_S[0]
                                self.reachable.set()
                            if stop:
                                return
                            batch = [self._queue.get()]
                            while True:  # everything that arrived meanwhile joins this transaction
                                try:
                                    batch.append(self._queue.get_nowait())
                                except queue.Empty:
                                    break
                            stop = _STOP in batch
                            items = [row for item in batch if item is not _STOP
                                     for row in (item if isinstance(item, list) else (item,))]
                except Exception as error:
                    if not unreachable(error):
                        raise
                    # The store is down (a PostgreSQL restart): keep the batch, let the engine
                    # pause (`reachable`), and connect again until the store is back.
                    self.reachable.clear()
                    time.sleep(wait)
                    wait = min(wait * 2, RETRY_S[1])
        except BaseException as error:  # surfaced to the engine by put(), its futures and close()
            self.error = error
            self._settle(items, error)
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not _STOP:
                    self._settle(item if isinstance(item, list) else [item], error)

    def _settle(self, items: list, error: BaseException | None) -> None:
        """Tell the engine's loop that these rows are committed (or never will be)."""
        futures = [future for _, _, future in items if future is not None]
        if futures and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(_settle_futures, futures, error)


def _settle_futures(futures: list[asyncio.Future], error: BaseException | None) -> None:
    for future in futures:
        if not future.done():
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)
