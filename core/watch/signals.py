"""A check's drift signals against its monitor's baseline, each with the statistic that
says it moved (core/watch/drift.py), and shown only when the data supports it.

Each signal is a dict: `kind`, `alerting` (whether it puts the monitor in the alerting
state), `summary` (one line for people and Slack), and its figures.

    gate           the gate's verdict (pass / fail / inconclusive); alerting on fail
    model_changed  the model id the provider reports differs from the baseline's; alerting
    fingerprint_changed  the provider's `system_fingerprint` (its backend configuration)
                   is one the baseline never had, under the same model id; shown, not
                   alerting: providers rotate it with deployments, and whether the answers
                   moved is what the gate and the meaning shift test
    meaning_shift  answers that fall in other meaning clusters than the baseline's, per
                   item (permutation chi-square, Holm) and over the set (Fisher's
                   combination); alerting
    errors         error rate up (Fisher, one-sided); alerting
    refusals       refusal rate up (Fisher, one-sided); alerting
    latency        p50 / p95 outside the baseline's interval; shown, not alerting (a
                   slower provider is news, not a change of behaviour)
    cost           mean cost per answer outside the baseline's interval; shown, not alerting
    slow_slide     CUSUM over the checks' pass rates; alerting once past its threshold
    check_failed   the check could not be judged (e.g. most calls failed); alerting
"""

from __future__ import annotations

from core import display
from core.store import responses as response_rows
from core.store import runs as run_rows
from core.analyse import embed, facts, spread
from core.evaluate import regress
from core.store import Store
from core.store import monitors as repo
from core.watch import drift


def failed_check(message: str) -> dict:
    return {"kind": "check_failed", "alerting": True, "error": message,
            "summary": f"the check could not be judged: {display.one_line(message, 160)}"}


def _pct(value) -> str:
    return "?" if value is None else f"{value:.0%}"


def for_check(store: Store, monitor: dict, result: dict) -> list[dict]:
    """Every signal of a finished check (`result`: its regress report) that the data supports."""
    baseline = regress.get(store, monitor["baseline_id"])
    alpha = monitor["alpha"]
    found = [gate_signal(result)]
    if result.get("model_changed"):
        before, after = baseline["result"].get("provider_models") or [], result.get("provider_models") or []
        found.append({"kind": "model_changed", "alerting": True, "before": before, "after": after,
                      "summary": f"the provider reports another model: {', '.join(before)} at baseline, "
                                 f"{', '.join(after)} now"})
    with store.connection() as db:
        before_rows = response_rows.of_run(db, baseline["run_id"])
        after_rows = response_rows.of_run(db, result["run_id"])
    fingerprint = fingerprint_signal(before_rows, after_rows)
    if fingerprint is not None:
        found.append(fingerprint)
    with store.connection() as db:
        history = [row["pass_rate"] for row in repo.finished_pass_rates(db, monitor["id"])
                   if row["regress_id"] != monitor["baseline_id"]]
    shift = meaning_signal(store, baseline["run_id"], result["run_id"], alpha)
    if shift is not None:
        found.append(shift)
    found += [s for s in (rate_signal("errors", before_rows, after_rows, alpha, _is_error),
                          rate_signal("refusals", before_rows, after_rows, alpha, _is_refusal)) if s]
    found += [s for s in (latency_signal(before_rows, after_rows), cost_signal(before_rows, after_rows)) if s]
    slide = drift.slow_slide(baseline["result"]["pass_rate"],
                             [i["pass_rate"] for i in baseline["result"]["items"] if i["samples"]],
                             monitor["n"], history + [result["pass_rate"]])
    if slide is not None:
        found.append({"kind": "slow_slide", "alerting": slide["alarm"], **slide,
                      "summary": f"CUSUM of the pass rate {slide['statistic']:.1f} "
                                 f"({'past' if slide['alarm'] else 'under'} its threshold {slide['threshold']:g}) "
                                 f"over {slide['checks']} checks against {_pct(slide['reference'])}"})
    return found


