"""What `spread serve` does with one chat request, apart from HTTP (core/serve/http.py).

1. The request is read as OpenAI's chat-completions shape and refused, with one line and
   a 4xx status, when it cannot be served (`BadRequest`), before any call is made.
2. k answers are sampled in parallel through the engine's sampler (core/run/sampler.py:
   the same calls, retries and error rows as a run), the route's models in turn. With
   adaptive k, a first round of `first_round` answers is asked; when they all came back,
   pass the checks and mean one thing, the rest are not asked.
3. The decision (core/serve/vote.py): checks set answers aside, meaning groups the rest,
   the largest meaning's representative is the answer, its share of k the confidence.
4. Below the route's threshold: abstain, fall back to another route, or answer flagged.
5. The request, its k answers (error rows included), their check results and the
   decision are stored in one transaction as a new input of the route's run for the day
   (core/store/serving.py), before the answer is sent: `run_id` and `answer_ids` in the
   reply point at stored rows, and an answer given is never one that was lost.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from core.store import Store, commits_without_waiting_for_disk, unreachable
from core.config import SpreadError
from core.analyse import stats
from core.models import direct, endpoints, limits, llm
from core.prompts import conversation, shapes
from core.run import plan
from core.run.sampler import Job, Sampler
from core.serve import vote
from core.serve.routes import Route, Settings
from core.store import serving

# An upstream error type -> the HTTP status the caller gets when every call failed with it.
UPSTREAM_STATUS = {"rate_limit": 429, "timeout": 504, "auth": 502, "not_found": 502, "bad_request": 400,
                   "context_window": 400, "server_error": 502, "connection": 502, "other": 502, "cancelled": 503}


class BadRequest(Exception):
    """A request that cannot be served: its OpenAI-shaped error (status, one line, param)."""

    def __init__(self, message: str, status: int = 400, *, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.param, self.code, self.kind = status, param, code, kind

    def body(self) -> dict:
        return {"error": {"message": str(self), "type": self.kind, "param": self.param, "code": self.code}}


@dataclass
class ChatRequest:
    """A chat request as Spread samples it (the caller's keys and headers are not in it)."""

    route: str
    messages: list[dict]
    tools: list[dict] | None = None
    tool_choice: object = None
    response_format: dict | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    top_p: float | None = None
    k: int | None = None
    stream: bool = False
    include_usage: bool = False

    def variant(self) -> plan.Variant:
        """The request as a run's variant: its conversation, tools, tool choice and response format."""
        return plan.Variant(conversation.text(self.messages), "", "", self.messages, self.tools, self.tool_choice,
                            self.response_format)

    def shape(self) -> str:
        """The run a request joins is per shape: a run's variant holds tools and response format."""
        asked = [self.tools, self.tool_choice, self.response_format]
        if not any(value is not None for value in asked):
            return "text"
        return hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()[:16]


def parse_request(body, settings: Settings) -> ChatRequest:
    """The request read and checked, or BadRequest naming what is wrong."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object (an OpenAI chat request)")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("`model` names a route (GET /v1/models lists them)", param="model")
    if model not in settings.routes:
        raise BadRequest(f"no route {model!r}; routes: {', '.join(settings.routes)}", 404, param="model",
                         code="model_not_found")
    try:
        messages = conversation.checked(body.get("messages"), "messages")
        tools = shapes.checked_tools(body["tools"], "tools") if body.get("tools") else None
        tool_choice = shapes.checked_tool_choice(body.get("tool_choice"), tools)
        response_format = body.get("response_format")
        if isinstance(response_format, dict) and response_format.get("type") == "text":
            response_format = None
        response_format = shapes.checked_response_format(response_format) if response_format else None
    except SpreadError as e:
        raise BadRequest(str(e), param=getattr(e, "field", None)) from None
    temperature = _number(body, "temperature", 0, 2)
    top_p = _number(body, "top_p", 0, 1)
    max_tokens = _whole(body, "max_completion_tokens", 1, 200_000) or _whole(body, "max_tokens", 1, 200_000)
    seed = _whole(body, "seed", 0, 2**31 - 1000)
    n = _whole(body, "n", 1, 128)
    if n not in (None, 1):
        raise BadRequest("n must be 1: Spread answers with the one meaning most answers share (set k for how many "
                         "answers it asks)", param="n")
    extra = body.get("spread") if isinstance(body.get("spread"), dict) else {}
    k = _whole(extra, "k", 1, 10**6) if "k" in extra else _whole(body, "k", 1, 10**6)
    if k is not None and k > settings.max_k:
        raise BadRequest(f"k={k} is above this server's maximum of {settings.max_k} (--max-k)", param="k")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("stream must be true or false", param="stream")
    options = body.get("stream_options") or {}
    return ChatRequest(model, messages, tools, tool_choice, response_format, temperature, max_tokens, seed, top_p, k,
                       stream, bool(isinstance(options, dict) and options.get("include_usage")))


def _number(body: dict, name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise BadRequest(f"{name} must be a number in {low:g}..{high:g} (got {value!r})", param=name)
    return float(value)


def _whole(body: dict, name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(f"{name} must be a whole number in {low}..{high} (got {value!r})", param=name)
    return value


@dataclass
class Answer:
    """What one route decided for one request."""

    route: Route
    request: ChatRequest
    rows: list[dict]
    decision: vote.Decision
    threshold: float | None
    low: bool
    rounds_slowest_ms: float  # the slowest call of each round, summed: what the caller waited for anyway
    latency_ms: float  # sampling and deciding, in all
    run_id: int | None = None
    request_id: int | None = None
    answer_ids: list[int] = field(default_factory=list)
    chosen_id: int | None = None

    @property
    def chosen_row(self) -> dict | None:
        if self.decision.chosen is None:
            return None
        return next(row for row in self.rows if row["sample_idx"] == self.decision.chosen)


@dataclass
class Reply:
    """What the caller gets: an OpenAI chat completion with a `spread` object, or an error."""

    status: int
    body: dict
    confidence: float | None = None


WARM_UP_ANSWERS = [{"sample_idx": 0, "text": "The capital of France is Paris.", "error_type": None},
                   {"sample_idx": 1, "text": "It is Lyon, a city of half a million people.", "error_type": None}]


class Service:
    """Answers chat requests on the configured routes; one per server process."""

    def __init__(self, store: Store, settings: Settings, *, embedder=None):
        self.settings = settings.check()
        self.store = store
        self.embedder = embedder or vote.CachedEmbedder()
        self.specs: dict[str, plan.RunSpec] = {}
        self.secrets: dict[str, list[str]] = {}
        self.method = settings.method
        self.cancel = threading.Event()  # set when the server stops: samplers stop retrying
        self._gate: limits.Gate | None = None
        self._runs: dict[tuple[str, str, str], int] = {}
        self._runs_lock = threading.Lock()
        self._session = None
        # Requests are stored by one thread over one connection kept open (`_connection`).
        self._writes = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="spread-serve-store")
        self._held: contextlib.ExitStack | None = None
        self._held_db = None

    # --- start and stop ---------------------------------------------------------------

    def prepare(self) -> None:
        """Before the loop starts: every route's models resolved and checked (a missing key, an
        unknown model: one line), litellm loaded if a route needs it, the meaning model loaded."""
        for route in self.settings.routes.values():
            spec = plan.RunSpec(models=list(route.models), temperatures=[route.temperature], n=route.k,
                                prompt=f"requests served on route {route.name}", api_base=self.settings.api_base,
                                max_tokens=route.max_tokens, stream=False, timeout_s=self.settings.timeout_s,
                                max_attempts=self.settings.max_attempts, checks=[c.as_dict() for c in route.checks],
                                name=f"serve {route.name}")
            try:
                self.specs[route.name] = plan.validate(self.store, spec)
            except SpreadError as e:
                raise SpreadError(f"route {route.name!r}: {e}", "route") from None
            calls = [self.specs[route.name].call_for(m) for m in self.specs[route.name].models]
            self.secrets[route.name] = endpoints.secret_values(calls)
        # litellm's model map says which models take tools and response formats, and litellm
        # calls the routes it carries: imported before listening (seconds), as a background
        # import would take that CPU from the first requests instead (measured: 90 ms each).
        llm.get()
        from core.analyse import embed

        # Which meaning method, decided once: finding out whether MiniLM is installed looks the
        # package up on disk (measured: a third of a request's CPU when asked per request).
        self.method = self.settings.method or embed.default_method()
        # One decision on answers that disagree, off any request's clock: the model's first
        # load and call, and the fact rules' first use, which imports scikit-learn's stop
        # words (about 250 modules, over a second: measured, the requests in flight then
        # waited on that import).
        vote.decide(WARM_UP_ANSWERS, method=self.method, embedder=self.embedder)
        direct.load()

    async def start(self) -> None:
        # One gate for every route's calls, as a run's engine has (core/models/limits.py): the
        # server's cap on calls in flight, and each endpoint's own cap and requests per minute,
        # across all the requests in flight.
        caps, buckets = {}, {}
        for spec in self.specs.values():
            for model in spec.models:
                caps[model] = spec.concurrency_for(model)
                buckets[model] = limits.bucket_for(spec.endpoint(model))
        self._gate = limits.Gate(self.settings.concurrency, caps, buckets)
        self._session = direct.session()  # one HTTP client for every direct call while the server runs
        await self._session.__aenter__()
        if any(llm.needs_litellm([s.call_for(m) for m in s.models]) for s in self.specs.values()):
            await llm.warm()

    async def stop(self) -> None:
        self.cancel.set()
        await asyncio.get_running_loop().run_in_executor(self._writes, self._release)
        self._writes.shutdown(wait=True)
        if self._session is not None:
            await self._session.__aexit__(None, None, None)

    # --- one request --------------------------------------------------------------------

    async def reply(self, body) -> Reply:
        try:
            chat = parse_request(body, self.settings)
            route = self.settings.routes[chat.route]
            await self._check_shapes(route, chat)
        except BadRequest as e:
            return Reply(e.status, e.body())
        answer = await self._answer(route, chat)
        first = None
        if answer.low and route.on_low.action == "fallback":
            other = self.settings.routes[route.on_low.route]
            try:
                await self._check_shapes(other, chat)
            except BadRequest:
                pass  # the fallback cannot take this request: the first route's decision stands
            else:
                first, answer = answer, await self._answer(other, replace(chat, route=other.name, k=None))
        # The route that answered keeps its own policy, but never falls back again.
        abstained = answer.decision.k > 0 and answer.low and answer.route.on_low.action != "best"
        if answer.decision.k == 0:
            status = _upstream_status([row for row in answer.rows if row.get("error_type")])
        else:
            status = self.settings.abstain_status if abstained else 200
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._writes, functools.partial(
                self._save, answer, status=status, abstained=abstained,
                fallback_of=first.route.name if first else None))
            if first is not None:
                await loop.run_in_executor(self._writes, functools.partial(
                    self._save, first, status=status, abstained=False, fell_back=True))
        except Exception as error:
            if not unreachable(error):
                raise
            # Every answer given is kept for review: one that could not be kept is not given.
            return Reply(503, BadRequest("the database cannot be reached, so this request could not be stored for "
                                         "review and is not answered; try again", 503, kind="server_error",
                                         code="store_unreachable").body())
        return self._compose(answer, chat, first, status, abstained)

    async def _check_shapes(self, route: Route, chat: ChatRequest) -> None:
        """Refuse, before sampling, tools or a response format one of the route's models cannot
        take (litellm's model map says: read off the event loop)."""
        if chat.tools or chat.response_format:
            await asyncio.to_thread(self._check_shapes_now, route, chat)

    def _check_shapes_now(self, route: Route, chat: ChatRequest) -> None:
        spec = replace(self.specs[route.name], variants=[chat.variant()])
        for model in spec.models:
            try:
                plan.check_shapes_supported(spec, model)
            except SpreadError as e:
                raise BadRequest(f"route {route.name!r}: {e}".replace("; choose another model or drop them from the "
                                                                       "plan", ""),
                                 param="tools" if chat.tools else "response_format") from None

    async def _answer(self, route: Route, chat: ChatRequest) -> Answer:
        started = time.perf_counter()
        k = chat.k or route.k
        first = min(self.settings.first_round, k) if self.settings.adaptive else k
        rows, slowest = await self._sample(route, chat, 0, first)
        decision = await self._decide(route, chat, rows)
        if first < k and not decision.agrees():
            more, more_slowest = await self._sample(route, chat, first, k - first)
            rows += more
            slowest += more_slowest
            decision = await self._decide(route, chat, rows)
        threshold = route.threshold.value
        low = decision.chosen is None or (threshold is not None and decision.confidence < threshold)
        return Answer(route, chat, rows, decision, threshold, low, slowest, (time.perf_counter() - started) * 1000)

    async def _sample(self, route: Route, chat: ChatRequest, start: int, count: int) -> tuple[list[dict], float]:
        """`count` answers (samples start..start+count-1) in parallel; and the slowest call's time."""
        base = self.specs[route.name]
        spec = replace(base, variants=[chat.variant()], seed=chat.seed, top_p=chat.top_p,
                       max_tokens=chat.max_tokens or base.max_tokens or None)
        sampler = Sampler(spec, self.secrets[route.name], self.cancel, pace=self._gate.pace)
        temperature = route.temperature if chat.temperature is None else chat.temperature

        async def one(sample: int) -> dict:
            model = route.model_for(sample)
            await self._gate.acquire(model)
            try:
                row = await sampler.sample(Job(0, (0, 0, model, temperature, sample), chat.messages))
            finally:
                self._gate.release(model)
            if row is None:  # the server is stopping
                row = {"variant": 0, "input": 0, "model": model, "temperature": temperature, "sample_idx": sample,
                       "error_type": "cancelled", "error_message": "the server is stopping", "attempts": 0}
            if row.get("error_type") is None:
                row["cost_usd"] = self._price(route.name, model, row.get("prompt_tokens"), row.get("completion_tokens"))
            return row

        rows = await asyncio.gather(*(one(sample) for sample in range(start, start + count)))
        return list(rows), max((row.get("latency_ms") or 0.0 for row in rows), default=0.0)

    async def _decide(self, route: Route, chat: ChatRequest, rows: list[dict]) -> vote.Decision:
        variant = {"tools": chat.tools, "response_format": chat.response_format}
        context = f"{conversation.system_text(chat.messages)}\n{conversation.last_user_text(chat.messages)}"
        return await asyncio.to_thread(vote.decide, rows, route_checks=route.checks, variant=variant,
                                       method=self.method, context=context, embedder=self.embedder)

    @functools.lru_cache(maxsize=4096)
    def _price(self, route: str, model: str, tokens_in: int | None, tokens_out: int | None) -> float | None:
        """Priced once per model and token count, as the engine does (unknown stays None, never 0)."""
        return self.specs[route].call_for(model).cost_usd(tokens_in, tokens_out)

    # --- what is kept -------------------------------------------------------------------

    def _run_for(self, route: Route, chat: ChatRequest) -> int:
        day = datetime.now(timezone.utc).date().isoformat()
        key = (route.name, day, chat.shape())
        with self._runs_lock:
            if key in self._runs:
                return self._runs[key]
            spec = replace(self.specs[route.name], variants=[
                plan.Variant(f"requests served on route {route.name}", "", "", None, chat.tools, chat.tool_choice,
                             chat.response_format)], name=f"serve {route.name} {day}", n=route.k)
            stored = spec.as_dict()
            stored["n_inputs"] = 0
            stored["serve"] = {"route": route.name, "day": day, "threshold": route.threshold.shown(),
                               "on_low": route.on_low.shown(), "adaptive": self.settings.adaptive}
            with self.store.connection() as db:
                run_id = serving.open_run(db, route.name, day, key[2], spec=stored, variant=stored["variants"][0],
                                          created_by="spread serve")
            self._runs[key] = run_id
            return run_id

    def _save(self, answer: Answer, *, status: int, abstained: bool, fallback_of: str | None = None,
              fell_back: bool = False) -> None:
        chat, decision = answer.request, answer.decision
        run_id = self._run_for(answer.route, chat)
        usage = _usage(answer.rows)
        costs = [row.get("cost_usd") for row in answer.rows if row.get("error_type") is None]
        request = {
            "route": answer.route.name, "answered_by": fallback_of and f"fallback of {fallback_of}",
            "asked": decision.asked, "k": decision.k, "failed": decision.failed, "filtered": decision.filtered,
            "clusters": decision.clusters, "confidence": decision.confidence,
            "semantic_entropy": decision.semantic_entropy, "threshold": answer.threshold,
            "abstained": int(abstained), "fallback": int(fell_back), "status": status,
            "latency_ms": answer.latency_ms,
            "slowest_call_ms": answer.rounds_slowest_ms, "prompt_tokens": usage["prompt_tokens"],
            "completion_tokens": usage["completion_tokens"],
            "cost_usd": None if None in costs else sum(costs),
        }
        checks = [(o.sample, o.key, o.type, {"passed": o.passed, "score": o.score, "reason": o.reason})
                  for o in decision.outcomes]
        with self._connection() as db:
            _, ids, answer.request_id = serving.save_request(
                db, run_id, vars={"route": answer.route.name}, system=conversation.system_text(chat.messages),
                prompt=conversation.last_user_text(chat.messages), messages=chat.messages, rows=answer.rows,
                request=request, checks=checks, chosen_sample=decision.chosen)
        answer.run_id = run_id
        answer.answer_ids = [ids[row["sample_idx"]] for row in answer.rows if row.get("error_type") is None]
        answer.chosen_id = ids.get(decision.chosen) if decision.chosen is not None else None

    @contextlib.contextmanager
    def _connection(self):
        """The store, from the one thread that writes requests (`self._writes`): its connection
        stays open between requests, as the engine's writer's does. Opening and closing one per
        request cost more than the rest of the request: closing a SQLite file's last connection
        checkpoints its journal (measured: 17 ms of a 40 ms save). Commits do not wait for the
        disk, as the engine's answers do not: a killed process loses nothing committed."""
        if self._held is None:
            held = contextlib.ExitStack()
            db = held.enter_context(self.store.connection())
            held.enter_context(commits_without_waiting_for_disk(db))
            self._held, self._held_db = held, db
        try:
            yield self._held_db
        except Exception as error:
            if unreachable(error):  # a PostgreSQL restart: a new connection next time
                self._release()
            raise

    def _release(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            try:
                held.close()
            except Exception:
                pass  # the connection is gone already

    # --- the reply ----------------------------------------------------------------------

    def _compose(self, answer: Answer, chat: ChatRequest, first: Answer | None, status: int,
                 abstained: bool) -> Reply:
        decision, route = answer.decision, answer.route
        spread_object = self._spread(answer, first, abstained=abstained)
        if decision.k == 0:  # every call failed
            errors = [row for row in answer.rows if row.get("error_type")]
            message = (f"route {route.name!r}: all {decision.asked} calls to the model failed; the last: "
                       f"{errors[-1].get('error_type')}: {errors[-1].get('error_message') or ''}")
            return Reply(status, {"error": {"message": message, "type": "upstream_error", "param": None,
                                            "code": errors[-1].get("error_type")}, "spread": spread_object}, 0.0)
        if abstained and status != 200:
            return Reply(status, {"error": {"message": self.settings.abstain_message, "type": "abstained",
                                            "param": None, "code": "low_confidence"}, "spread": spread_object},
                         decision.confidence)
        if abstained:
            message, finish = {"role": "assistant", "content": self.settings.abstain_message, "refusal": None}, "stop"
        else:
            message, finish = assistant_message(answer.chosen_row)
        body = {
            "id": f"chatcmpl-spread-{answer.request_id}", "object": "chat.completion", "created": int(time.time()),
            "model": chat.route, "system_fingerprint": None,
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            "usage": _usage(answer.rows + (first.rows if first else [])), "spread": spread_object,
        }
        return Reply(200, body, decision.confidence)

    def _spread(self, answer: Answer, fallback_from: Answer | None, *, abstained: bool) -> dict:
        decision = answer.decision
        low, high = stats.wilson(round(decision.confidence * decision.k), decision.k) if decision.k else (0.0, 1.0)
        out = {
            "confidence": round(decision.confidence, 6), "k": decision.k,
            "clusters": decision.clusters, "shares": [round(s, 6) for s in decision.shares],
            "semantic_entropy": None if decision.semantic_entropy is None else round(decision.semantic_entropy, 6),
            "abstained": abstained, "route": answer.route.name, "run_id": answer.run_id,
            "answer_ids": answer.answer_ids,
            # Beside the keys above: how the decision was reached.
            # The share's 95% Wilson interval over the k answers asked: with k = 5, 4 of 5 is
            # anywhere from 0.38 to 0.96. What a share means for correctness is calibration's.
            "confidence_interval": [round(low, 4), round(high, 4)],
            "asked": decision.asked, "failed": decision.failed, "filtered": decision.filtered,
            "threshold": answer.threshold, "threshold_rule": answer.route.threshold.shown(),
            "low_confidence": answer.low, "chosen_answer_id": answer.chosen_id,
            "fallback": None,
        }
        if fallback_from is not None:
            out["fallback"] = {"from": fallback_from.route.name, "confidence": round(fallback_from.decision.confidence, 6),
                               "k": fallback_from.decision.k, "run_id": fallback_from.run_id,
                               "answer_ids": fallback_from.answer_ids}
        return out


def assistant_message(row: dict) -> tuple[dict, str]:
    """A stored answer as an OpenAI assistant message, and its finish reason."""
    calls = shapes.tool_calls_of(row.get("tool_calls"))
    message: dict = {"role": "assistant", "content": row.get("text") or None, "refusal": None}
    if calls:
        message["tool_calls"] = [
            {"id": f"call_spread_{row['sample_idx']}_{n}", "type": "function",
             "function": {"name": call.get("name") or "",
                          "arguments": call["arguments"] if isinstance(call.get("arguments"), str)
                          else json.dumps(call.get("arguments"), ensure_ascii=False)}}
            for n, call in enumerate(calls)]
        return message, "tool_calls"
    if message["content"] is None:
        message["content"] = ""
    return message, row.get("finish_reason") or "stop"


def _usage(rows: list[dict]) -> dict:
    """The k calls' usage, summed (unknown counts count as 0 here; the stored rows keep NULL)."""
    prompt = sum(row.get("prompt_tokens") or 0 for row in rows)
    completion = sum(row.get("completion_tokens") or 0 for row in rows)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _upstream_status(errors: list[dict]) -> int:
    """The status the provider gave (a direct call's error message starts with it), else by type."""
    for row in reversed(errors):
        found = re.match(r"^(\d{3}):", row.get("error_message") or "")
        if found and 400 <= int(found.group(1)) <= 599:
            return int(found.group(1))
    return UPSTREAM_STATUS.get(errors[-1].get("error_type") or "other", 502) if errors else 502
