"""`spread serve`'s HTTP face (aiohttp): an OpenAI-compatible endpoint over `Service`.

    POST /v1/chat/completions   the chat request; `model` names a route
    GET  /v1/models             the routes
    GET  /health                ok, routes and their thresholds (no auth: for a load balancer)

Every answer carries `X-Spread-Confidence`. With a token configured (`--token-env VAR`:
the variable's name is given, never the token), every path but /health needs
`Authorization: Bearer TOKEN`. Errors are OpenAI's shape: {"error": {message, type,
param, code}}. With `stream: true` the chosen answer is sent as server-sent events once
it is chosen: the decision waits for all k answers, so the stream starts then.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
import traceback

from aiohttp import web

from core import config
from core.models import llm
from core.serve.service import BadRequest, Reply, Service

CHUNK_CHARS = 24  # a streamed answer's pieces: clients render them as they come


def error_response(error: BadRequest) -> web.Response:
    return web.json_response(error.body(), status=error.status)


def build_app(service: Service, token: str | None = None, log=None) -> web.Application:
    """The app; `log(line)`, if given, gets one line per chat request: route, status, the
    decision and the time taken (never the messages or the answer: they are data)."""
    @web.middleware
    async def auth(request: web.Request, handler):
        if token and request.path != "/health":
            given = request.headers.get("Authorization", "")
            scheme, _, value = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
                return error_response(BadRequest("missing or wrong bearer token (Authorization: Bearer …)", 401,
                                                 code="invalid_api_key", kind="authentication_error"))
        return await handler(request)

    async def chat(request: web.Request) -> web.StreamResponse:
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            return error_response(BadRequest("the request body is not JSON"))
        began = time.perf_counter()
        try:
            reply = await service.reply(body)
        except Exception:
            # A fault of Spread's own: said in one line to the caller, in full on stderr.
            traceback.print_exc(file=sys.stderr)
            return error_response(BadRequest("Spread failed while answering this request (see the server's log)",
                                             500, kind="server_error", code="internal_error"))
        if log is not None:
            log(request_line(body, reply, (time.perf_counter() - began) * 1000))
        headers = {}
        if reply.confidence is not None:
            headers["X-Spread-Confidence"] = f"{reply.confidence:.4f}"
        if reply.status == 200 and isinstance(body, dict) and body.get("stream") is True:
            return await stream(request, reply, headers, bool((body.get("stream_options") or {}).get("include_usage")))
        return web.json_response(reply.body, status=reply.status, headers=headers)

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "spread",
             "spread": {"models": list(route.models), "k": route.k, "min_confidence": route.threshold.shown(),
                        "threshold": route.threshold.value, "on_low": route.on_low.shown(),
                        "checks": [check.label() for check in route.checks]}}
            for name, route in service.settings.routes.items()]})

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "routes": list(service.settings.routes), "process": os.getpid()})

    async def not_found(request: web.Request) -> web.Response:
        return error_response(BadRequest(f"no such path: {request.method} {request.path}", 404))

    app = web.Application(middlewares=[auth], client_max_size=16 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/models", models)
    app.router.add_get("/health", health)
    app.router.add_route("*", "/{tail:.*}", not_found)

    async def started(app):
        await service.start()

    async def stopped(app):
        await service.stop()

    app.on_startup.append(started)
    app.on_cleanup.append(stopped)
    return app


def request_line(body, reply: Reply, ms: float) -> str:
    spread = reply.body.get("spread") or {}
    route = body.get("model") if isinstance(body, dict) and isinstance(body.get("model"), str) else "?"
    if not spread:
        return f"spread serve: {route[:64]!r} {reply.status} refused: {reply.body['error']['message'][:200]}"
    fallback = (spread.get("fallback") or {}).get("from")
    return (f"spread serve: {route[:64]!r} {reply.status} confidence={spread['confidence']:.2f} "
            f"k={spread['k']}/{spread['asked']} meanings={spread['clusters']} filtered={spread['filtered']} "
            f"abstained={'yes' if spread['abstained'] else 'no'}"
            + (f" fallback={fallback}->{spread['route']}" if fallback else "")
            + f" run={spread['run_id']} {ms:.0f} ms")


async def stream(request: web.Request, reply: Reply, headers: dict, include_usage: bool) -> web.StreamResponse:
    """The chosen answer as chat.completion.chunk events: content in pieces, tool calls with
    their arguments, the finish reason and the `spread` object, usage if asked, [DONE]."""
    response = web.StreamResponse(status=200, headers={**headers, "Content-Type": "text/event-stream",
                                                       "Cache-Control": "no-cache"})
    await response.prepare(request)
    body = reply.body
    base = {"id": body["id"], "object": "chat.completion.chunk", "created": body["created"], "model": body["model"],
            "system_fingerprint": None}
    message = body["choices"][0]["message"]

    async def send(choices, **extra):
        await response.write(b"data: " + json.dumps({**base, "choices": choices, **extra}).encode() + b"\n\n")

    await send([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
    content = message.get("content") or ""
    for start in range(0, len(content), CHUNK_CHARS):
        await send([{"index": 0, "delta": {"content": content[start:start + CHUNK_CHARS]}, "finish_reason": None}])
    for n, call in enumerate(message.get("tool_calls") or []):
        await send([{"index": 0, "delta": {"tool_calls": [
            {"index": n, "id": call["id"], "type": "function",
             "function": {"name": call["function"]["name"], "arguments": call["function"]["arguments"]}}]},
            "finish_reason": None}])
    await send([{"index": 0, "delta": {}, "finish_reason": body["choices"][0]["finish_reason"]}],
               spread=body["spread"])
    if include_usage:
        await send([], usage=body["usage"])
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# --- several processes on one port (`--workers`) -------------------------------------
# One Python process answers about a hundred k = 5 requests a second on one core
# (docs/performance.md). With --workers W, the first process binds the port with
# SO_REUSEPORT and starts W - 1 more: `spread serve` again, with the same options, told
# the port and their parent by environment; the kernel spreads new connections among
# them. Each has its own store connection and writes its own requests (the day's run
# per route is shared, as between servers).
WORKER_PORT_ENV = "SPREAD_SERVE_WORKER_PORT"
WORKER_PARENT_ENV = "SPREAD_SERVE_WORKER_PARENT"
RESTART_PAUSE_S = 5.0  # at most one start per worker this often: one that cannot start does not spin
STOP_WAIT_S = 60.0  # for the workers to finish their requests in flight


class Workers:
    """The other processes of a `--workers` server: started, restarted when one ends, and
    stopped by the first process."""

    def __init__(self, count: int, database: str):
        self.count, self.database = count, database
        self.processes: list[subprocess.Popen] = []

    def argv(self) -> list[str]:
        """This command again, without --db: the database goes by environment, so that a
        URL's password never stands on a command line."""
        args, skip = [], False
        for arg in sys.argv[1:]:
            if skip:
                skip = False
            elif arg == "--db":
                skip = True
            elif not arg.startswith("--db="):
                args.append(arg)
        return [sys.executable, "-m", "core.cli", *args]

    def start(self, port: int) -> subprocess.Popen:
        # Its own session: a terminal's Ctrl-C reaches the first process, which stops the
        # others, rather than all of them at once while it would restart them.
        env = dict(os.environ, SPREAD_DB=self.database, **{WORKER_PORT_ENV: str(port),
                                                           WORKER_PARENT_ENV: str(os.getpid())},
                   PYTHONPATH=os.pathsep.join(filter(None, [str(config.PROJECT_ROOT), os.environ.get("PYTHONPATH")])))
        return subprocess.Popen(self.argv(), env=env, stdin=subprocess.DEVNULL, start_new_session=True)

    async def supervise(self, port: int, stop: asyncio.Event) -> None:
        self.processes = [self.start(port) for _ in range(self.count - 1)]
        started = [time.monotonic()] * len(self.processes)
        while not stop.is_set():
            for i, process in enumerate(self.processes):
                if process.poll() is not None and time.monotonic() - started[i] >= RESTART_PAUSE_S:
                    say(f"spread serve: worker {process.pid} ended (exit {process.returncode}); starting another")
                    self.processes[i], started[i] = self.start(port), time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)  # each finishes and stores its requests in flight

    def wait(self) -> None:
        deadline = time.monotonic() + STOP_WAIT_S
        for process in self.processes:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def _orphaned(stop: asyncio.Event, parent: int) -> None:
    """A worker stops when the process that started it is gone (killed outright: it could
    not say so), instead of serving on unsupervised."""
    while not stop.is_set():
        if os.getppid() != parent:
            say(f"spread serve: worker {os.getpid()}: the first process is gone; stopping")
            stop.set()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