def gate_signal(result: dict) -> dict:
    verdict = result["gate"]
    summary = (f"gate {verdict}: pass rate {_pct(result['pass_rate'])} [{_pct(result['pass_rate_low'])}–"
               f"{_pct(result['pass_rate_high'])}] against {_pct(result.get('baseline_pass_rate'))} at baseline")
    if result.get("p_value") is not None:
        summary += f", p = {result['p_value']:.3g}; {result.get('items_regressed', 0)} item(s) worse"
    return {"kind": "gate", "alerting": verdict == "fail", "verdict": verdict,
            "pass_rate": result["pass_rate"], "pass_rate_low": result["pass_rate_low"],
            "pass_rate_high": result["pass_rate_high"], "baseline_pass_rate": result.get("baseline_pass_rate"),
            "change": result.get("change"), "change_low": result.get("change_low"),
            "change_high": result.get("change_high"), "p_value": result.get("p_value"),
            "items_regressed": result.get("items_regressed"), "summary": summary}


def meaning_signal(store: Store, baseline_run: int, check_run: int, alpha: float) -> dict | None:
    """Cluster the baseline's and the check's answers together, per item, and test whether
    each item's shares moved."""
    tables = meaning_tables(store, baseline_run, check_run)
    rows = drift.meaning_shift(tables, alpha)
    if not rows:
        return None
    moved = [r for r in rows if r["shifted"]]
    overall = drift.combined_p(rows)
    summary = (f"answers moved to other meanings than at baseline: over the {len(rows)} items p = {overall:.3g} "
               f"(permutation chi-square per item, Fisher's combination); {len(moved)} item(s) on their own "
               f"(Holm)")
    return {"kind": "meaning_shift", "alerting": bool(moved) or overall < alpha, "p_value": round(overall, 8),
            "items_shifted": len(moved), "items": rows, "alpha": alpha, "shares": bands(rows), "summary": summary}


def bands(rows: list[dict]) -> dict[str, float]:
    """Where the check's answers went, averaged over items: the meaning each item gave most
    at baseline, its other baseline meanings, and meanings new since (comparable across
    checks, where cluster ids are not)."""
    totals = {"baseline_top": 0.0, "other_baseline": 0.0, "new": 0.0}
    for row in rows:
        top = max(row["before"], key=row["before"].get)
        for cluster, share in row["after"].items():
            band = "baseline_top" if cluster == top else "other_baseline" if cluster in row["before"] else "new"
            totals[band] += share / len(rows)
    return {band: round(share, 4) for band, share in totals.items()}


def meaning_tables(store: Store, baseline_run: int, check_run: int) -> dict[str, tuple[list, list]]:
    """Per item key: the meaning cluster of each answer at baseline and in the check, from
    one clustering of both runs' answers to that item."""
    rows, contexts, keys = [], {}, {}
    with store.connection() as db:
        for run_id in (baseline_run, check_run):
            key_of = {i["input"]: i["vars"].get("golden.item_key") or str(i["input"])
                      for i in run_rows.run_inputs(db, run_id)}
            for row in response_rows.of_run(db, run_id):
                key = key_of.get(row["input"], str(row["input"]))
                joint = keys.setdefault(key, len(keys))
                rows.append(dict(row, input=joint))
            for (_, input_idx), (system, prompt) in run_rows.rendered_prompts(db, run_id).items():
                contexts.setdefault(keys.get(key_of.get(input_idx), -1), f"{system}\n{prompt}")
    good = [r for r in rows if r["error_type"] is None]
    if not good:
        return {}
    analysis = spread.analyse(rows, with_map=False, contexts=contexts,
                              embedder=lambda texts, method: embed.cached(store, texts, method))
    answers = analysis.answers
    names = {index: key for key, index in keys.items()}
    tables: dict[str, tuple[list, list]] = {}
    for (joint, run_id), group in answers.groupby(["input", "run_id"]):
        before, after = tables.setdefault(names[int(joint)], ([], []))
        (before if int(run_id) == baseline_run else after).extend(int(c) for c in group["cluster"])
    return tables


def _is_error(row: dict) -> bool:
    return row["error_type"] is not None


