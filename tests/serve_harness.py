"""`spread serve` in the test process: the aiohttp app on a loopback port, on its own loop
and thread, over a Service whose routes point at a loopback OpenAI stub."""

from __future__ import annotations

import asyncio
import itertools
import threading

from aiohttp import web

from core.serve import calibration, http, routes
from core.serve.service import Service


class Answers:
    """A stub's `respond`: the given answers in turn, whichever request comes first (so a
    request of k calls gets exactly these k when they are k)."""

    def __init__(self, *answers):
        self._cycle = itertools.cycle(answers)
        self._lock = threading.Lock()

    def __call__(self, body):
        with self._lock:
            return next(self._cycle)


class Served:
    def __init__(self, store, settings: routes.Settings, *, token: str | None = None):
        settings.routes = calibration.resolve_thresholds(store, settings.routes)
        self.service = Service(store, settings)
        self.service.prepare()
        self.token = token
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runner = web.AppRunner(http.build_app(self.service, token), access_log=None, handle_signals=False)
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)

    async def _start(self):
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def close(self):
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def settings(stub, *route_specs: routes.Route, **options) -> routes.Settings:
    return routes.Settings({r.name: r for r in route_specs}, api_base=stub.base_url, **options)
