"""A team's load, measured at the server (a measurement, not a test).

    .venv/bin/python bench/bench_team.py [--reviewers 1,5,10,20] [--labels 20] [--answers 10000]
                                         [--setups sqlite:1,postgres:1,postgres:2] [--postgres URL]
                                         [--think 1.0] [--results PATH]

Each simulated reviewer is a Streamlit session, not a browser: a websocket speaking
Streamlit's own protocol (a BackMsg `rerun_script` carrying the widget states, as the
browser sends it; ForwardMsgs back until `script_finished`), so what is timed is the
server's work for one interaction, with nothing drawn. Every reviewer, at the same time:

  spread_open  opens the Spread page of a 10,000-answer run (?run=ID)
  sign_in      types a reviewer name in the sidebar (once per session)
  threshold    changes the similarity threshold (each reviewer a different one: nobody
               is served from another's cached analysis, the worst case)
  review_open  opens the Review page
  label        presses Pass, `--labels` times (each labels one meaning cluster)

with a think time between interactions drawn uniformly from 0 to 2 × `--think` seconds
(people read before they click; `--think 0` is a stress test). A setup is a store and a
number of app servers (`streamlit run app.py` processes on loopback ports, reviewers
split evenly between them): `sqlite:1` is the embedded default, `postgres:N` N servers
on one PostgreSQL database (`--postgres URL`, else a throwaway server started here).
Before the reviewers, one unmeasured session per server opens both pages (the first
open after a restart is reported apart, as `cold`, once the server has finished what it
does on starting, preparing the newest runs among it: `ready_s` after its start).

Per setup and R: p50/p95/max server seconds for each interaction and over all of them,
errors (an exception or an error shown on a page, a session that failed), and lost
labels: the answers the Review page said each Pass would label (its "Meaning cluster of
K answers") against the labels the store holds for that reviewer afterwards. One JSON
line per setup and R (kind "team"), one per server's cold open (kind "cold").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import aiohttp
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_app import serve_app  # noqa: E402
from bench_spread import make_grid_run  # noqa: E402
from measure import ROOT, Results  # noqa: E402

sys.path.insert(0, str(ROOT))

INTERACTIONS = ["spread_open", "sign_in", "threshold", "review_open", "label"]
CLUSTER_SIZE = re.compile(r"Meaning cluster of (\d+) answers")


class Session:
    """One browser tab as the server sees it: a websocket, the widget values it holds,
    and what the last script run drew (widget ids by key, headings, errors)."""

    def __init__(self, http: aiohttp.ClientSession, url: str, pages: dict[str, str] | None = None):
        self.http, self.url = http, url
        self.ws = None
        self.pages = dict(pages or {})  # url path ("spread", "review") -> page script hash
        self.values: dict[str, WidgetState] = {}  # widget id -> the value this tab holds
        self.widgets: dict[str, str] = {}  # user key -> widget id, from the last run
        self.headings: list[str] = []
        self.errors: list[str] = []

    async def open(self) -> None:
        self.ws = await self.http.ws_connect(self.url.replace("http", "ws", 1) + "/_stcore/stream",
                                             protocols=["streamlit"], max_msg_size=0)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()

    def set(self, key: str, **value) -> None:
        """Hold a widget's new value (sent with every later run, as a browser does)."""
        state = WidgetState(id=self.widgets[key])
        for field, v in value.items():
            if field == "double_array_value":
                state.double_array_value.data.extend(v)
            else:
                setattr(state, field, v)
        self.values[state.id] = state

    async def rerun(self, *, page: str | None = None, query: str = "", click: str | None = None) -> float:
        """One interaction: send the run request, read until the script has finished; its seconds."""
        message = BackMsg()
        client = message.rerun_script
        client.query_string = query
        if page is not None:  # by its hash: a bare name would run the page's file alone, without app.py
            client.page_script_hash = self.pages[page]
        client.widget_states.widgets.extend(self.values.values())
        if click:
            client.widget_states.widgets.append(WidgetState(id=self.widgets[click], trigger_value=True))
        self.widgets, self.headings, self.errors = {}, [], []
        start = time.perf_counter()
        await self.ws.send_bytes(message.SerializeToString())
        while True:
            raw = await self.ws.receive()
            if raw.type != aiohttp.WSMsgType.BINARY:
                raise ConnectionError(f"websocket closed ({raw.type.name}) in the middle of a run")
            forward = ForwardMsg()
            forward.ParseFromString(raw.data)
            kind = forward.WhichOneof("type")
            if kind == "navigation":
                self.pages.update({p.url_pathname or p.page_name: p.page_script_hash
                                   for p in forward.navigation.app_pages})
            elif kind == "delta" and forward.delta.WhichOneof("type") == "new_element":
                self.read(forward.delta.new_element)
            elif kind == "script_finished" and forward.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                return time.perf_counter() - start

    def read(self, element) -> None:
        kind = element.WhichOneof("type")
        inner = getattr(element, kind) if kind else None
        widget_id = getattr(inner, "id", "")
        if isinstance(widget_id, str) and widget_id.startswith("$$ID-"):
            self.widgets[widget_id.split("-", 2)[2]] = widget_id
        if kind == "heading":
            self.headings.append(inner.body)
        elif kind == "exception":
            self.errors.append(f"exception: {inner.type}")
        elif kind == "alert" and inner.format == inner.ERROR:
            self.errors.append(f"error shown: {inner.body[:200]}")


