"""Pass rates with honest uncertainty, and how far each check agrees with people.

An answer passes when every check passed (a check that could not be made — a judge
that failed to answer — leaves the answer out, never counts it as a pass or a fail);
a check of weight 0 never fails it. Its score is the weighted mean of its checks'
scores, as in promptfoo; where its input sets a threshold (a promptfoo test's), the
answer passes when that score reaches the threshold, whatever single checks say.

- Per cell (variant × input × model × temperature): passes / answers with a Wilson interval.
- Per input, over its N samples, the reducers people ask for: all N pass (pass^N),
  at least one passes (pass@k), a majority passes.
- Per variant, model or temperature across inputs: the mean of the inputs' pass rates,
  with the regression gate's interval (`gate.pass_rate_interval`): the wider of a t
  interval over inputs (samples of one input are not independent, so the inputs, not the
  samples, are the unit: clustered uncertainty) and Wilson's over all the answers pooled
  (the least uncertainty that many samples leave). When inputs agree (every input 9 of
  10) the t interval alone has no width and would read "90% [90%–90%]"; the pooled one
  still says how many samples stand behind the 90%.
- A run sampled until settled stopped each cell when its answers looked settled, so a
  fixed-n interval no longer holds: a cell's pass rate gets the anytime-valid interval
  (Robbins' mixture with a uniform prior, core/run/settle.py), which holds at any
  stopping time; a rate pooling cells that stopped at different times gets none, and
  says so (as the meaning heatmap does, core/analyse/settled.py).
"""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import pandas as pd

from core.analyse import stats
from core.analyse.spread import AXES, axis_value
from core.evaluate import gate
from core.run import settle

ANYTIME = "anytime-valid (Robbins mixture), 95%"
POOLED_ADAPTIVE = "no interval for pooled cells sampled until settled: see each cell's"


def answer_verdicts(results: list[dict], check_keys: list[str] | None = None,
                    thresholds: dict[int, float] | None = None) -> dict[int, bool | None]:
    """response_id -> passed every check (None when a check could not be made and none failed);
    with a threshold for the answer: its weighted score reaches it."""
    verdicts: dict[int, bool | None] = {}
    for row in results:
        if check_keys is not None and row["check_key"] not in check_keys:
            continue
        rid, passed = row["response_id"], row["passed"]
        current = verdicts.get(rid, True)
        if passed == 0 or current is False:
            verdicts[rid] = False
        elif passed is None:
            verdicts[rid] = None
        else:
            verdicts[rid] = current
    scores = answer_scores(results, check_keys) if thresholds else {}
    for rid, threshold in (thresholds or {}).items():
        if rid in verdicts:
            verdicts[rid] = None if scores.get(rid) is None else scores[rid] >= threshold
    return verdicts


NO_CHECK = "no check applies to it"


def unchecked(answer_ids: list[int], verdicts: dict[int, bool | None], results: list[dict]) -> dict:
    """The answers that have no verdict, so no pass rate counts them, and why: {"answers": k,
    "of": n, "why": [{"reason", "answers"}] most frequent first}. The reason is the first
    check that could not be made on the answer ("type: reason"), else that no check applies."""
    first: dict[int, str] = {}
    for row in results:
        if row["passed"] is None and row["response_id"] not in first:
            first[row["response_id"]] = f"{row['type']}: {row['reason'] or 'could not be made'}"
    missing = [rid for rid in answer_ids if verdicts.get(rid) is None]
    counts: dict[str, int] = {}
    for rid in missing:
        reason = first.get(rid, NO_CHECK)
        counts[reason] = counts.get(reason, 0) + 1
    return {"answers": len(missing), "of": len(answer_ids),
            "why": [{"reason": r, "answers": n} for r, n in sorted(counts.items(), key=lambda x: (-x[1], x[0]))]}


def unchecked_text(found: dict) -> str | None:
    """"k of n answers could not be checked: why (m); …", or None when every answer was."""
    if not found["answers"]:
        return None
    why = "; ".join(f"{w['reason']} ({w['answers']})" for w in found["why"])
    return f"{found['answers']} of {found['of']} answers could not be checked, so no pass rate counts them: {why}"


@lru_cache(maxsize=1024)
def _weight(check_key: str) -> float:
    return float(json.loads(check_key).get("weight", 1))


def answer_scores(results: list[dict], check_keys: list[str] | None = None) -> dict[int, float | None]:
    """response_id -> the weighted mean of its checks' scores (promptfoo's test score; 0 when
    every weight is 0); None when a check could not be made."""
    totals: dict[int, list[float] | None] = {}
    for row in results:
        if check_keys is not None and row["check_key"] not in check_keys:
            continue
        rid = row["response_id"]
        score = row["score"] if row["score"] is not None else row["passed"]
        if score is None or (rid in totals and totals[rid] is None):
            totals[rid] = None
            continue
        weight = _weight(row["check_key"])
        total = totals.setdefault(rid, [0.0, 0.0])
        total[0] += float(score) * weight
        total[1] += weight
    return {rid: None if t is None else (t[0] / t[1] if t[1] > 0 else 0.0) for rid, t in totals.items()}


def metric_scores(results: list[dict]) -> dict[str, float]:
    """Each named metric's score (promptfoo's `metric`): the weighted mean of its checks' scores
    per answer, averaged over answers."""
    per_answer: dict[str, dict[int, list[float]]] = {}
    for row in results:
        metric = json.loads(row["check_key"]).get("metric")
        score = row["score"] if row["score"] is not None else row["passed"]
        if not metric or score is None:
            continue
        weight = _weight(row["check_key"])
        total = per_answer.setdefault(metric, {}).setdefault(row["response_id"], [0.0, 0.0])
        total[0] += float(score) * weight
        total[1] += weight
    return {metric: round(float(np.mean([t[0] / t[1] if t[1] else 0.0 for t in answers.values()])), 4)
            for metric, answers in sorted(per_answer.items())}


