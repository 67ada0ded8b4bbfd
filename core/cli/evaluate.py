"""Evaluate: `spread checks` (score a run, see pass rates and agreement with people) and
`spread regress` (the regression gate for CI)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import click

from core.cli.common import json_option, pass_store, print_json
from core.config import SpreadError
from core.store import Store, runs

check_option = click.option("--check", "check_texts", multiple=True, metavar="TYPE[:VALUE]",
                            help="a check on every answer, e.g. icontains:{{expected}}, similar:{{expected}}, "
                                 "max-length:200, regex:^[A-Z]; repeatable")
checks_file_option = click.option("--checks-file", metavar="FILE",
                                  help="a YAML list of checks in promptfoo's assert shape (type, value, threshold, "
                                       "weight, metric)")
judge_option = click.option("--judge-model", metavar="ID", help="the litellm model that grades llm-rubric checks")
judge_samples_option = click.option("--judge-samples", type=click.IntRange(1, 10), metavar="K",
                                    help="ask the judge K times per answer (its self-consistency is reported)")


def read_checks(check_texts, checks_file, inputs=None, judge_model=None, judge_samples=None):
    from core.evaluate import checks

    found = [checks.parse(text) for text in check_texts]
    if checks_file:
        found += checks.read_file(checks_file)
    return checks.validate(found, inputs, judge=judge_model, judge_samples=judge_samples)


@click.command("checks")
@click.argument("run_id", type=int)
@check_option
@checks_file_option
@judge_option
@judge_samples_option
@json_option
@pass_store
def checks_command(store: Store, run_id, check_texts, checks_file, judge_model, judge_samples, as_json):
    """Score a run's answers with its checks (adding any given here): pass rates per cell,
    per wording and model across inputs, the reducers, and how each check agrees with reviewers."""
    from core.analyse import spread
    from core.evaluate import rates, regress, scoring
    with store.connection() as db:
        run = runs.get_run(db, run_id)
        if run is None:
            raise SpreadError(f"no run with id {run_id}")
        values = [i["vars"] for i in runs.run_inputs(db, run_id)]
    adaptive = bool(run["spec"].get("until_settled"))  # cells stopped early: anytime-valid intervals
    new = read_checks(check_texts, checks_file, values, judge_model, judge_samples)
    if new:
        scoring.attach(store, run_id, new)
    results = scoring.score_run_sync(store, run_id)
    if not results:
        raise SpreadError(f"run {run_id} has no checks: add some with --check TYPE[:VALUE] or --checks-file")
    analysis = spread.analyse_run(store, run_id, method="exact", with_map=False)
    verdicts = scoring.verdicts(store, run_id, results)
    scored = rates.frame(analysis.answers, verdicts)
    left_out = rates.unchecked([int(rid) for rid in analysis.answers["id"]], verdicts, results)
    cells = rates.reducers(scored)
    out = {
        "run_id": run_id, "checks": sorted({r["check_key"] for r in results}),
        "cells": rates.by_group(scored, spread.AXES, adaptive=adaptive),
        "by_variant_model": rates.by_group(scored, ["variant", "model"], adaptive=adaptive),
        "by_model": rates.by_group(scored, ["model"], adaptive=adaptive),
        "reducers": rates.reducer_rates(cells, ["variant", "model", "temperature"]),
        "per_check": _per_check(results),
        "unchecked": left_out["answers"], "unchecked_why": left_out["why"],
        "metrics": rates.metric_scores(results),
        "agreement_with_people": regress.human_agreement(store, run_id),
        "judge_calls": sum(r["judge_calls"] or 0 for r in results),
        "judge_cost_usd": None if any(r["judge_calls"] and r["judge_cost_usd"] is None for r in results)
        else sum(r["judge_cost_usd"] or 0 for r in results),
    }
    if as_json:
        print_json(out)
        return
    print(f"run {run_id}: {len(out['checks'])} checks over {len(scored)} scored answers")
    if rates.unchecked_text(left_out):
        print(f"  {rates.unchecked_text(left_out)}")
    for row in out["by_variant_model"]:
        interval = (f"({row['interval']})" if row["pass_rate_low"] is None
                    else f"[{row['pass_rate_low']:.0%}–{row['pass_rate_high']:.0%}]")
        print(f"  wording {row['variant']} · {row['model']}: pass rate {row['pass_rate']:.0%} {interval} "
              f"over {row['inputs']} input(s)")
    for row in out["reducers"]:
        print(f"  wording {row['variant']} · {row['model']} @ T={row['temperature']:g}: all pass "
              f"{row['all_pass']:.0%} · at least one {row['any_pass']:.0%} · majority {row['majority_pass']:.0%} "
              f"of {row['inputs']} inputs")
    for row in out["per_check"]:
        print(f"  {row['check']}: {row['passed']}/{row['scored']} pass" + (f", {row['unknown']} unknown" if row["unknown"] else ""))
    for row in out["agreement_with_people"]:
        print(f"  vs reviewers, {row['check']}: {row['agreement']:.0%} agree over {row['answers']} answers, kappa "
              f"{row['kappa']}, {row['false_passes']} false passes, {row['false_fails']} false fails")
    if out["judge_calls"]:
        cost = "unknown" if out["judge_cost_usd"] is None else f"${out['judge_cost_usd']:.6f}"
        print(f"  judge: {out['judge_calls']} calls, cost {cost}")


def _label(check_key: str) -> str:
    import json

    from core.evaluate import checks

    return checks.from_dict(json.loads(check_key)).label()


def _per_check(results: list[dict]) -> list[dict]:
    out: dict[str, dict] = {}
    for row in results:
        entry = out.setdefault(row["check_key"], {"check": _label(row["check_key"]), "type": row["type"],
                                                  "scored": 0, "passed": 0, "unknown": 0})
        if row["passed"] is None:
            entry["unknown"] += 1
        else:
            entry["scored"] += 1
            entry["passed"] += row["passed"]
    return list(out.values())


@click.command("regress")
@click.argument("set_name", metavar="SET")
@click.option("--model", required=True, metavar="ID",
              help="the candidate model (an endpoint's name, else a litellm id)")
@click.option("--api-base", metavar="URL", help="OpenAI-compatible server for the candidate")
@click.option("--prompt-version", type=int, metavar="V",
              help="re-render each item from version V of the prompt it came from (items of templated runs)")
@click.option("--temperature", type=float, default=0.7, show_default=True, metavar="T")
@click.option("--n", "k", type=int, default=5, show_default=True, metavar="K", help="samples per item")
@click.option("--seed", type=int, help="base seed: sample i uses seed+i")
@click.option("--max-tokens", type=int, default=256, show_default=True, metavar="K")
@click.option("--concurrency", type=int, default=8, show_default=True, metavar="C")
@click.option("--baseline", type=int, metavar="REGRESS_ID", help="an earlier regress run of this set to compare with")
@click.option("--min-pass-rate", type=float, metavar="P",
              help="fail when the overall pass rate's interval lies wholly below P; inconclusive when only "
                   "the estimate does")
@click.option("--max-drop", type=float, metavar="D",
              help="with --baseline: fail when the pass rate drops by more than D and the drop is significant "
                   "(default 0: any significant drop); inconclusive when it drops by more but not significantly")
@click.option("--alpha", type=float, default=0.05, show_default=True, metavar="A",
              help="significance level: an unchanged candidate fails at most this often")
@click.option("--allow-inconclusive", is_flag=True,
              help="exit 0, not 3, when the data cannot tell whether a gate is broken")
@click.option("--junit", metavar="FILE", help="write JUnit XML: one test case per item")
@click.option("--until-settled", is_flag=True,
              help="sample the items in looks of 5 and stop at the first look whose verdict is beyond doubt (pass or "
                   "fail, each look at its share of alpha: false alarms stay at alpha); at --max-k the verdict "
                   "stands (docs/cost.md)")
@click.option("--max-k", type=int, metavar="K", help="with --until-settled: the most samples per item (default: --n)")
@click.option("--batch", "use_batch", is_flag=True,
              help="sample through the provider's batch API at its batch price (one batch per look)")
@json_option
@pass_store
def regress_command(store: Store, set_name, model, api_base, prompt_version, temperature, k, seed, max_tokens,
                    concurrency, baseline, min_pass_rate, max_drop, alpha, allow_inconclusive, junit,
                    until_settled, max_k, use_batch, as_json):
    """Re-sample a golden set on a candidate and gate it. Exit 0 when every gate holds (pass),
    1 when the data shows a gate is broken (fail), 2 on usage or runtime errors, 3 when an
    observed figure breaks a gate but sampling noise could explain it (inconclusive; the
    report says roughly how many samples per item would settle it; --allow-inconclusive
    makes it 0)."""
    from tqdm import tqdm

    from core.evaluate import regress

    if max_k is not None and not until_settled:
        raise click.UsageError("--max-k goes with --until-settled")
    candidate = regress.Candidate(model=model, api_base=api_base, prompt_version=prompt_version,
                                  temperature=temperature, n=max_k if max_k is not None else k, seed=seed,
                                  max_tokens=max_tokens, concurrency=concurrency, until_settled=until_settled,
                                  batch=use_batch)
    gates = regress.Gates(min_pass_rate=min_pass_rate, max_drop=max_drop, alpha=alpha)
    if max_drop is not None and baseline is None:
        raise click.UsageError("--max-drop needs --baseline REGRESS_ID")
    if junit and Path(junit).is_dir():
        raise SpreadError(f"{junit} is a folder; give a file name for --junit")
    bar = None

    def on_answer(progress, row):
        nonlocal bar
        if bar is None:
            bar = tqdm(total=progress.planned, initial=progress.received - 1, unit="sample", file=sys.stderr,
                       dynamic_ncols=True, disable=as_json)
        bar.update(1)

    try:
        result = asyncio.run(regress.regress(store, set_name, candidate, gates, baseline_id=baseline, on_answer=on_answer,
                                             created_by=os.environ.get("USER", "")))
    finally:
        if bar is not None:
            bar.close()
    if junit:
        Path(junit).write_bytes(regress.junit(result))
    if as_json:
        print_json(result)
    else:
        _print_regress(result)
    if result["gate"] is None:  # no gate set: nothing judged, nothing failed
        return 0
    return EXIT_CODES["pass" if allow_inconclusive and result["gate"] == "inconclusive" else result["gate"]]


EXIT_CODES = {"pass": 0, "fail": 1, "inconclusive": 3}


def _print_regress(result: dict) -> None:
    from core.evaluate import verdict

    print(f"regress {result['regress_id']}: {result['set']} v{result['set_version']} on {result['model']} "
          f"(T={result['temperature']:g}, K={result['n']})"
          + (f": gate {result['gate'].upper()}" if verdict.heading(result) else ": no gate set"))
    if verdict.summary(result):
        print(verdict.summary(result))
    print(f"pass rate {verdict.pct(result['pass_rate'])} (95% interval "
          f"{verdict.interval(result['pass_rate_low'], result['pass_rate_high'])}) over {len(result['items'])} "
          f"items, {result['samples']} samples; cost {verdict.result_cost(result)}")
    if result.get("baseline_id") is not None:
        print(f"against regress {result['baseline_id']} ({verdict.pct(result['baseline_pass_rate'])}): change "
              f"{verdict.signed_pct(result['change'])} (95% interval "
              f"{verdict.interval(result['change_low'], result['change_high'], signed=True)}), "
              f"p = {result['p_value']:.4g}; {result['items_regressed']} items worse, "
              f"{result['items_improved']} better")
    for gate in result["gates"]:
        print(f"  {gate['gate']} {gate['threshold']}: {verdict.gate_text(gate)} -> {gate['verdict'].upper()}")
    if result.get("sequential"):
        looks = result["sequential"]
        print(f"  until settled: {len(looks['looks'])} of {len(looks['planned_looks'])} looks, {looks['k_used']} of at most "
              f"{looks['max_k']} samples per item" + (" (stopped early)" if looks["stopped_early"] else ""))
    for note in result["notes"]:
        print(f"  note: {note}")
    for row in verdict.item_rows(result)[:10]:
        change = f" ({row['change']} vs baseline)" if row["change"] else ""
        flag = " REGRESSED" if row["regressed"] else ""
        print(f"  {row['item'][:60]}: {row['passes']} pass{change}, {row['meanings']} meaning(s){flag}")


COMMANDS = [checks_command, regress_command]
