"""The regression gate: re-sample a golden set on a candidate, score it, and decide with
statistics whether it got worse.

1. `plan_for()`: every item of the set becomes an input (its prompt as sent — or its
   template at another prompt version — its system message, variables, references and
   checks), sampled K times on the candidate model.
2. The answers are scored with each item's checks (default: `similar` to its reference
   and accepted answers, and not closer to a rejected one).
3. `report()`: per item (shown by its prompt and variables), passes / samples with a
   Wilson interval, all-K-pass, at-least-one, and the number of meaning clusters among
   its samples (how flaky it is). Overall, the mean of the items' pass rates with an
   interval (`gate.pass_rate_interval`), and the cost (unknown when any price is).
4. Against a baseline regress run of the same set: per item, Fisher's exact test
   (one-sided: worse) with Holm's correction over items; overall, the exact stratified
   test of the total passes (`gate.stratified_p_value`).

The verdict (`core/evaluate/gate.py`) is pass, fail or inconclusive; an inconclusive
verdict carries the samples per item that would settle it (`core/evaluate/power.py`).
A change in the model name the provider reports is noted even when every gate holds.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import asdict, dataclass, replace
from xml.etree import ElementTree

from scipy import stats as scipy_stats

from core import display
from core.analyse import stats
from core.config import SpreadError, check_text
from core.evaluate import gate, power, rates, scoring, sequential
from core.evaluate.gate import Gates
from core.prompts import inputs, templates
from core.review import golden, labels
from core.run import plan
from core.store import Store, responses, runs
from core.store import regressions as regression_rows

MAX_ERROR_SHARE = 0.1  # above this share of samples ending in errors, the gate cannot decide
WORST_SAMPLES = 3


@dataclass
class Candidate:
    model: str
    api_base: str | None = None
    prompt_version: int | None = None
    temperature: float = 0.7
    n: int = 5
    seed: int | None = None
    max_tokens: int | None = 256
    concurrency: int = 8
    # Sampled in looks until the gate settles (core/evaluate/sequential.py): n is then the most
    # samples per item (--max-k).
    until_settled: bool = False
    batch: bool = False  # through the provider's batch API (core/run/batched.py): one batch per look


# --- the plan ---------------------------------------------------------------------------

def plan_for(store: Store, set_name: str, candidate: Candidate) -> plan.RunSpec:
    """A run plan that samples every item of the set K times on the candidate."""
    items = golden.items(store, set_name)
    if not items:
        raise SpreadError(f"the golden set {set_name!r} has no items")
    rows = []
    for item in items:
        system, prompt = item["system"] or "", item["prompt"]
        if candidate.prompt_version is not None:
            system, prompt = _at_version(store, item, candidate.prompt_version)
        # An old item that both accepts and rejects a text is gated as its fix would leave it.
        accepted, rejected, reference, _ = golden.resolve(item["accepted"], item["rejected"], item["reference"])
        rows.append({**{k: str(v) for k, v in (item["vars"] or {}).items()},
                     "golden.item_key": item["item_key"], "golden.prompt": prompt, "golden.system": system,
                     "golden.reference": reference or "",
                     "golden.accepted": json.dumps(accepted, ensure_ascii=False),
                     "golden.rejected": json.dumps(rejected, ensure_ascii=False),
                     "golden.checks": json.dumps(item["assertions"] or [], ensure_ascii=False),
                     **_shape_columns(item, system, prompt)})
    return plan.RunSpec(
        variants=[_variant(set_name, items)],
        inputs=rows, models=[candidate.model], temperatures=[candidate.temperature], n=candidate.n,
        api_base=candidate.api_base, seed=candidate.seed, max_tokens=candidate.max_tokens,
        concurrency=candidate.concurrency, name=f"regress {set_name}", max_calls=plan.HARD_MAX_CALLS,
        batch=candidate.batch,
    )


def _shape_columns(item: dict, system: str, prompt: str) -> dict:
    """An item that is a conversation or expects tool calls: the messages to send (its own,
    unless re-rendered at another prompt version) and the calls expected."""
    if not (item.get("messages") or item.get("shape") or item.get("tool_calls")):
        return {}
    messages = item["messages"] if item.get("messages") and item["prompt"] == prompt else plan.messages(system, prompt)
    columns = {"golden.messages": json.dumps(messages, ensure_ascii=False)}
    if item.get("tool_calls"):
        columns["golden.tool_calls"] = json.dumps(item["tool_calls"], ensure_ascii=False)
    return columns


def _variant(set_name: str, items: list[dict]) -> plan.Variant:
    """The one wording a set is re-sampled with: each item's prompt; for a set of
    conversations or tool calls, each item's messages, with the tools and response
    format its items were asked with (a set's items share them: the first one's)."""
    if not any(item.get("messages") or item.get("shape") or item.get("tool_calls") for item in items):
        return plan.Variant("{{golden.prompt}}", "{{golden.system}}", f"golden:{set_name}")
    shape = next((item["shape"] for item in items if item.get("shape")), {})
    return plan.Variant("", "", f"golden:{set_name}", [{"role": "history", "from": "golden.messages"}], **shape)


def _at_version(store: Store, item: dict, version: int) -> tuple[str, str]:
    """The item's input rendered from another version of the prompt it came from."""
    if not item.get("prompt_name") or item.get("template") is None:
        raise SpreadError(f"item {item['item_key'][:8]} has no template to re-render at prompt version {version}: "
                          "it did not come from a templated run")
    with store.connection() as db:
        row = runs.prompt_version(db, item["prompt_name"], version)
    if row is None:
        raise SpreadError(f"no version {version} of the prompt {item['prompt_name']!r} (item {item['item_key'][:8]})")
    system, template = row
    values = {k: str(v) for k, v in (item["vars"] or {}).items()}
    try:
        templates.check_inputs([system or "", template], [values])
    except SpreadError as e:
        raise SpreadError(f"prompt {item['prompt_name']!r} v{version} for item {item['item_key'][:8]}: {e}") from None
    return templates.render(system or "", values), templates.render(template, values)