def _is_refusal(row: dict) -> bool:
    return row["error_type"] is None and (row["finish_reason"] == "content_filter"
                                          or facts.answer_kind(row["text"] or "") == "refusal")


def rate_signal(kind: str, before_rows: list[dict], after_rows: list[dict], alpha: float, counts) -> dict | None:
    """An error or refusal rate against the baseline's; shown when either side has any."""
    if kind == "refusals":  # a refusal is counted among the answers, errors among all calls
        before_rows = [r for r in before_rows if r["error_type"] is None]
        after_rows = [r for r in after_rows if r["error_type"] is None]
    k_before, k_after = sum(map(counts, before_rows)), sum(map(counts, after_rows))
    if not (k_before or k_after):
        return None
    figures = drift.rate_shift(k_after, len(after_rows), k_before, len(before_rows), alpha)
    if figures is None:
        return None
    return {"kind": kind, "alerting": figures["rose"], **figures,
            "summary": f"{kind} {_pct(figures['rate'])} [{_pct(figures['low'])}–{_pct(figures['high'])}] against "
                       f"{_pct(figures['baseline_rate'])} at baseline (Fisher p = {figures['p_value']:.3g})"}


def fingerprint_signal(before_rows: list[dict], after_rows: list[dict]) -> dict | None:
    """Fingerprints among the check's answers that no baseline answer had; None when either
    side reported none (a provider that sends no fingerprint, or a baseline stored before
    they were kept)."""
    before = {row.get("system_fingerprint") for row in before_rows} - {None, ""}
    after = {row.get("system_fingerprint") for row in after_rows} - {None, ""}
    new = after - before
    if not before or not after or not new:
        return None
    return {"kind": "fingerprint_changed", "alerting": False, "before": sorted(before), "after": sorted(after),
            "new": sorted(new), "summary": display.one_line(
                f"the provider's system fingerprint changed: {', '.join(sorted(before))} at baseline, "
                f"{', '.join(sorted(after))} now", 200)}


def latency_signal(before_rows: list[dict], after_rows: list[dict]) -> dict | None:
    def values(rows):
        return [r["latency_ms"] for r in rows if r["error_type"] is None and r["latency_ms"] is not None]

    out = {"kind": "latency", "alerting": False}
    for name, q in (("p50", 0.5), ("p95", 0.95)):
        before, after = drift.quantile_interval(values(before_rows), q), drift.quantile_interval(values(after_rows), q)
        if before is None or after is None:
            continue
        out[name] = {"ms": round(after[0], 1), "low": round(after[1], 1), "high": round(after[2], 1),
                     "baseline_ms": round(before[0], 1), "baseline_low": round(before[1], 1),
                     "baseline_high": round(before[2], 1), "shift": drift.shifted(before, after)}
    if len(out) == 2:
        return None
    shifted = [f"{name} {out[name]['shift']} ({out[name]['baseline_ms']:.0f} → {out[name]['ms']:.0f} ms)"
               for name in ("p50", "p95") if name in out and out[name]["shift"]]
    out["shifted"] = bool(shifted)
    out["summary"] = ("latency " + ", ".join(shifted) + " beyond the baseline's interval") if shifted else \
        "latency within the baseline's intervals"
    return out


def cost_signal(before_rows: list[dict], after_rows: list[dict]) -> dict | None:
    """Mean cost per answer; only when every answer on both sides has a known price."""
    def values(rows):
        good = [r for r in rows if r["error_type"] is None]
        return None if any(r["cost_usd"] is None for r in good) else [r["cost_usd"] for r in good]

    before, after = values(before_rows), values(after_rows)
    if not before or not after:
        return None
    b, a = drift.mean_interval(before), drift.mean_interval(after)
    if a is None or b is None:
        return None
    shift = drift.shifted(b, a)
    return {"kind": "cost", "alerting": False, "usd_per_answer": a[0], "low": a[1], "high": a[2],
            "baseline_usd_per_answer": b[0], "baseline_low": b[1], "baseline_high": b[2], "shift": shift,
            "summary": f"cost per answer ${a[0]:.6f} against ${b[0]:.6f} at baseline"
                       + (f" ({shift}, beyond the baseline's interval)" if shift else "")}
