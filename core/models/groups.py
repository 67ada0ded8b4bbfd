"""Model groups: several deployments behind one endpoint name, called through litellm's
Router — the engine LiteLLM proxy users already trust — rather than a balancer of our own.

The Router spreads calls by its routing strategy (simple-shuffle by default, weighted by
each deployment's rpm/tpm), retries and cools down a failing deployment as its settings
say, and reports which deployment answered (`model_info.id`, the deployment's label),
which Spread stores on each response. One Router per group and event loop, made on first
use and kept: its clients, cooldowns and usage counters must outlive a single call.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import threading
import weakref

from core.models import llm

# router_settings of a LiteLLM config that Spread keeps and hands to the Router.
ROUTER_SETTINGS = ("routing_strategy", "routing_strategy_args", "num_retries", "retry_after", "allowed_fails",
                   "cooldown_time", "disable_cooldowns", "enable_pre_call_checks")

_lock = threading.Lock()
_by_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict]" = weakref.WeakKeyDictionary()
_no_loop: dict = {}


def model_list(call) -> list[dict]:
    """The Router's model_list for a group's call: one entry per deployment, keys read now."""
    entries = []
    for member in call.members:
        endpoint = member.endpoint
        params = {**member.params, "model": member.model, "timeout": member.timeout_s, "max_retries": 0}
        for name, value in (("api_base", member.api_base), ("api_key", member.api_key), ("rpm", endpoint.rpm),
                            ("tpm", endpoint.tpm), ("max_parallel_requests", endpoint.max_concurrency)):
            if value is not None:
                params[name] = value
        entries.append({"model_name": call.model, "litellm_params": params, "model_info": {"id": endpoint.name}})
    return entries


def router_for(call):
    """The group's Router for the running event loop (or for synchronous calls)."""
    entries = model_list(call)
    settings = {k: v for k, v in (call.endpoint.router or {}).items() if k in ROUTER_SETTINGS}
    key = hashlib.sha256(json.dumps([entries, settings], sort_keys=True, default=str).encode()).hexdigest()
    try:
        routers = _by_loop.setdefault(asyncio.get_running_loop(), {})
    except RuntimeError:
        routers = _no_loop
    with _lock:
        if key not in routers:
            litellm = llm.get()
            prices = copy.deepcopy(litellm.model_cost)
            try:
                # Retries are Spread's (counted per answer) unless the config asks the Router for its own.
                routers[key] = litellm.Router(model_list=entries, **{"num_retries": 0, **settings})
            finally:
                _restore(litellm.model_cost, prices)
        return routers[key]


def _restore(model_cost: dict, prices: dict) -> None:
    """Undo what the Router wrote into litellm's price map: it registers each deployment
    (an unknown model with no price, which litellm then prices at a silent $0) and
    overwrites a known model's prices with one deployment's, for every call in the process.
    Spread prices answers itself (endpoint prices, else litellm's shipped map, else unknown)."""
    for name in [n for n in model_cost if n not in prices]:
        del model_cost[name]
    for name, entry in prices.items():
        if model_cost.get(name) != entry:
            model_cost[name] = entry