def check_baseline(store: Store, baseline_id: int | None, set_name: str) -> dict | None:
    if baseline_id is None:
        return None
    found = get(store, baseline_id)
    if found is None:
        raise SpreadError(f"no regress run with id {baseline_id}")
    if found["set_name"] != set_name:
        raise SpreadError(f"regress run {baseline_id} is of the set {found['set_name']!r}, not {set_name!r}")
    return found


# --- running it ---------------------------------------------------------------------------

def prepare(store: Store, set_name: str, candidate: Candidate, gates: Gates, *, baseline_id: int | None = None,
            created_by: str = "") -> int:
    """Check everything and record the run that samples the set, with the request for its
    verdict (regress_requests), in one transaction; returns the run's id. Nothing is
    written when an argument is wrong. Whoever finishes the run judges it (`judge`)."""
    check_text(set_name or "", "the golden set name")
    gates.check()
    if gates.max_drop is not None and baseline_id is None:
        raise SpreadError("--max-drop needs a baseline (--baseline REGRESS_ID)")
    check_baseline(store, baseline_id, set_name)
    if candidate.until_settled:
        if gates.min_pass_rate is None and baseline_id is None:
            raise SpreadError("--until-settled samples until the gate settles: set a gate (--min-pass-rate, "
                              "or --baseline REGRESS_ID)")
        sequential.check(candidate.n)
    spec = plan_for(store, set_name, candidate)
    # The set's version as planned: the verdict is of the items this run samples, whenever it is given.
    settings = json.loads(_settings(candidate, gates)) | {"set_version": golden.get_set(store, set_name)["version"]}
    request = {"set_name": set_name, "settings": json.dumps(settings), "baseline_id": baseline_id,
               "created_by": created_by}
    return plan.create(store, spec, created_by=created_by,
                       along=lambda db, run_id: regression_rows.add_request(db, run_id, request))


def _settings(candidate: Candidate, gates: Gates) -> str:
    return json.dumps({"candidate": asdict(candidate), "gates": asdict(gates)})


