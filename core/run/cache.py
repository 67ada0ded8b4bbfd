"""The answer cache: an answer is reused only for the very same request and sample.

Opt-in per run (`spread run --cache`, the Playground's switch): before a round is sampled,
each cell whose request was already answered in an earlier run, for the same endpoint
(model, server, parameters), messages, tools, tool choice, response format, temperature,
max tokens, top-p, seed **and sample index**, gets a copy of that answer instead of a call.
The sample index is in the key so that N repeats stay N independent draws, never N copies
of one answer (the failure of caches keyed on the request alone); raising N samples only
the new indices. The cache is the answers already in the store (`responses.cache_key`,
written for every answer of every run), not a second store. A copy is marked
(`cached_from`: the answer it copies); its cost stays visible as the original's and counts
no new cost in the run's summary (`cost_usd_new`).
"""

from __future__ import annotations

import hashlib
import json

from core.store import Store

from core.store import responses
from core.store import answer_cache

# The endpoint settings that change an answer (not its price, limits or timeout).
_ENDPOINT_FIELDS = ("model", "api_base", "params", "deployments", "router")


class Keys:
    """The cache key of each sample of a run: the request's digest once per (variant,
    input, model), then the sampled parameters per sample."""

    def __init__(self, spec, prompts: dict[tuple, list[dict]]):
        self.spec, self.prompts = spec, prompts
        self._prefix: dict[tuple, str] = {}
        self._shapes = [variant.request() for variant in spec.all_variants()]

    def of(self, cell: tuple) -> str:
        variant, input_idx, model, temperature, sample_idx = cell
        prefix = self._prefix.get((variant, input_idx, model))
        if prefix is None:
            settings = self.spec.endpoint(model).settings()
            request = {"endpoint": {k: settings.get(k) for k in _ENDPOINT_FIELDS},
                       "messages": self.prompts[(variant, input_idx)], "shape": self._shapes[variant],
                       "max_tokens": self.spec.max_tokens, "top_p": self.spec.top_p}
            prefix = hashlib.sha256(json.dumps(request, sort_keys=True, ensure_ascii=False,
                                               default=str).encode()).hexdigest()
            self._prefix[(variant, input_idx, model)] = prefix
        sampled = f"{prefix}|{float(temperature)!r}|{self.spec.seed_for(sample_idx)}|{sample_idx}"
        return hashlib.sha256(sampled.encode()).hexdigest()[:40]


def reuse(store: Store, run_id: int, keys: Keys, todo: list[tuple]) -> list[tuple]:
    """Copy the stored answers of `todo`'s requests into this run (one transaction); returns
    the cells still to sample."""
    wanted = {keys.of(cell): cell for cell in todo}
    with store.connection() as db:
        found = answer_cache.answers(db, list(wanted), run_id)
        if found:
            copies = []
            for key, original in found.items():
                variant, input_idx, model, temperature, sample_idx = wanted[key]
                copies.append({**original, "run_id": run_id, "variant": variant, "input": input_idx, "model": model,
                               "temperature": temperature, "sample_idx": sample_idx, "created_at": None,
                               "cached_from": original["cached_from"] or original["id"]})
            responses.save_responses(db, copies)
    return [cell for key, cell in wanted.items() if key not in found]
