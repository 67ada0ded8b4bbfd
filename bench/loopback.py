"""A loopback OpenAI-compatible server for the benchmarks: every chat call is answered
after exactly `latency` seconds, streamed or not, and the server counts what it saw.

It runs in its own process (aiohttp, keep-alive like a real provider) so that it is not
the bottleneck of the client it measures, and reports its own CPU time: the server and
the client share the machine's cores.

    .venv/bin/python bench/loopback.py --latency 0.2        # prints "port N", serves until killed

    with Loopback(latency_s=0.2) as server:                 # from Python: a child process
        server.base_url                                     # http://127.0.0.1:N/v1
        server.reset(); ...; server.stats()                 # requests, peak_in_flight, cpu_s

Stats: `requests` (chat calls), `answered` (answers sent in full), `peak_in_flight` (most calls open at once: accepted and
not yet answered), `first_request_at` (the wall clock, time.time(), of the first chat call
since the last reset: a client's start-up is measured here), `cpu_s` (the server
process's user + system CPU since its start).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
import urllib.request

ANSWERS = ["The capital of France is Paris.", "Paris.", "It is Paris, of course.",
           "Paris is the capital of France.", "I believe the answer is Paris."]


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make_app(latency_s: float):
    from aiohttp import web

    state = {"requests": 0, "answered": 0, "in_flight": 0, "peak_in_flight": 0, "first_request_at": None}

    def answered() -> bool:
        # Counted as the answer's last bytes are handed over, not when the handler next
        # runs: on a busy machine this process may resume hundreds of finished handlers
        # only after new requests arrived, which would count both at once.
        state["answered"] += 1
        state["in_flight"] -= 1
        return True

    async def chat(request: web.Request) -> web.StreamResponse:
        if state["first_request_at"] is None:
            state["first_request_at"] = time.time()
        state["requests"] += 1
        state["in_flight"] += 1
        state["peak_in_flight"] = max(state["peak_in_flight"], state["in_flight"])
        done = False
        try:
            body = await request.json()
            await asyncio.sleep(latency_s)
            seed = body.get("seed")
            text = ANSWERS[seed % len(ANSWERS)] if isinstance(seed, int) else ANSWERS[state["requests"] % len(ANSWERS)]
            words = text.split()
            usage = {"prompt_tokens": 12, "completion_tokens": len(words), "total_tokens": 12 + len(words)}
            base = {"id": f"chatcmpl-{state['requests']}", "created": int(time.time()),
                    "model": str(body.get("model")) + "-bench"}
            if not body.get("stream"):
                response = web.json_response({**base, "object": "chat.completion", "usage": usage, "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]})
                done = answered()
                await response.prepare(request)
                await response.write_eof()
                return response
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)

            def chunk(choices, **extra) -> bytes:
                obj = {**base, "object": "chat.completion.chunk", "choices": choices, **extra}
                return b"data: " + json.dumps(obj).encode() + b"\n\n"

            # One event per word, as a provider streams tokens; written back to back.
            for i, word in enumerate(words):
                delta = {"role": "assistant", "content": word} if i == 0 else {"content": " " + word}
                await response.write(chunk([{"index": 0, "delta": delta, "finish_reason": None}]))
            await response.write(chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
            if (body.get("stream_options") or {}).get("include_usage"):
                await response.write(chunk([], usage=usage))
            done = answered()
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
            return response
        except ConnectionError:  # the client went away (a benchmark kills it on purpose)
            return web.Response(status=499)
        finally:
            if not done:
                state["in_flight"] -= 1

    async def models(request):
        return web.json_response({"object": "list", "data": [{"id": "bench", "object": "model"}]})

    async def stats(request):
        return web.json_response({**state, "cpu_s": round(_cpu_s(), 3)})

    async def reset(request):
        state.update(requests=0, answered=0, peak_in_flight=state["in_flight"], first_request_at=None)
        return web.json_response({**state, "cpu_s": round(_cpu_s(), 3)})

    app = web.Application(client_max_size=1 << 22)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/stats", stats)
    app.router.add_post("/reset", reset)
    return app


def serve(latency_s: float, port: int = 0) -> None:
    from aiohttp import web

    async def main():
        runner = web.AppRunner(make_app(latency_s), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
        await site.start()
        print(f"port {site._server.sockets[0].getsockname()[1]}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


class Loopback:
    """The server in a child process; `stats()` and `reset()` talk to it over HTTP."""

    def __init__(self, latency_s: float = 0.2):
        self.latency_s = latency_s
        self.process: subprocess.Popen | None = None
        self.base_url = ""
        self.root = ""

    def __enter__(self) -> "Loopback":
        self.process = subprocess.Popen([sys.executable, __file__, "--latency", str(self.latency_s)],
                                        stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if not line.startswith("port "):
            raise RuntimeError("the loopback server did not start")
        self.root = f"http://127.0.0.1:{int(line.split()[1])}"
        self.base_url = self.root + "/v1"
        return self

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def _call(self, path: str, method: str = "GET") -> dict:
        request = urllib.request.Request(self.root + path, method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def stats(self) -> dict:
        return self._call("/stats")

    def reset(self) -> dict:
        return self._call("/reset", "POST")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2, help="seconds before every answer")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    serve(args.latency, args.port)