def run(service: Service, *, host: str, port: int, token: str | None, quiet: bool = False,
        workers: Workers | None = None) -> None:
    """Serve until SIGINT or SIGTERM, one line on stderr when listening (with the port
    chosen, for `--port 0`), per request (unless `quiet`) and when stopping. With
    `workers`, this process also starts and watches the others on the same port; started
    as one of them (WORKER_PORT_ENV set), it listens on the port it was given."""
    import uvloop

    worker_port = os.environ.get(WORKER_PORT_ENV)
    if worker_port:
        workers = None
    # What is loaded by now (litellm's map, the meaning model) lives as long as the server:
    # out of the garbage collector's sight, so that no full collection walks it again
    # under load.
    llm.freeze_heap()

    async def main():
        log = None if quiet else say
        runner = web.AppRunner(build_app(service, token, log), access_log=None, handle_signals=False)
        await runner.setup()
        shared = bool(workers or worker_port)
        site = web.TCPSite(runner, host, int(worker_port) if worker_port else port, backlog=1024,
                           reuse_port=True if shared else None)
        await site.start()
        bound = runner.addresses[0][1] if runner.addresses else port
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        tasks = []
        if worker_port:
            say(f"spread serve: worker {os.getpid()} answering on port {bound}")
            tasks.append(asyncio.create_task(_orphaned(stop, int(os.environ.get(WORKER_PARENT_ENV) or 0))))
        else:
            routes = ", ".join(f"{name} (k={r.k}, min confidence {r.threshold.shown()}, on low {r.on_low.shown()})"
                               for name, r in service.settings.routes.items())
            say(f"spread serve: listening on http://{host}:{bound}/v1 — routes: {routes}"
                + (f" — {workers.count} processes" if workers else ""))
        if workers:
            tasks.append(asyncio.create_task(workers.supervise(bound, stop)))
        await stop.wait()
        began = time.perf_counter()
        if workers:
            workers.stop()
        await runner.cleanup()  # requests in flight finish and are stored first
        if workers:
            await asyncio.to_thread(workers.wait)
        for task in tasks:
            task.cancel()
        who = f"worker {os.getpid()} stopped" if worker_port else "stopped"
        say(f"spread serve: {who} ({time.perf_counter() - began:.1f} s to finish requests in flight)")

    uvloop.run(main())


def token_from(variable: str | None) -> str | None:
    """The bearer token from the named variable; a named variable that is unset is refused."""
    if not variable:
        return None
    from core.config import SpreadError

    value = os.environ.get(variable, "")
    if not value.strip():
        raise SpreadError(f"--token-env {variable}: that variable is not set or empty", "token_env")
    return value.strip()