async def complete(store: Store, run_id: int, set_name: str, candidate: Candidate, gates: Gates, *,
                   baseline_id: int | None = None, created_by: str = "", on_answer=None, cancel=None) -> dict:
    """Sample the prepared run, score it, compare it, and record the verdict."""
    from core.run import runner

    baseline = check_baseline(store, baseline_id, set_name)
    set_version = golden.get_set(store, set_name)["version"]
    looks = (sequential.Looks(store, run_id, gates, baseline, candidate.n,
                              report_at=lambda alpha: report(store, run_id, replace(gates, alpha=alpha),
                                                             baseline=baseline))
             if candidate.until_settled else None)
    await runner.execute(store, run_id, on_answer=on_answer, cancel=cancel, rounds=looks)
    await scoring.score_run(store, run_id)
    if looks is not None and looks.report is not None:  # the verdict of the look it stopped at
        result = looks.report
    else:
        result = report(store, run_id, gates, baseline=baseline)
    if looks is not None:
        result["sequential"] = looks.summary()
    return _record(store, result, set_name, set_version, candidate, gates, run_id, baseline_id, created_by)


async def regress(store: Store, set_name: str, candidate: Candidate, gates: Gates, *,
                  baseline_id: int | None = None, created_by: str = "", on_answer=None, cancel=None) -> dict:
    """Sample, score, compare and record one regress run; returns its report."""
    run_id = prepare(store, set_name, candidate, gates, baseline_id=baseline_id, created_by=created_by)
    return await complete(store, run_id, set_name, candidate, gates, baseline_id=baseline_id,
                          created_by=created_by, on_answer=on_answer, cancel=cancel)


async def judge(store: Store, run_id: int) -> dict | None:
    """A run's last step when it is a regression (its request in regress_requests): score it,
    compare it and record the verdict, wherever the run was finished: the server that
    started it, or the worker that took it over when that one died. None when the run is
    no regression, is not complete, or was judged already. A run sampled until settled is
    judged only by the process that sampled it: its verdict is that of the look it stopped
    at, which this process does not have. A run that cannot be judged (e.g. no answer could
    be scored) keeps the reason with its request (`pending`) and returns None."""
    with store.connection() as db:
        asked = regression_rows.request(db, run_id)
        judged = regression_rows.id_for_run(db, run_id) is not None
        run = runs.get_run(db, run_id)
    if asked is None or judged or run is None or run["status"] != "done":
        return None
    settings = json.loads(asked["settings"])
    candidate, gates = Candidate(**settings["candidate"]), Gates(**settings["gates"])
    if candidate.until_settled:
        return None
    try:
        baseline = check_baseline(store, asked["baseline_id"], asked["set_name"])
        await scoring.score_run(store, run_id)
        result = await asyncio.to_thread(report, store, run_id, gates, baseline=baseline)
    except SpreadError as error:  # e.g. no answer could be scored: kept with the request, shown on the page
        with store.connection() as db:
            regression_rows.set_request_error(db, run_id, str(error))
        return None
    return _record(store, result, asked["set_name"], settings["set_version"], candidate, gates, run_id,
                   asked["baseline_id"], asked["created_by"])


def _record(store: Store, result: dict, set_name: str, set_version: int, candidate: Candidate, gates: Gates,
            run_id: int, baseline_id: int | None, created_by: str) -> dict:
    """Record the verdict once: of two processes that finish one run, the second finds the
    first's row and returns its report."""
    result.update(set=set_name, set_version=set_version, model=candidate.model,
                  prompt_version=candidate.prompt_version, temperature=candidate.temperature, n=candidate.n)
    with store.transaction(lock=f"regress of run {run_id}") as db:
        earlier = regression_rows.id_for_run(db, run_id)
        if earlier is None:
            result["regress_id"] = regression_rows.insert_in_transaction(db, {
                **_columns(result, candidate, gates, run_id, baseline_id), "created_by": created_by})
            return result
    recorded = get(store, earlier)
    return {**recorded["result"], "regress_id": earlier}


def pending(store: Store, set_name: str) -> list[dict]:
    """A set's regressions asked for and not judged yet, oldest first, each with its run's
    progress (status, received of planned) and the error that stopped its verdict, if any."""
    with store.connection() as db:
        asked = regression_rows.unjudged(db, set_name)
        found = []
        for row in asked:
            run = runs.get_run(db, row["run_id"])
            settings = json.loads(row["settings"])
            found.append({"run_id": row["run_id"], "model": settings["candidate"]["model"],
                          "created_at": row["created_at"], "created_by": row["created_by"], "error": row["error"],
                          "status": run["status"], "received": run["received"], "planned": run["planned"],
                          "errors": run["errors"]})
    return found


