"""What a plan will cost before it runs, and a projection once answers arrive.

Before: the planned calls, the prompt tokens counted (not guessed) with litellm's token
counter for each model over every rendered prompt, the completion-token ceiling from
max tokens, and the cost range from the price map: at least the prompts, at most the
prompts plus every answer running to max tokens. A model of unknown price has an
unknown cost, never $0.

After the first answers: the cost of what came back so far, plus the calls still to
make at the mean cost per answer seen for each model.
"""

from __future__ import annotations

from core import display
from core.config import SpreadError
from core.models import endpoints, llm, local_llm
from core.run.plan import RunSpec, check_shapes_supported, validate
from core.store import Store, responses, runs


def estimate(store: Store, spec: RunSpec, *, check_providers: bool = True) -> dict:
    """The plan's size, tokens and cost range; validates the plan, writes nothing. A model
    that could not start (no key, server down) is a note, not an error: the estimate stands.
    The Playground skips those checks (they touch the network) until Run."""
    spec = validate(store, spec, check_providers=False)
    litellm = llm.get()
    rendered = spec.sent()
    samples = len(spec.temperatures) * spec.n  # calls per (variant, input, model)
    per_model, notes = [], []
    for model in spec.models if check_providers else []:
        try:
            endpoints.check(spec.endpoint(model))
            check_shapes_supported(spec, model)
        except SpreadError as e:
            notes.append(f"the run would not start: {e}")
    for model in spec.models:
        endpoint = spec.endpoint(model)
        prompt_tokens = 0
        for sent in rendered.values():
            if local_llm.is_local(endpoint.model) and not local_llm.embedded(endpoint.model).chat_template:
                sent = [{"role": "user", "content": local_llm.frame(sent)}]  # what a base model reads
            prompt_tokens += litellm.token_counter(model=endpoint.model, messages=sent)
        calls = len(rendered) * samples
        prompt_tokens *= samples
        ceiling = None if spec.max_tokens is None else calls * spec.max_tokens
        prompt_cost = endpoint.cost_usd(prompt_tokens, 0)
        answer_cost = None if ceiling is None else endpoint.cost_usd(0, ceiling)
        batch_prompt_cost = endpoint.batch_cost_usd(prompt_tokens, 0)
        batch_answer_cost = None if ceiling is None else endpoint.batch_cost_usd(0, ceiling)
        per_model.append({
            "batch_cost_usd_low": batch_prompt_cost,
            "batch_cost_usd_high": (None if batch_prompt_cost is None or batch_answer_cost is None
                                    else batch_prompt_cost + batch_answer_cost),
            "model": model, "calls": calls, "prompt_tokens": prompt_tokens, "completion_tokens_max": ceiling,
            "cost_usd_low": prompt_cost,
            "cost_usd_high": None if prompt_cost is None or answer_cost is None else prompt_cost + answer_cost,
            "price_known": prompt_cost is not None,
        })
    unknown = [row["model"] for row in per_model if not row["price_known"]]
    if unknown:
        notes.append(f"unknown price for {', '.join(unknown)}: its cost is left out of the range "
                     "(give its endpoint a price on the Models page, or in the settings file)")
    if spec.max_tokens is None:
        notes.append("no max tokens: the completion tokens have no ceiling")
    if spec.inputs and not any("{{" in v.prompt + v.system for v in spec.variants):
        notes.append("the prompt uses no variable: every input gets the same prompt")
    if any(local_llm.is_local(spec.endpoint(m).model) for m in spec.models):
        notes.append("an embedded model's prompt tokens are counted with litellm's default tokenizer, "
                     "not the model's own: expect a small difference")
    known = [row for row in per_model if row["price_known"]]
    return {
        "calls": spec.planned(), "variants": len(spec.all_variants()), "inputs": len(spec.all_inputs()),
        "models": len(spec.models), "temperatures": len(spec.temperatures), "n": spec.n,
        "prompt_tokens": sum(row["prompt_tokens"] for row in per_model),
        "completion_tokens_max": None if spec.max_tokens is None else sum(r["completion_tokens_max"] for r in per_model),
        "cost_usd_low": sum(row["cost_usd_low"] for row in known) if known else None,
        "cost_usd_high": (sum(row["cost_usd_high"] for row in known)
                          if known and all(r["cost_usd_high"] is not None for r in known) else None),
        "cost_complete": not unknown,
        "per_model": per_model, "notes": notes,
        **({"until_settled": _settled_range(spec, known)} if spec.until_settled else {}),
        **_batch_price(spec, known),
    }


