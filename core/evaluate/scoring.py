"""Score a run's answers with its checks, and keep every result with its answer.

A run's checks live in its plan (`spec["checks"]`); what `similar` compares with comes
from the check's value, else from the input: a golden item's reference and accepted
and rejected answers (`golden.*` variables, as `spread regress` writes them), else an
`expected` or `reference` column. Only results not stored yet are computed, so scoring
again after more answers arrived, or with one more check, costs only what is new.
"""

from __future__ import annotations

import asyncio
import json

from core.analyse import embed, meaning
from core.evaluate import checks as checks_module
from core.evaluate import judge, tool_checks
from core.evaluate.checks import Check, Outcome, References
from core.prompts import shapes
from core.store import Store, responses, runs
from core.store import checks as check_rows

TEST_CHECKS, TEST_THRESHOLD = checks_module.TEST_CHECKS, checks_module.TEST_THRESHOLD


def references_of(values: dict[str, str]) -> References:
    """What `similar` compares an answer with when its check names no value."""
    if "golden.accepted" in values:
        accepted = json.loads(values["golden.accepted"] or "[]")
        reference = values.get("golden.reference")
        if reference and reference not in accepted:
            accepted = [reference, *accepted]
        return References(accepted, json.loads(values.get("golden.rejected") or "[]"))
    for name in ("expected", "reference"):
        if values.get(name):
            return References([values[name]])
    return References()


def expected_calls_of(values: dict[str, str]) -> list[dict] | None:
    """The tool calls an input expects: a golden item's (`golden.tool_calls`, as `spread regress`
    writes them), else an `expected_tool_calls` column (golden-set inputs carry one)."""
    source = values.get("golden.tool_calls") or values.get("expected_tool_calls")
    return tool_checks.expected_calls(source, "expected_tool_calls") if source else None


def run_checks(run: dict) -> list[Check]:
    return [checks_module.from_dict(c) for c in run["spec"].get("checks") or []]


def input_checks(values: dict[str, str]) -> list[Check]:
    """An input's own checks: a test's (`test.checks`), a golden item's (`golden.checks`;
    without any, `similar` to its references)."""
    own = [checks_module.from_dict(c) for c in json.loads(values.get(TEST_CHECKS) or "[]")]
    if "golden.checks" not in values:
        return own
    golden_checks = [checks_module.from_dict(c) for c in json.loads(values["golden.checks"] or "[]")]
    # An item that expects tool calls is checked on its calls (names and arguments).
    return own + (golden_checks or [Check("tool-call-f1" if values.get("golden.tool_calls") else "similar")])


def thresholds(store: Store, run_id: int) -> dict[int, float]:
    """response_id -> the score its answer needs, for the answers of inputs that set one (a test threshold)."""
    with store.connection() as db:
        needed = {i["input"]: float(i["vars"][TEST_THRESHOLD]) for i in runs.run_inputs(db, run_id)
                  if i["vars"].get(TEST_THRESHOLD) not in (None, "")}
        if not needed:
            return {}
        return {r["id"]: needed[r["input"]] for r in responses.of_run(db, run_id) if r["input"] in needed}


def verdicts(store: Store, run_id: int, results: list[dict], check_keys: list[str] | None = None):
    """response_id -> passed (promptfoo's rule: weighted checks, a test's threshold), see rates.answer_verdicts."""
    from core.evaluate import rates

    return rates.answer_verdicts(results, check_keys, thresholds(store, run_id))


def attach(store: Store, run_id: int, new: list[Check]) -> list[Check]:
    """Add checks to a run's plan (after validating them against its inputs); returns them all."""
    with store.connection() as db:
        run = runs.get_run(db, run_id)
        if run is None:
            from core.config import SpreadError

            raise SpreadError(f"no run with id {run_id}")
        values = [i["vars"] for i in runs.run_inputs(db, run_id)]
        combined = checks_module.validate(run_checks(run) + list(new), values)
        spec = dict(run["spec"], checks=[c.as_dict() for c in combined])
        runs.set_spec(db, run_id, spec)
    return combined