async def reviewer(http, url: str, pages: dict, name: str, run_id: int, threshold: float, labels: int,
                   think_s: float, rng: random.Random, timings: list, expected: dict, errors: list) -> None:
    session = Session(http, url, pages)

    async def step(interaction: str, **run) -> None:
        if think_s:
            await asyncio.sleep(rng.uniform(0, 2 * think_s))
        seconds = await session.rerun(**run)
        timings.append((interaction, seconds))
        errors.extend(f"{name} {interaction}: {e}" for e in session.errors)

    try:
        await session.open()
        await step("spread_open", page="spread", query=f"run={run_id}")
        session.set("reviewer", string_value=name)
        await step("sign_in", page="spread", query=f"run={run_id}")
        session.set("threshold", double_array_value=[threshold])
        await step("threshold", page="spread", query=f"run={run_id}")
        await step("review_open", page="review")
        for _ in range(labels):
            said = next((CLUSTER_SIZE.search(h) for h in session.headings if " of " in h), None)
            if "pass" not in session.widgets:
                errors.append(f"{name}: no Pass button (nothing left to review?)")
                break
            expected[name] = expected.get(name, 0) + (int(said.group(1)) if said else 1)
            await step("label", page="review", click="pass")
    except Exception as e:  # a session that fails is an error of the setup, not a crash of the bench
        errors.append(f"{name}: {type(e).__name__}: {e}")
    finally:
        await session.close()


async def warm_up(url: str, run_id: int) -> tuple[dict, dict]:
    """One unmeasured tab per server: the first opens after a restart (analysis not cached yet),
    and the pages' hashes (a tab opened on a link goes straight to its page)."""
    async with aiohttp.ClientSession() as http:
        session = Session(http, url)
        await session.open()
        try:
            await session.rerun()  # the app's first page, and the list of pages
            spread_s = await session.rerun(page="spread", query=f"run={run_id}")
            session.set("reviewer", string_value="warm-up")
            await session.rerun(page="spread", query=f"run={run_id}")
            review_s = await session.rerun(page="review")
            return session.pages, {"spread_open_s": round(spread_s, 3), "review_open_s": round(review_s, 3),
                                   "errors": session.errors}
        finally:
            await session.close()


async def team(urls: list[str], pages: dict, run_id: int, r: int, labels: int, think_s: float, tag: str) -> tuple:
    timings, expected, errors = [], {}, []
    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(
            reviewer(http, urls[i % len(urls)], pages, f"{tag}-r{r}-{i}", run_id, round(0.70 + 0.01 * (i % 25), 2),
                     labels, think_s, random.Random(i), timings, expected, errors)
            for i in range(r)))
    return timings, expected, errors


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def summary(seconds: list[float]) -> dict:
    if not seconds:
        return {"n": 0}
    return {"n": len(seconds), "p50_s": round(statistics.median(seconds), 3), "p95_s": round(percentile(seconds, 0.95), 3),
            "max_s": round(max(seconds), 3)}


def stored_labels(db: str, run_id: int) -> dict[str, int]:
    from core.review import labels
    from core.store import Store

    counts: dict[str, int] = {}
    for row in labels.labels_for_run(Store(db), run_id):
        counts[row["reviewer"]] = counts.get(row["reviewer"], 0) + 1
    return counts


def build_run(db: str, answers: int, kind: str = "prose") -> int:
    """A 10,000-answer grid (125 inputs × 2 wordings × 2 models × 2 temperatures × N=10 by default),
    its embeddings cached as the app's worker does when a run ends."""
    from core.analyse import embed
    from core.store import Store

    run_id = make_grid_run(db, answers, inputs=125, variants=2, models=2, temperatures=(0.0, 1.0), kind=kind)
    embed.warm_run(Store(db), run_id)
    return run_id


IDLE_CPU_SHARE = 0.05  # a server using less of a core than this for a second has finished starting