def for_run(store: Store, run_id: int) -> dict | None:
    """The regress run recorded for a sampled run, once it is complete."""
    with store.connection() as db:
        regress_id = regression_rows.id_for_run(db, run_id)
    return get(store, regress_id) if regress_id is not None else None


def _columns(result: dict, candidate: Candidate, gates: Gates, run_id: int, baseline_id: int | None) -> dict:
    return {
        "set_name": result["set"], "set_version": result["set_version"], "run_id": run_id,
        "model": candidate.model, "prompt_version": candidate.prompt_version,
        "temperature": candidate.temperature, "n": candidate.n, "baseline_id": baseline_id,
        "settings": _settings(candidate, gates),
        "result": json.dumps(result, default=str), "gate": result["gate"], "pass_rate": result["pass_rate"],
        "pass_rate_low": result["pass_rate_low"], "pass_rate_high": result["pass_rate_high"],
    }


def get(store: Store, regress_id: int) -> dict | None:
    with store.connection() as db:
        row = regression_rows.row(db, regress_id)
    if row is None:
        return None
    row["result"], row["settings"] = json.loads(row["result"]), json.loads(row["settings"])
    _upgrade(row["result"])
    if any("label" not in item for item in row["result"]["items"]):  # recorded before items had names
        with store.connection() as db:
            names = {i["vars"].get("golden.item_key"): item_names(i["input"], i["vars"])
                     for i in runs.run_inputs(db, row["run_id"])}
        for item in row["result"]["items"]:
            item.update(names.get(item["key"]) or {"prompt": "", "vars": {}, "label": item["key"]})
    return row


def _upgrade(result: dict) -> None:
    """Reports recorded before verdicts could be inconclusive and changes were signed."""
    if result.get("drop") is not None and "change" not in result:
        result.update(change=-result["drop"], change_low=_negated(result.get("drop_high")),
                      change_high=_negated(result.get("drop_low")))
    result.setdefault("samples_to_settle", None)
    if not result["gates"]:  # recorded as "pass" before an ungated run had no verdict
        result["gate"] = None
    for g in result["gates"]:
        g.setdefault("verdict", "pass" if g["passed"] else "fail")
        g.setdefault("samples_to_settle", None)
        if g["gate"] == "max-drop":
            g.setdefault("change", -g["value"])
        else:
            g.setdefault("low", result["pass_rate_low"])
            g.setdefault("high", result["pass_rate_high"])


def _negated(value):
    return None if value is None else -value


def history(store: Store, set_name: str) -> list[dict]:
    """Every regress run of a set, oldest first (for drift over weeks); `gate` is None for a
    run made without a gate (rows recorded before said "pass")."""
    with store.connection() as db:
        rows = regression_rows.of_set(db, set_name)
    for row in rows:
        gates = json.loads(row.pop("settings") or "{}").get("gates") or {}
        if row["baseline_id"] is None and gates.get("min_pass_rate") is None:
            row["gate"] = None
    return rows


# --- the statistics -------------------------------------------------------------------------

def item_table(store: Store, run_id: int) -> dict[str, dict]:
    """Per item key: its prompt and variables, passes, samples, errors, meaning clusters,
    worst samples, provider models."""
    from core.analyse import spread

    with store.connection() as db:
        rows = responses.of_run(db, run_id)
        inputs = {i["input"]: i["vars"] for i in runs.run_inputs(db, run_id)}
    results = scoring.stored_results(store, run_id)
    verdicts = rates.answer_verdicts(results)
    reasons: dict[int, list[str]] = {}
    for row in results:
        if row["passed"] == 0 and row["reason"]:
            reasons.setdefault(row["response_id"], []).append(f"{row['type']}: {row['reason']}")
    analysis = spread.analyse_run(store, run_id, with_map=False)
    meanings = analysis.answers.groupby("input")["cluster"].nunique().to_dict()
    table: dict[str, dict] = {}
    for row in rows:
        values = inputs.get(row["input"], {})
        item = table.setdefault(values.get("golden.item_key") or str(row["input"]), {
            "input": row["input"], **item_names(row["input"], values), "passes": 0, "samples": 0, "errors": 0,
            "unscored": 0, "answer_ids": [], "worst": [], "provider_models": set()})
        if row["error_type"] is not None:
            item["errors"] += 1
            continue
        item["provider_models"].add(row["provider_model"] or "")
        item["answer_ids"].append(row["id"])
        verdict = verdicts.get(row["id"])
        if verdict is None:
            item["unscored"] += 1
            continue
        item["samples"] += 1
        item["passes"] += int(verdict)
        if not verdict and len(item["worst"]) < WORST_SAMPLES:
            item["worst"].append({"response_id": row["id"], "text": row["text"],
                                  "why": "; ".join(reasons.get(row["id"], []))})
    for item in table.values():
        item["meanings"] = int(meanings.get(item["input"], 0))
    return table