async def score_run(store: Store, run_id: int, *, checks: list[Check] | None = None, method: str | None = None,
                    threshold: float | None = None, judge_api_base: str | None = None) -> list[dict]:
    """Every check result of a run's good answers (computing and storing the missing ones)."""
    with store.connection() as db:
        run = runs.get_run(db, run_id)
        answers = [r for r in responses.of_run(db, run_id) if r["error_type"] is None]
        prompts = runs.rendered_prompts(db, run_id)
        values = {i["input"]: i["vars"] for i in runs.run_inputs(db, run_id)}
        variants = {v["variant"]: v for v in runs.run_variants(db, run_id)}
    checks = run_checks(run) if checks is None else checks
    per_input = {i: checks + input_checks(v) for i, v in values.items()}
    if not any(per_input.values()) or not answers:
        return stored_results(store, run_id)
    done = {(r["response_id"], r["check_key"]) for r in stored_results(store, run_id)}
    todo = [(answer, check) for answer in answers for check in per_input.get(answer["input"], checks)
            if (answer["id"], check.key()) not in done]
    contexts = {}
    for (_, input_idx), (system, prompt) in prompts.items():
        contexts[input_idx] = contexts.get(input_idx, "") + f"\n{system}\n{prompt}"
    method = method or embed.default_method()
    extract = run["spec"].get("extract") or "whole"
    equivalence = checks_module.Equivalence(method, threshold or meaning.DEFAULT_THRESHOLD,
                                            lambda texts, m: embed.cached(store, texts, m))
    limit = asyncio.Semaphore(8)
    outcomes: list[tuple[int, Check, Outcome]] = []
    judged = []
    for answer, check in todo:
        input_values = values.get(answer["input"], {})
        text = answer["text"] or ""
        variant = variants.get(answer["variant"], {})
        if without_a_model(check, variant):  # tool calls, JSON fields, the run's schema, text rules
            outcome = await asyncio.to_thread(
                outcome_of, check, answer, input_values, variant,
                lambda part, reference, answer=answer, input_values=input_values: checks_module.similar(
                    Check("similar", reference), part, input_values, References(),
                    contexts.get(answer["input"], ""), equivalence))
            outcomes.append((answer["id"], check, outcome))
        elif check.type == "similar" and not check.value and expected_calls_of(input_values):
            # The reference is calls: compared as calls, never as the text they read as.
            outcome = checks_module.similar_calls(shapes.tool_calls_of(answer.get("tool_calls")),
                                                  expected_calls_of(input_values))
            outcomes.append((answer["id"], check, checks_module.weighed(check, outcome)))
        elif check.type in ("similar", "not-similar"):
            # By meaning, the part of the answer the run judges meaning by (its extract mode).
            outcome = await asyncio.to_thread(
                checks_module.similar, check, meaning.extract(text, extract), input_values,
                references_of(input_values), contexts.get(answer["input"], ""), equivalence)
            outcomes.append((answer["id"], check, checks_module.weighed(check, outcome)))
        else:
            question = prompts.get((answer["variant"], answer["input"]), ("", ""))[1]
            judged.append((answer["id"], check, judge.grade(store, check, question, text, api_base=judge_api_base,
                                                            limit=limit)))
    if judged:
        graded = await asyncio.gather(*(coroutine for _, _, coroutine in judged))
        outcomes += [(response_id, check, checks_module.weighed(check, outcome))
                     for (response_id, check, _), outcome in zip(judged, graded)]
    save(store, outcomes)
    return stored_results(store, run_id)


def save(store: Store, outcomes: list[tuple[int, Check, Outcome]]) -> None:
    with store.connection() as db:
        check_rows.save(db, [(response_id, check.key(), check.type, None if o.passed is None else int(o.passed),
                              o.score, o.reason, o.judge_calls, o.judge_cost_usd) for response_id, check, o in outcomes])


def without_a_model(check: Check, variant: dict) -> bool:
    """Whether `outcome_of` decides the check (no embedding, no judge)."""
    check = checks_module.with_run_schema(check, variant.get("response_format"))
    return tool_checks.applies(check) or check.base in checks_module.DETERMINISTIC


def outcome_of(check: Check, answer: dict, values: dict[str, str], variant: dict, similar=None) -> Outcome:
    """The Outcome of a check that needs no model on one stored answer: `is-json` without a
    value on a variant that asked for a JSON Schema is `is-json` given that schema; tool
    calls and JSON fields are tool_checks.py's; the rest checks.py's text rules. `similar`
    is the meaning rule json-field's `similar` uses."""
    scored = checks_module.with_run_schema(check, variant.get("response_format"))
    if tool_checks.applies(scored):
        return checks_module.weighed(check, tool_checks.evaluate(scored, answer, values, variant, similar=similar))
    return checks_module.deterministic(scored, answer.get("text") or "", values, answer)


def stored_results(store: Store, run_id: int) -> list[dict]:
    with store.connection() as db:
        return check_rows.of_run(db, run_id)


async def finish_run(store: Store, run_id: int) -> None:
    """A run's last step, where it executed: embed its answers now, while nobody waits
    (opening the run on the Spread page then finds every embedding cached: 10,000 answers,
    13 s cold, 1 s cached), and score its checks, if any."""
    await asyncio.to_thread(embed.warm_run, store, run_id)
    await score_run(store, run_id)


def score_run_sync(store: Store, run_id: int, **kwargs) -> list[dict]:
    """score_run() from code without an event loop (the CLI)."""
    return asyncio.run(score_run(store, run_id, **kwargs))
