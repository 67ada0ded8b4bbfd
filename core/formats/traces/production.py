"""What production already shows, and real inputs drawn from it.

- `overview()`: volume over time by service and model, cost and latency per call, the
  most frequent prompts.
- `spread_of_inputs()`: for inputs seen more than once, how the answers production gave
  spread. The calls are handed to core.analyse as a run of observed answers (one input per
  distinct conversation, one "sample" per call, the model that answered as the model, the
  requested temperature when the trace says): the same clusters, consistency and views as
  a run, by the same code.
- `sample_inputs()`: N distinct real inputs, at random or diverse (farthest-point over
  their embeddings, near-duplicates dropped), as the inputs of a run: a prompt's template
  variables when the trace recorded them, else the conversation as a `messages` column for
  a `history` turn.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

import numpy as np

from core.analyse import embed, spread
from core.config import SpreadError
from core.store import Store
from core.store import traces as stored
from core.store.traces import CallFilter

STRATEGIES = ("random", "diverse")
# The temperature axis of a call whose trace did not record one (the provider's default was
# used): a value no request can have, never a guess.
UNKNOWN_TEMPERATURE = -1.0
NEAR_DUPLICATE = 0.95  # cosine similarity above which two inputs count as one for a diverse sample


def overview(store: Store, where: CallFilter | None = None, *, bucket: str = "hour") -> dict:
    with store.connection() as db:
        return {
            "calls": stored.count(db, where), "range": stored.time_range(db, where),
            "volume": stored.volume(db, where, bucket=bucket), "measures": stored.measures(db, where),
            "prompts": stored.top_prompts(db, where), "facets": stored.facets(db),
        }


@dataclass
class ProductionSpread:
    analysis: spread.Analysis | None
    inputs: list[dict] = field(default_factory=list)  # {"input", "input_hash", "calls", "messages", "prompt_key"}


def _last_user(messages: list[dict]) -> str:
    users = [m.get("content") or "" for m in messages or [] if m.get("role") == "user"]
    return users[-1] if users else ""


def response_rows(calls: list[dict], index_of: dict[str, int]) -> list[dict]:
    """Stored calls as the response rows core.analyse reads (a run of observed answers)."""
    rows, samples = [], {}
    for call in calls:
        key = index_of[call["input_hash"]]
        model = call["model"] or "unknown"
        temperature = (call.get("parameters") or {}).get("temperature")
        temperature = float(temperature) if isinstance(temperature, (int, float)) else UNKNOWN_TEMPERATURE
        sample = samples[(key, model)] = samples.get((key, model), -1) + 1
        failed = call["status"] == "error"
        rows.append({
            "id": call["id"], "run_id": 0, "variant": 0, "input": key, "model": model, "temperature": temperature,
            "sample_idx": sample, "seed": None, "text": call["output_text"] or "",
            "finish_reason": call["finish_reason"], "prompt_tokens": call["input_tokens"],
            "completion_tokens": call["output_tokens"], "cost_usd": call["cost_usd"],
            "latency_ms": call["latency_ms"], "ttft_ms": call["ttft_ms"], "attempts": 1,
            "error_type": "production error" if failed else None,
            "error_message": call["error_message"] if failed else None, "provider_model": call["model_reported"],
            "created_at": call["started_at"], "deployment": None,
            "tool_calls": None if call["output_calls"] is None else json.dumps(call["output_calls"]),
            "json_value": None if call["output_json"] is None else json.dumps(call["output_json"]),
        })
    return rows


def spread_of_inputs(store: Store, where: CallFilter | None = None, *, top: int = 20, min_calls: int = 2,
                     threshold: float = spread.DEFAULT_THRESHOLD, method: str | None = None,
                     with_map: bool = False) -> ProductionSpread:
    """The meaning spread of production's answers to its `top` most repeated inputs."""
    with store.connection() as db:
        repeated = stored.repeated_inputs(db, where, min_calls=min_calls, limit=top)
        calls = stored.answers_of_inputs(db, [r["input_hash"] for r in repeated], where)
    if not calls:
        return ProductionSpread(None, [])
    index_of = {r["input_hash"]: k for k, r in enumerate(repeated)}
    first = {}
    for call in calls:
        first.setdefault(call["input_hash"], call)
    inputs = [{"input": index_of[h], "input_hash": h, "calls": r["calls"], "prompt_key": r["prompt_key"],
               "messages": first[h]["messages"], "system": first[h]["system"], "tools": first[h]["tools"],
               "question": _last_user(first[h]["messages"])} for h, r in ((r["input_hash"], r) for r in repeated)]
    contexts = {i["input"]: f"{i['system']}\n{i['question']}" for i in inputs}
    method = method or embed.default_method()
    analysis = spread.analyse(response_rows(calls, index_of), method=method, threshold=threshold,
                              contexts=contexts, with_map=with_map,
                              embedder=lambda texts, m: embed.cached(store, texts, m))
    analysis.inputs = [{"input": i["input"], "vars": {"question": i["question"][:200]}} for i in inputs]
    return ProductionSpread(analysis, inputs)


# --- real inputs into runs -----------------------------------------------------------------

def input_text(row: dict) -> str:
    """What an input says, for embedding and showing: its conversation without the system turn."""
    return "\n".join(f"{m.get('role')}: {m.get('content') or ''}" for m in row["messages"] or []
                     if m.get("role") != "system")