def item_names(index: int, values: dict) -> dict:
    """An item as people know it: its prompt, its own variables, and a label named as every
    input is (`#1 country=France`; its prompt when it has no variables) — never its hash key."""
    own = {k: str(v) for k, v in values.items() if not k.startswith("golden.")}
    prompt = values.get("golden.prompt") or ""
    label = inputs.label(index, own) if own else f"#{index + 1} {display.one_line(prompt, 60)}"
    return {"prompt": prompt, "vars": own, "label": label}


def report(store: Store, run_id: int, gates: Gates, *, baseline: dict | None = None) -> dict:
    """The verdict of a scored regress run, with every number behind it."""
    table = item_table(store, run_id)
    samples = sum(i["samples"] for i in table.values())
    errors = sum(i["errors"] for i in table.values())
    # Answers no check could judge leave the pass rate: counted and said, never silently.
    results = scoring.stored_results(store, run_id)
    left_out = rates.unchecked([rid for i in table.values() for rid in i["answer_ids"]],
                               rates.answer_verdicts(results), results)
    if samples == 0:
        said = rates.unchecked_text(left_out)
        raise SpreadError(f"the candidate gave no answer that could be scored ({errors} error rows"
                          + (f"; {said}" if said else "") + f"): see `spread show {run_id}`")
    if errors > MAX_ERROR_SHARE * (samples + errors):
        raise SpreadError(f"{errors} of {samples + errors} samples ended in errors, too many to judge: "
                          f"see `spread show {run_id}`, then `spread resume {run_id}`")
    items = []
    for key, item in table.items():
        n, k = item["samples"], item["passes"]
        low, high = stats.wilson(k, n) if n else (math.nan, math.nan)
        items.append({"key": key, "label": item["label"], "prompt": item["prompt"], "vars": item["vars"],
                      "passes": k, "samples": n, "errors": item["errors"],
                      "pass_rate": round(k / n, 4) if n else None, "pass_rate_low": stats.rounded(low),
                      "pass_rate_high": stats.rounded(high), "unchecked": item["unscored"],
                      "all_pass": bool(n and k == n),
                      "any_pass": k > 0, "meanings": item["meanings"], "worst": item["worst"]})
    scored = [i for i in items if i["samples"]]
    pass_rate, low, high = gate.pass_rate_interval([i["passes"] for i in scored], [i["samples"] for i in scored])
    result = {
        "run_id": run_id, "pass_rate": stats.rounded(pass_rate), "pass_rate_low": stats.rounded(low),
        "pass_rate_high": stats.rounded(high), "samples": samples, "passes": sum(i["passes"] for i in items),
        "errors": errors, "unchecked": left_out["answers"], "unchecked_why": left_out["why"],
        "items": items, "alpha": gates.alpha, "notes": [rates.unchecked_text(left_out)] if left_out["answers"] else [],
        "provider_models": sorted(set().union(*(i["provider_models"] for i in table.values())) - {""}),
        **cost(store, run_id),
    }
    gate_results = []
    if gates.min_pass_rate is not None:
        verdict = gate.min_pass_rate_verdict(result["pass_rate"], result["pass_rate_high"], gates.min_pass_rate)
        gate_results.append({
            "gate": "min-pass-rate", "threshold": gates.min_pass_rate, "value": result["pass_rate"],
            "low": result["pass_rate_low"], "high": result["pass_rate_high"], "verdict": verdict,
            "passed": verdict == "pass", "samples_to_settle": power.samples_for_pass_rate(
                [i["pass_rate"] for i in scored], max(i["samples"] for i in scored), gates.min_pass_rate)
            if verdict == "inconclusive" else None})
    if baseline is not None:
        comparison = compare_with(baseline, items, gates.alpha)
        result.update(comparison)
        gate_results.append(drop_gate(comparison, scored, baseline, gates))
        before, after = set(baseline["result"].get("provider_models") or []), set(result["provider_models"])
        result["model_changed"] = bool(before and after and before != after)
        if result["model_changed"]:
            result["notes"].append(f"the provider reports another model: {', '.join(sorted(before))} before, "
                                   f"{', '.join(sorted(after))} now")
    elif gates.max_drop is not None:
        raise SpreadError("--max-drop needs a baseline (--baseline REGRESS_ID)")
    result["gates"] = gate_results
    # No gate set: nothing was judged, so there is no verdict (null), never a "pass".
    result["gate"] = gate.overall([g["verdict"] for g in gate_results]) if gate_results else None
    unsettled = [g["samples_to_settle"] for g in gate_results if g["verdict"] == "inconclusive"]
    result["samples_to_settle"] = None if not unsettled or None in unsettled else max(unsettled)
    for item in items:
        item["failed"] = bool(item.get("regressed") or (
            item["samples"] and item["pass_rate"] < (gates.min_pass_rate if gates.min_pass_rate is not None
                                                     else (1.0 if baseline is None else 0.0))))
    return result


