"""An optional second opinion from an LLM judge: do two answers to a question mean the same?

Off by default. When on, meaning clustering asks it only about pairs near the threshold
that no fact decides (meaning.NEAR), so a run costs a few calls, not n². Verdicts are
kept in a cache mapping the caller owns (a dict, or a table the UI wires in), keyed by
the model, the question and the unordered pair, so the same pair is never paid twice.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Callable

from core.store import Store
from core.store import decisions as decision_rows

PROMPT = """Two answers to the same question follow. Do they state the same answer, so that a reviewer
would accept one exactly when they accept the other? Ignore wording, length, format and confidence;
different numbers, names, dates, yes against no, or a claim against its negation are different.

Question: {question}

Answer A: {a}

Answer B: {b}

Reply with one word: SAME or DIFFERENT."""


@dataclass
class Judgement:
    verdicts: list[bool | None]       # True same, False different, None no usable reply
    calls: int = 0                    # model calls made (cached pairs cost none)
    cost_usd: float | None = 0.0      # None when a call's price is unknown, never a made-up 0
    errors: list[str] = field(default_factory=list)


def pair_key(model: str, question: str, a: str, b: str) -> str:
    """The cache key of a verdict: the same whichever answer comes first."""
    first, second = sorted([a, b])
    return hashlib.sha256(json.dumps([model, question, first, second]).encode()).hexdigest()


def judge(pairs: list[tuple[str, str]], *, model: str, question: str = "", cache: MutableMapping[str, bool] | None = None,
          complete: Callable[..., object] | None = None, store: Store | None = None) -> Judgement:
    """A verdict per pair, from the cache or from `model` (a catalogue endpoint's name in
    `store`'s catalogue, or any litellm model id). `complete` stands in for
    litellm.completion (tests pass a fake)."""
    cache = {} if cache is None else cache
    if complete is None:
        complete = completion_for(store, model)
    judgement = Judgement(verdicts=[])
    for a, b in pairs:
        key = pair_key(model, question, a, b)
        if key in cache:
            judgement.verdicts.append(cache[key])
            continue
        try:
            response = complete(model=model, temperature=0, max_tokens=5,
                                messages=[{"role": "user", "content": PROMPT.format(question=question, a=a, b=b)}])
        except Exception as error:  # a failed call gives no opinion; clustering goes on without it
            judgement.errors.append(f"{type(error).__name__}: {error}"[:200])
            judgement.verdicts.append(None)
            continue
        judgement.calls += 1
        judgement.cost_usd = _add_cost(judgement.cost_usd, response)
        verdict = parse(_text(response))
        if verdict is not None:
            cache[key] = verdict
        judgement.verdicts.append(verdict)
    return judgement


def completion_for(store: Store | None, name: str) -> Callable[..., object]:
    """A litellm.completion-like call to any catalogue chat endpoint of `store` (its server,
    key, parameters; a model group through its Router), else to `name` as a litellm id."""
    from core.config import SpreadError
    from core.models import endpoints, llm

    endpoint = endpoints.resolve(store, name) if store is not None else endpoints.bare(name, None)
    if endpoint.mode == "embedding":
        raise SpreadError(f"endpoint {name!r} embeds text: a second opinion needs a chat endpoint", "second_opinion")
    call = endpoints.how_to_call(endpoint, 60.0)
    options = call.options()
    router = options["router"]
    fixed = {**options["params"], "timeout": options["timeout_s"]}
    fixed.update({k: options[k] for k in ("api_base", "api_key") if options[k] is not None})

    def complete(**kwargs):
        kwargs["model"] = call.model
        return (router.completion if router is not None else llm.get().completion)(**fixed, **kwargs)
    return complete


def parse(reply: str) -> bool | None:
    words = re.findall(r"[A-Za-z]+", reply.upper())
    if "DIFFERENT" in words:
        return False
    if "SAME" in words:
        return True
    return None


def second_opinion(model: str, question: str, cache: MutableMapping[str, bool], ledger: list[Judgement],
                   complete: Callable[..., object] | None = None):
    """A meaning.SecondOpinion backed by judge(); each batch's Judgement (calls, cost) is
    appended to `ledger` so the caller can show what the opinions cost."""
    def ask(pairs: list[tuple[str, str]]) -> list[bool | None]:
        judgement = judge(pairs, model=model, question=question, cache=cache, complete=complete)
        ledger.append(judgement)
        return judgement.verdicts
    return ask


def _text(response) -> str:
    try:
        return response["choices"][0]["message"]["content"] or ""
    except (KeyError, IndexError, TypeError):
        return getattr(getattr(response.choices[0], "message", None), "content", "") or ""


def _add_cost(total: float | None, response) -> float | None:
    if total is None:
        return None
    try:
        from core.models import llm

        cost = llm.get().completion_cost(completion_response=response)
    except Exception:
        return None
    return None if cost is None else total + float(cost)


class StoredVerdicts(MutableMapping):
    """The cache of verdicts as a table (`pair_judgements`): a pair is paid for once per database."""

    def __init__(self, store: Store, model: str):
        self.model, self.store = model, store

    def __getitem__(self, key: str) -> bool:
        with self.store.connection() as db:
            same = decision_rows.judged_same(db, key)
        if same is None:
            raise KeyError(key)
        return same

    def __setitem__(self, key: str, same: bool) -> None:
        with self.store.connection() as db:
            decision_rows.save_judgement(db, key, self.model, same)

    def __delitem__(self, key: str) -> None:
        raise NotImplementedError("verdicts are kept")

    def __iter__(self):
        with self.store.connection() as db:
            return iter(decision_rows.judged_keys(db, self.model))

    def __len__(self) -> int:
        return sum(1 for _ in self)