def sample_inputs(store: Store, n: int, *, strategy: str = "random", where: CallFilter | None = None,
                  seed: int | None = 0, method: str | None = None) -> list[dict]:
    """N distinct real inputs as run inputs. Each is the trace's template variables when it
    recorded them (plus `trace_call`), else {"messages": <the conversation without its system
    turn and without the answer>, "system": …}, for a `history` turn."""
    if strategy not in STRATEGIES:
        raise SpreadError(f"--strategy {strategy}: expected random or diverse")
    if n < 1:
        raise SpreadError("the sample needs at least 1 input")
    with store.connection() as db:
        pool = stored.distinct_inputs(db, where)
    if not pool:
        raise SpreadError("no stored production call matches (spread import-traces, or spread collect, first)")
    if len(pool) < n:
        raise SpreadError(f"only {len(pool)} distinct production input(s) match, fewer than the {n} asked for")
    if strategy == "random":
        chosen = random.Random(seed).sample(pool, n)
    else:
        chosen = _diverse(pool, n, method or embed.default_method(), store, seed)
    return [as_run_input(row) for row in chosen]


def _diverse(pool: list[dict], n: int, method: str, store: Store, seed: int | None) -> list[dict]:
    """Farthest-point sampling over the inputs' embeddings (a k-centre cover of the space),
    near-duplicates of an input already taken never taken."""
    vectors = embed.cached(store, [input_text(row) for row in pool], method)
    start = random.Random(seed).randrange(len(pool))
    taken = [start]
    closest = vectors @ vectors[start]  # similarity to the nearest input taken so far
    while len(taken) < n:
        candidate = int(np.argmin(closest))
        if closest[candidate] >= NEAR_DUPLICATE:
            break  # everything left is a near-duplicate of something taken
        taken.append(candidate)
        closest = np.maximum(closest, vectors @ vectors[candidate])
    if len(taken) < n:
        raise SpreadError(f"only {len(taken)} production inputs are not near-duplicates of each other, "
                          f"fewer than the {n} asked for")
    return [pool[k] for k in taken]


def as_run_input(row: dict) -> dict:
    variables = row.get("prompt_variables")
    if isinstance(variables, dict) and variables:
        return {**{k: v if isinstance(v, str) else json.dumps(v) for k, v in variables.items()},
                "trace_call": str(row["id"])}
    messages = [m for m in row["messages"] or [] if m.get("role") != "system"]
    return {"messages": json.dumps(messages, ensure_ascii=False), "system": row.get("system") or "",
            "trace_call": str(row["id"])}


FILTER_KEYS = ("since", "until", "service", "model", "prompt")


def parse_filter(expression: str) -> CallFilter:
    """`--trace-filter`: space-separated key=value pairs (since, until: ISO 8601 or 24h/7d;
    service; model; prompt: a prompt's name, name@version or prompt key)."""
    from core.formats.traces import parse_time

    where = CallFilter()
    for part in expression.split():
        key, sep, value = part.partition("=")
        if not sep or key not in FILTER_KEYS or not value:
            raise SpreadError(f"--trace-filter: {part!r}: expected key=value with key one of {', '.join(FILTER_KEYS)}")
        if key in ("since", "until"):
            setattr(where, key, parse_time(value, f"--trace-filter {key}"))
        elif key == "prompt":
            if ":" in value:
                where.prompt_key = value
            else:
                where.prompt_name, _, version = value.partition("@")
                where.prompt_version = version or None
        else:
            setattr(where, key, value)
    return where


def replay(rows: list[dict]) -> list[dict]:
    """The conversation variant that sends each sampled input as production did: its
    system message (a variable: it may differ per input), then its turns (a history turn)."""
    turns = [{"role": "history", "from": "messages"}]
    if any(row.get("system") for row in rows):
        turns.insert(0, {"role": "system", "content": "{{system}}"})
    return turns


def volume_chart(volume: list[dict]):
    """Calls per time bucket, stacked by service · model."""
    import pandas as pd
    import plotly.express as px

    df = pd.DataFrame(volume, columns=["bucket", "service", "model", "calls"])
    df["bucket"] = pd.to_datetime([b + ":00" if len(b) == 13 else b for b in df["bucket"]], utc=True)
    df["series"] = [f"{s or '(no service)'} · {m or '(no model)'}" for s, m in zip(df["service"], df["model"])]
    figure = px.bar(df, x="bucket", y="calls", color="series")
    figure.update_layout(title="Calls over time", xaxis_title="", yaxis_title="calls", height=360,
                         legend_title_text="service · model", margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return figure


def measures_frame(measures: list[dict]):
    """Per-call latency and cost as the frame core.analyse.charts draws distributions from."""
    import pandas as pd

    df = pd.DataFrame(measures, columns=["latency_ms", "ttft_ms", "cost_usd", "input_tokens", "output_tokens",
                                         "model", "service"])
    for column in ("latency_ms", "cost_usd"):
        df[column] = pd.to_numeric(df[column], errors="coerce")
    return df


def prompt_label(row: dict) -> str:
    """A prompt as a list shows it: its name and version, else its system message's start."""
    if row.get("prompt_name"):
        return f"{row['prompt_name']} v{row['prompt_version']}" if row.get("prompt_version") else row["prompt_name"]
    system = " ".join((row.get("system") or "").split())
    return f"system: {system[:80]}…" if len(system) > 80 else (f"system: {system}" if system else "(no system message)")