def drop_gate(comparison: dict, scored: list[dict], baseline: dict, gates: Gates) -> dict:
    """The max-drop gate (default 0 with a baseline) and, when it cannot tell, the samples per
    item that would settle it."""
    max_drop = gates.max_drop if gates.max_drop is not None else 0.0
    before = {i["key"]: i for i in baseline["result"]["items"] if i["samples"]}
    common = [i for i in scored if i["key"] in before]
    drop_low = None
    if max_drop > 0:  # the drop's one-sided lower bound at 1 − alpha
        _, _, change_high = gate.change_interval([(i["passes"], i["samples"]) for i in common],
                                                 [(before[i["key"]]["passes"], before[i["key"]]["samples"])
                                                  for i in common], 1 - 2 * gates.alpha)
        drop_low = -change_high
    verdict = gate.drop_verdict(comparison["drop"], comparison["p_value"], drop_low, max_drop, gates.alpha)
    return {"gate": "max-drop", "threshold": max_drop, "value": comparison["drop"], "change": comparison["change"],
            "p_value": comparison["p_value"], "verdict": verdict, "passed": verdict == "pass",
            "samples_to_settle": power.samples_for_drop(
                [before[i["key"]]["pass_rate"] for i in common], [i["pass_rate"] for i in common],
                max_drop=max_drop, alpha=gates.alpha) if verdict == "inconclusive" else None}


def compare_with(baseline: dict, items: list[dict], alpha: float) -> dict:
    """Per-item Fisher tests (Holm-corrected) and the overall exact stratified test.
    `change` is candidate − baseline (a drop is negative); `drop` is −`change`."""
    before = {i["key"]: i for i in baseline["result"]["items"] if i["samples"]}
    common = [i for i in items if i["samples"] and i["key"] in before]
    if not common:
        raise SpreadError(f"regress run {baseline['id']} shares no scored item with this one")
    worse, better = [], []
    for item in common:
        old = before[item["key"]]
        table = [[item["passes"], item["samples"] - item["passes"]], [old["passes"], old["samples"] - old["passes"]]]
        worse.append(scipy_stats.fisher_exact(table, alternative="less").pvalue)
        better.append(scipy_stats.fisher_exact(table, alternative="greater").pvalue)
    worse_adjusted, better_adjusted = stats.holm(worse), stats.holm(better)
    for item, p, p_adj, p_better in zip(common, worse, worse_adjusted, better_adjusted):
        old = before[item["key"]]
        item.update(baseline_pass_rate=old["pass_rate"], change=round(item["pass_rate"] - old["pass_rate"], 4),
                    p_value=round(float(p), 6), p_adjusted=round(float(p_adj), 6),
                    regressed=bool(p_adj < alpha), improved=bool(p_better < alpha))
    counts = [(i["passes"], i["samples"]) for i in common]
    base_counts = [(before[i["key"]]["passes"], before[i["key"]]["samples"]) for i in common]
    change, low, high = gate.change_interval(counts, base_counts)
    p_value = gate.stratified_p_value([(k, n, bk, bn) for (k, n), (bk, bn) in zip(counts, base_counts)])
    return {
        "baseline_id": baseline["id"],
        "baseline_pass_rate": stats.rounded(sum(bk / bn for bk, bn in base_counts) / len(base_counts)),
        "change": round(change, 4) + 0.0, "change_low": stats.rounded(low), "change_high": stats.rounded(high),
        "drop": round(-change, 4) + 0.0, "drop_low": stats.rounded(-high), "drop_high": stats.rounded(-low),
        "p_value": round(p_value, 6),
        "items_compared": len(common), "items_regressed": sum(i["regressed"] for i in common),
        "items_improved": sum(i["improved"] for i in common),
        "items_new": sum(1 for i in items if i["samples"] and i["key"] not in before),
    }