def _batch_price(spec: RunSpec, priced: list[dict]) -> dict:
    """The same plan at the provider's batch price, beside the live one, where every model
    has a batch API (core/models/batch.py; the discount is the provider's documented one)."""
    from core.models import batch

    if not priced or not all(batch.supports(spec.call_for(m)) for m in spec.models):
        return {}
    low = sum(row["batch_cost_usd_low"] for row in priced)
    high = (sum(row["batch_cost_usd_high"] for row in priced)
            if all(row["batch_cost_usd_high"] is not None for row in priced) else None)
    return {"batch": {"cost_usd_low": low, "cost_usd_high": high, "note": batch.DISCOUNT_NOTE}}


def _settled_range(spec: RunSpec, priced: list[dict]) -> dict:
    """Sampled until settled (core/run/settle.py): calls and cost between every cell settling
    at its fewest samples and none settling before N."""
    from core.run import settle

    found = settle.expected_range(spec)
    share = found["samples_per_cell_fewest"] / spec.n
    found["cost_usd_low_fewest"] = sum(row["cost_usd_low"] for row in priced) * share if priced else None
    return found


def cost_text(guess: dict) -> str:
    """The estimate's cost range as a reader takes it: unknown as soon as one model has no price."""
    unknown = [row["model"] for row in guess["per_model"] if not row["price_known"]]
    low, high = guess["cost_usd_low"], guess["cost_usd_high"]
    priced = "" if low is None else f"{display.money(low)} – {'?' if high is None else display.money(high)}"
    if not unknown:
        return priced
    return f"unknown (no price for {', '.join(unknown)}" + (f"; the priced models {priced})" if priced else ")")


def projection(store: Store, run_id: int) -> dict:
    """Cost so far and projected for the whole run, from the answers received."""
    with store.connection() as db:
        run = runs.get_run(db, run_id)
        seen = list(responses.cost_by_model(db, run_id).values())
    return {"run_id": run_id, "received": run["received"],
            **projection_from(seen, run["planned"], run["spec"]["models"])}


def projection_from(counts: list[dict], planned: int, models_in_run: list[str]) -> dict:
    """The projection from per-model (or per-cell) counts: received, answers, cost_usd,
    unknown_cost. A model with no answer yet, or an answer of unknown price, leaves the
    projection incomplete rather than guessed."""
    per_model: dict[str, dict] = {}
    for row in counts:
        mine = per_model.setdefault(row["model"], {"received": 0, "answers": 0, "cost_usd": 0.0, "unknown_cost": 0})
        for field in mine:
            mine[field] += row.get(field) or 0
    per_model_planned = planned // max(len(models_in_run), 1)
    so_far, projected, complete = 0.0, 0.0, True
    unpriced = sum(row["unknown_cost"] for row in per_model.values())
    for model in models_in_run:
        row = per_model.get(model)
        if not row or not row["answers"] or row["unknown_cost"]:
            complete = False  # nothing seen yet for this model, or a price unknown: no basis for a projection
            so_far += row["cost_usd"] if row else 0.0
            continue
        so_far += row["cost_usd"]
        projected += row["cost_usd"] + row["cost_usd"] / row["answers"] * max(per_model_planned - row["received"], 0)
    return {"planned": planned, "cost_usd_so_far": so_far, "cost_usd_projected": projected, "complete": complete,
            "answers_unpriced": unpriced}