def frame(answers: pd.DataFrame, verdicts: dict[int, bool | None]) -> pd.DataFrame:
    """The answers that have a verdict, with a 0/1 `passed` column."""
    known = answers[answers["id"].map(lambda rid: verdicts.get(int(rid)) is not None)].copy()
    known["passed"] = known["id"].map(lambda rid: int(bool(verdicts[int(rid)])))
    return known


def by_group(scored: pd.DataFrame, axes: list[str], *, adaptive: bool = False) -> list[dict]:
    """Pass rates per combination of `axes`: Wilson within one input, else a mean over inputs
    with the wider of the t interval over inputs and the pooled Wilson interval. `adaptive`:
    the run was sampled until settled (see the module's docstring); each row then says
    which `interval` it has."""
    keys = [axis for axis in AXES if axis in axes]
    out = []
    if not len(scored):
        return out
    per_input_keys = keys if "input" in keys else keys + ["input"]
    cells = scored.groupby(per_input_keys, sort=True)["passed"].agg(["sum", "count"])
    cells_in = (scored.groupby(AXES).size().reset_index().groupby(keys).size() if keys
                else pd.Series([scored.groupby(AXES).ngroups])) if adaptive else None
    for key, group in (cells.groupby(level=list(range(len(keys))), sort=True) if keys
                       else [((), cells)]):
        key = key if isinstance(key, tuple) else (key,)
        row = {axis: axis_value(axis, value) for axis, value in zip(keys, key)}
        passes, n = int(group["sum"].sum()), int(group["count"].sum())
        row.update({"passes": passes, "answers": n, "inputs": len(group)})
        if len(group) == 1:
            low, high = stats.wilson(passes, n)
            row.update(pass_rate=round(passes / n, 4), pass_rate_low=round(low, 4), pass_rate_high=round(high, 4))
        else:
            mean, low, high = gate.pass_rate_interval(group["sum"].tolist(), group["count"].tolist())
            row.update(pass_rate=stats.rounded(mean), pass_rate_low=stats.rounded(low),
                       pass_rate_high=stats.rounded(high))
        if adaptive:
            one_cell = int(cells_in.loc[key if len(key) > 1 else key[0]] if keys else cells_in.iloc[0]) == 1
            if one_cell:
                (low,), (high,) = settle.intervals(np.array([passes]), np.array([n]), prior_on_one=0.0)
                row.update(pass_rate_low=round(float(low), 4), pass_rate_high=round(float(high), 4), interval=ANYTIME)
            else:
                row.update(pass_rate_low=None, pass_rate_high=None, interval=POOLED_ADAPTIVE)
        out.append(row)
    return out


def reducers(scored: pd.DataFrame) -> list[dict]:
    """Per cell (one input, its N samples): all pass (pass^N), at least one (pass@k), majority."""
    out = []
    for (variant, input_idx, model, temperature), group in scored.groupby(AXES, sort=True):
        passed = group["passed"].to_numpy()
        out.append({"variant": int(variant), "input": int(input_idx), "model": model,
                    "temperature": float(temperature), "samples": len(passed), "passes": int(passed.sum()),
                    "all_pass": bool(passed.all()), "any_pass": bool(passed.any()),
                    "majority_pass": bool(passed.sum() * 2 > len(passed))})
    return out


def reducer_rates(cells: list[dict], axes: list[str]) -> list[dict]:
    """The share of inputs for which all / at least one / most samples pass, per group, with Wilson intervals."""
    df = pd.DataFrame(cells)
    if df.empty:
        return []
    keys = [axis for axis in ("variant", "model", "temperature") if axis in axes]
    out = []
    for key, group in (df.groupby(keys, sort=True) if keys else [((), df)]):
        key = key if isinstance(key, tuple) else (key,)
        row = {axis: axis_value(axis, value) for axis, value in zip(keys, key)} | {"inputs": len(group)}
        for name in ("all_pass", "any_pass", "majority_pass"):
            k = int(group[name].sum())
            low, high = stats.wilson(k, len(group))
            row[name] = round(k / len(group), 4)
            row[f"{name}_ci"] = [round(low, 4), round(high, 4)]
        out.append(row)
    return out


def agreement_with_people(results: list[dict], human: dict[int, str]) -> list[dict]:
    """Per check: how often it agrees with the reviewers' majority verdict (pass / fail;
    unsure left out), Cohen's kappa, and its false passes and false fails."""
    from sklearn.metrics import cohen_kappa_score

    by_check: dict[str, list[tuple[int, int]]] = {}
    for row in results:
        verdict = human.get(row["response_id"])
        if row["passed"] is None or verdict not in ("pass", "fail"):
            continue
        by_check.setdefault(row["check_key"], []).append((int(row["passed"]), int(verdict == "pass")))
    out = []
    for key, pairs in by_check.items():
        check, person = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
        agree = float((check == person).mean())
        kappa = 1.0 if len(set(check) | set(person)) == 1 else float(cohen_kappa_score(person, check))
        out.append({"check": key, "answers": len(pairs), "agreement": round(agree, 4),
                    "kappa": None if np.isnan(kappa) else round(kappa, 4),
                    "false_passes": int(((check == 1) & (person == 0)).sum()),
                    "false_fails": int(((check == 0) & (person == 1)).sum())})
    return out