def item_samples(store: Store, run_id: int) -> dict[str, list[dict]]:
    """Per item key, its samples as text with their verdict and why they failed (for the page)."""
    with store.connection() as db:
        answers = responses.of_run(db, run_id)
        keys = {i["input"]: i["vars"].get("golden.item_key") for i in runs.run_inputs(db, run_id)}
    results: dict[int, list[dict]] = {}
    for row in scoring.stored_results(store, run_id):
        results.setdefault(row["response_id"], []).append(row)
    out: dict[str, list[dict]] = {}
    for a in answers:
        mine = results.get(a["id"], [])
        out.setdefault(keys.get(a["input"]) or str(a["input"]), []).append({
            "answer": a["text"], "passed": all(r["passed"] for r in mine) if a["error_type"] is None else None,
            "why": "; ".join(r["reason"] for r in mine if not r["passed"] and r["reason"]),
            "error": a["error_type"], "provider model": a["provider_model"]})
    return out


def cost(store: Store, run_id: int) -> dict:
    """The run's cost: `cost_usd` is None when any answer has no known price (never a made-up
    0), `cost_usd_known` what the priced answers cost, `answers_with_unknown_cost` how many."""
    with store.connection() as db:
        run = runs.get_run(db, run_id)
    return {"cost_usd": None if run["unknown_cost"] else (run["cost_usd"] or 0.0),
            "cost_usd_known": run["cost_usd"] or 0.0, "answers_with_unknown_cost": run["unknown_cost"]}


# --- JUnit XML ------------------------------------------------------------------------------

def junit(result: dict) -> bytes:
    """One test case per item; a failing item carries its worst samples."""
    suite = ElementTree.Element("testsuite", {
        "name": f"spread regress {result['set']}", "tests": str(len(result["items"])),
        "failures": str(sum(i["failed"] for i in result["items"])), "errors": "0",
    })
    properties = ElementTree.SubElement(suite, "properties")
    for name in ("regress_id", "model", "pass_rate", "pass_rate_low", "pass_rate_high", "gate", "baseline_id",
                 "change", "drop", "p_value", "samples_to_settle", "unchecked"):
        if result.get(name) is not None:
            ElementTree.SubElement(properties, "property", {"name": name, "value": str(result[name])})
    for item in result["items"]:
        case = ElementTree.SubElement(suite, "testcase", {"classname": f"spread.{result['set']}", "name": item["key"]})
        if item["failed"]:
            message = f"pass rate {item['pass_rate']} ({item['passes']}/{item['samples']})"
            if item.get("baseline_pass_rate") is not None:
                message += f", baseline {item['baseline_pass_rate']}, p = {item['p_adjusted']} (Holm)"
            failure = ElementTree.SubElement(case, "failure", {"message": message})
            failure.text = "\n\n".join(f"[{w['why']}]\n{w['text']}" for w in item["worst"]) or message
        ElementTree.SubElement(case, "system-out").text = (
            f"{item['meanings']} meaning(s) among {item['samples']} samples; all pass: {item['all_pass']}; "
            f"at least one: {item['any_pass']}")
    return ElementTree.tostring(suite, encoding="utf-8", xml_declaration=True)


def human_agreement(store: Store, run_id: int) -> list[dict]:
    """How the checks of a run agree with the labels reviewers gave its answers."""
    human = labels.majority(labels.labels_for_run(store, run_id))
    return rates.agreement_with_people(scoring.stored_results(store, run_id), human)