def idle_after(process: subprocess.Popen, started_at: float, limit_s: float = 180.0) -> float:
    """Seconds from the server's start until it has finished the work it does on starting
    (its worker's first poll, preparing the newest runs): its CPU below IDLE_CPU_SHARE of
    a core for a whole second. The cold open is measured after it, as a team opening a
    run a few minutes after a restart meets it; one opened sooner waits for the rest."""
    ticks = os.sysconf("SC_CLK_TCK")

    def cpu_s() -> float:
        with open(f"/proc/{process.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks

    deadline = time.perf_counter() + limit_s
    before = cpu_s()
    while time.perf_counter() < deadline:
        time.sleep(1.0)
        now = cpu_s()
        if now - before < IDLE_CPU_SHARE:
            return round(time.perf_counter() - 1.0 - started_at, 1)
        before = now
    return round(limit_s, 1)


def start_postgres() -> tuple[str, callable]:
    """A throwaway PostgreSQL on a loopback port, the test suite's (Debian's binaries, fsync
    off: it need not survive a power cut); its URL and how to stop it."""
    sys.path.insert(0, str(ROOT / "tests"))
    from pg_server import PostgresServer

    server = PostgresServer().init()
    return server.new_database(), server.close


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviewers", default="1,5,10,20", help="comma-separated team sizes R")
    parser.add_argument("--labels", type=int, default=20, help="Pass presses per reviewer")
    parser.add_argument("--answers", type=int, default=10000, help="answers in the run")
    parser.add_argument("--setups", default="sqlite:1,postgres:1,postgres:2", help="STORE:SERVERS, comma-separated")
    parser.add_argument("--postgres", help="an empty PostgreSQL database URL (else one is started here)")
    parser.add_argument("--think", type=float, default=1.0, help="mean think time between interactions, seconds")
    parser.add_argument("--answers-kind", choices=["prose", "facts"], default="prose",
                        help="prose: each threshold cuts its own clusters (the worst case); facts: the answers' "
                             "facts settle every pair, so every threshold cuts the same clusters")
    parser.add_argument("--results", type=Path, help="append the JSON lines to this file")
    args = parser.parse_args()
    sizes = [int(r) for r in args.reviewers.split(",")]
    setups = [(store_kind, int(servers)) for store_kind, servers in (s.split(":") for s in args.setups.split(","))]
    results = Results("team", args.results)
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        databases = {}
        for store_kind, servers in setups:
            if store_kind not in databases:
                if store_kind == "sqlite":
                    databases[store_kind] = f"{tmp}/team.db"
                elif args.postgres:
                    databases[store_kind] = args.postgres
                else:
                    url, stop = start_postgres()
                    stack.callback(stop)
                    databases[store_kind] = url
                started = time.perf_counter()
                run_id = build_run(databases[store_kind], args.answers, args.answers_kind)
                print(f"{store_kind}: run {run_id} of {args.answers} answers built in "
                      f"{time.perf_counter() - started:.1f} s", file=sys.stderr)
            db = databases[store_kind]
            processes = []
            try:
                urls, started_at = [], []
                for k in range(servers):
                    started_at.append(time.perf_counter())
                    process, url = serve_app(db, f"{tmp}/{store_kind}-{servers}-{k}.log")
                    processes.append(process)
                    urls.append(url)
                ready_s = [idle_after(process, at) for process, at in zip(processes, started_at)]
                for k, url in enumerate(urls):
                    pages, cold = asyncio.run(warm_up(url, run_id))
                    results.add({"kind": "cold", "store": store_kind, "servers": servers, "server": k,
                                 "answers": args.answers, "answers_kind": args.answers_kind,
                                 "ready_s": ready_s[k], **cold})
                for r in sizes:
                    tag = f"{store_kind}{servers}"
                    started = time.perf_counter()
                    timings, expected, errors = asyncio.run(team(urls, pages, run_id, r, args.labels, args.think, tag))
                    wall = time.perf_counter() - started
                    stored = stored_labels(db, run_id)
                    lost = sum(max(0, n - stored.get(name, 0)) for name, n in expected.items())
                    results.add({
                        "kind": "team", "store": store_kind, "servers": servers, "reviewers": r,
                        "answers": args.answers, "answers_kind": args.answers_kind, "labels_each": args.labels,
                        "think_s": args.think,
                        "all": summary([s for _, s in timings]),
                        **{name: summary([s for i, s in timings if i == name]) for name in INTERACTIONS},
                        "labels_expected": sum(expected.values()),
                        "labels_stored": sum(stored.get(name, 0) for name in expected),
                        "lost_labels": lost, "errors": len(errors), "error_examples": errors[:5],
                        "wall_s": round(wall, 1),
                    })
            finally:
                for process in processes:
                    process.terminate()
                for process in processes:
                    try:
                        process.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        process.kill()
    print(f"results: {results.path}", file=sys.stderr)


if __name__ == "__main__":
    main()
