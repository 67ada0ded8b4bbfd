"""What the benchmarks share: a command's wall time, CPU and memory over its whole process
tree, and where results go.

CPU is counted exactly, including processes the command leaves to others: this process
becomes a child subreaper (Linux), so a grandchild whose parent exits (multiprocessing's
forkserver, the sampler processes it forks) is reparented here and reaped here, and
its CPU lands in our RUSAGE_CHILDREN. Memory is sampled from /proc every 100 ms: the
peak of the tree's summed RSS (an upper bound: forked processes share pages) and of its
largest process.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import resource
import socket
import subprocess
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PAGE = os.sysconf("SC_PAGE_SIZE")


def become_subreaper() -> bool:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def machine() -> dict:
    return {"cores": os.cpu_count(), "host": socket.gethostname(), "python": platform.python_version(),
            "load_avg_1m": round(os.getloadavg()[0], 2)}


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def descendants(pid: int) -> list[int]:
    tree, out, todo = _children(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(tree.get(p, []))
    return out


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


class Watch:
    """Samples the memory of a process tree until stopped; remembers every pid seen."""

    def __init__(self, pid: int, every_s: float = 0.1):
        self.pid, self.every_s = pid, every_s
        self.peak_tree, self.peak_one, self.seen = 0, 0, {pid}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(self.every_s):
            pids = descendants(self.pid)
            self.seen.update(pids)
            sizes = [_rss(p) for p in pids]
            self.peak_tree = max(self.peak_tree, sum(sizes))
            self.peak_one = max(self.peak_one, max(sizes, default=0))

    def stop(self):
        self._stop.set()
        self._thread.join()


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _reap_orphans(pids: set[int], timeout_s: float = 10.0) -> None:
    """Wait for the tree's leftovers (reparented to us as subreaper) so their CPU is counted."""
    deadline = time.time() + timeout_s
    waiting = set(pids)
    while waiting and time.time() < deadline:
        for pid in list(waiting):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # not our child (already reaped by its parent) or gone
                if not os.path.exists(f"/proc/{pid}"):
                    waiting.discard(pid)
                continue
            if done:
                waiting.discard(pid)
        if waiting:
            time.sleep(0.02)


def run_command(argv: list[str], *, env: dict | None = None, cwd=ROOT, timeout_s: float = 600) -> dict:
    """Run a command; returns its stdout, wall time, CPU (whole tree) and peak memory."""
    cpu_before = _children_cpu()
    start = time.perf_counter()
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watch = Watch(process.pid)
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    finally:
        wall = time.perf_counter() - start
        watch.stop()
    _reap_orphans(watch.seen - {process.pid})
    return {"returncode": process.returncode, "stdout": stdout, "stderr": stderr, "process_wall_s": round(wall, 3),
            "cpu_s": round(_children_cpu() - cpu_before, 3),
            "peak_rss_mb": round(watch.peak_tree / 2**20, 1), "peak_rss_one_process_mb": round(watch.peak_one / 2**20, 1),
            "processes": len(watch.seen)}


def last_json(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError(f"no JSON line in output: {text[-500:]!r}")


class Results:
    """One JSON line per measurement, printed and appended to bench/results/<stamp>-<name>.jsonl."""

    def __init__(self, name: str, path: Path | None = None):
        RESULTS.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        self.path = path or RESULTS / f"{stamp}-{name}.jsonl"
        self.base = {"bench": name, **machine()}

    def add(self, record: dict) -> dict:
        line = {**self.base, "load_avg_1m": round(os.getloadavg()[0], 2),
                "at": datetime.now(timezone.utc).isoformat(timespec="seconds"), **record}
        text = json.dumps(line)
        print(text, flush=True)
        with self.path.open("a") as f:
            f.write(text + "\n")
        return line
