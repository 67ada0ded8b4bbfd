"""Calibration: what a confidence of 0.8 means for this route, from reviewers' labels.

A point is one question: the confidence Spread gave (the largest meaning's share of the
answers) and whether that meaning's answer was right. "Right" is the reviewers' majority
verdict on it (pass or fail; "unsure" and ties are left out). For a run's inputs with no
label, the run's checks stand in (the representative passed all its checks), and the
report says how many points came from checks; a served route has labels only (its
checks already filtered what it answered, so they cannot also grade it).

From the points:
- a reliability table: per confidence bin, the share of right answers with its 95% Wilson
  interval (a calibrated confidence sits inside it);
- AUROC: how well confidence ranks right answers above wrong ones (0.5: not at all), with
  the Hanley-McNeil 95% interval;
- the threshold for precision P: the lowest confidence t such that, among the points at
  or above t, the 95% Wilson interval of the share right starts at P or above. Answering
  only at confidence ≥ t then gives answers right at least P of the time, as far as these
  labels can show, for questions like the labelled ones, asked with the same k and
  sampling (a served route's confidence is the one it reported, adaptive k included).
  The threshold is chosen by scanning the same labels, so the bound is a little
  optimistic; re-check it on new labels.

`--min-confidence calibrated:P` uses that threshold and refuses to start when no
threshold reaches P: too few labels (all right, n labels reach at most the Wilson lower
bound of n/n: 0.95 needs about 73) or a route that is not that good.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from core.store import Store

from core.store import runs
from core.analyse import stats
from core.config import SpreadError
from core.review import labels as labels_module
from core.store import serving

MIN_POINTS = 10  # below this a report is refused: no interval here would say anything


@dataclass
class Point:
    confidence: float
    right: bool
    source: str  # "labels" or "checks"
    ref: int  # the request or response it stands for


def _verdict(verdicts: list[str]) -> bool | None:
    """The majority of pass/fail verdicts; None for none or a tie."""
    passes, fails = verdicts.count("pass"), verdicts.count("fail")
    return None if passes == fails else passes > fails


def points_for_route(store: Store, route: str) -> list[Point]:
    """Every served request of the route whose majority answer reviewers labelled."""
    with store.connection() as db:
        rows = serving.chosen_verdicts(db, route=route)
    by_request: dict[int, tuple[float, list[str]]] = {}
    for row in rows:
        by_request.setdefault(row["request_id"], (row["confidence"], []))[1].append(row["verdict"])
    points = []
    for request_id, (confidence, verdicts) in by_request.items():
        right = _verdict(verdicts)
        if right is not None:
            points.append(Point(float(confidence), right, "labels", request_id))
    return points


def points_for_run(store: Store, run_id: int, *, method: str | None = None) -> list[Point]:
    """Per input of a run: the largest meaning's share of the input's answers, and whether
    that meaning is right (its members' majority label, else the representative's checks)."""
    from core.analyse import spread
    from core.evaluate import scoring

    with store.connection() as db:
        if runs.get_run(db, run_id) is None:
            raise SpreadError(f"no run with id {run_id}")
    analysis = spread.analyse_run(store, run_id, method=method, with_map=False)
    verdict_of = labels_module.majority(labels_module.labels_for_run(store, run_id))
    checked: dict[int, list] = {}
    for result in scoring.stored_results(store, run_id):
        checked.setdefault(result["response_id"], []).append(result["passed"])
    answers = analysis.answers
    counts = answers.groupby("input").size().to_dict() if len(answers) else {}
    largest: dict[int, object] = {}
    for cluster in analysis.clusters:  # numbered largest first within each input
        largest.setdefault(cluster.input, cluster)
    points = []
    for input_idx, cluster in sorted(largest.items()):
        confidence = cluster.size / counts[input_idx]
        right = _verdict([verdict_of[i] for i in cluster.member_ids if i in verdict_of])
        if right is not None:
            points.append(Point(confidence, right, "labels", cluster.representative_id))
            continue
        results = checked.get(cluster.representative_id)
        if results and None not in results:
            points.append(Point(confidence, all(results), "checks", cluster.representative_id))
    return points


def points_for_golden(store: Store, name: str, *, method: str | None = None) -> list[Point]:
    """The runs made on a golden set's items (spread regress), pooled."""
    with store.connection() as db:
        run_ids = serving.golden_set_runs(db, name)
    if not run_ids:
        raise SpreadError(f"no run was made on golden set {name!r} (spread regress --set {name} makes one)")
    return [point for run_id in run_ids for point in points_for_run(store, run_id, method=method)]


def auroc(points: list[Point]) -> dict:
    """AUROC of confidence for right answers, with the Hanley-McNeil (1982) 95% interval."""
    right = [p.confidence for p in points if p.right]
    wrong = [p.confidence for p in points if not p.right]
    if not right or not wrong:
        return {"auroc": None, "low": None, "high": None,
                "why": "needs both right and wrong answers among the labelled ones"}
    from sklearn.metrics import roc_auc_score

    area = float(roc_auc_score([1] * len(right) + [0] * len(wrong), right + wrong))
    q1, q2 = area / (2 - area), 2 * area ** 2 / (1 + area)
    n1, n0 = len(right), len(wrong)
    se = math.sqrt(max(0.0, (area * (1 - area) + (n1 - 1) * (q1 - area ** 2) + (n0 - 1) * (q2 - area ** 2))
                       / (n1 * n0)))
    return {"auroc": round(area, 4), "low": round(max(0.0, area - 1.96 * se), 4),
            "high": round(min(1.0, area + 1.96 * se), 4), "why": None}


def reliability(points: list[Point], bins: int) -> list[dict]:
    """Equal-width confidence bins, each closed below (the last also holds 1.0)."""
    members: list[list[Point]] = [[] for _ in range(bins)]
    for point in points:
        members[min(int(point.confidence * bins + 1e-9), bins - 1)].append(point)
    table = []
    for n, inside in enumerate(members):
        low, high = n / bins, (n + 1) / bins
        right = sum(p.right for p in inside)
        interval = stats.wilson(right, len(inside)) if inside else (None, None)
        table.append({"bin": f"{low:.2f}–{high:.2f}", "low_edge": round(low, 4), "high_edge": round(high, 4),
                      "n": len(inside), "right": right,
                      "mean_confidence": round(float(np.mean([p.confidence for p in inside])), 4) if inside else None,
                      "accuracy": round(right / len(inside), 4) if inside else None,
                      "accuracy_low": None if interval[0] is None else round(interval[0], 4),
                      "accuracy_high": None if interval[1] is None else round(interval[1], 4)})
    return table


def threshold_for(points: list[Point], precision: float) -> dict:
    """The lowest confidence whose answers at or above it are right ≥ `precision` of the time by
    the lower end of a 95% Wilson interval; with each candidate's figures."""
    total = len(points)
    best = None
    for t in sorted({p.confidence for p in points}):
        kept = [p for p in points if p.confidence >= t - 1e-12]
        right = sum(p.right for p in kept)
        low, high = stats.wilson(right, len(kept))
        row = {"threshold": round(t, 6), "answered": len(kept), "coverage": round(len(kept) / total, 4),
               "precision": round(right / len(kept), 4), "precision_low": round(low, 4), "precision_high": round(high, 4)}
        if best is None or low > best["precision_low"]:
            best = row
        if low >= precision:
            return {"found": True, **row}
    return {"found": False, "best": best}


def report(points: list[Point], *, precision: float = 0.95, bins: int = 5) -> dict:
    if len(points) < MIN_POINTS:
        raise SpreadError(f"{len(points)} labelled answers: calibration needs at least {MIN_POINTS} (label more of "
                          "them on the Review page, or with spread label)")
    right = sum(p.right for p in points)
    low, high = stats.wilson(right, len(points))
    return {
        "points": len(points), "from_labels": sum(p.source == "labels" for p in points),
        "from_checks": sum(p.source == "checks" for p in points),
        "right": right, "accuracy": round(right / len(points), 4), "accuracy_low": round(low, 4),
        "accuracy_high": round(high, 4),
        "reliability": reliability(points, bins), "auroc": auroc(points),
        "precision_target": precision, "threshold": threshold_for(points, precision),
        "meaning": "confidence = the largest meaning's share of the answers; right = the reviewers' majority verdict "
                   "on that meaning's answer (checks where no label, counted in from_checks); intervals are 95% "
                   "Wilson (AUROC: Hanley-McNeil); the threshold is the lowest confidence whose answers' precision "
                   "has its 95% lower bound at the target or above",
    }


def resolve_thresholds(store: Store, routes: dict) -> dict:
    """Routes with `calibrated:P` given the threshold their labels support, or a one-line
    SpreadError saying why it cannot be had."""
    out = {}
    for name, route in routes.items():
        wanted = route.threshold.calibrated
        if wanted is None:
            out[name] = route
            continue
        points = points_for_route(store, name)
        right = sum(p.right for p in points)
        if len(points) < MIN_POINTS:
            raise SpreadError(f"route {name!r}: --min-confidence calibrated:{wanted:g} needs reviewers' labels on "
                              f"its served answers: {len(points)} labelled (at least {MIN_POINTS}, and about "
                              f"{needed(wanted)} all right to show {wanted:g}); label them on the Review page, or give a "
                              "fixed --min-confidence")
        found = threshold_for(points, wanted)
        if not found["found"]:
            best = found["best"]
            raise SpreadError(
                f"route {name!r}: no threshold reaches precision {wanted:g} on {len(points)} labelled answers "
                f"({right} right): the best, at confidence ≥ {best['threshold']:g}, is {best['precision']:g} "
                f"(95% lower bound {best['precision_low']:g}); label more answers or ask for less")
        out[name] = replace(route, threshold=replace(route.threshold, value=found["threshold"]))
    return out


def needed(precision: float) -> int:
    """How many answers, all right, a 95% Wilson lower bound needs to reach `precision`."""
    n = 1
    while stats.wilson(n, n)[0] < precision and n < 100_000:
        n += 1
    return n


def as_text(report_: dict) -> str:
    lines = [f"{report_['points']} labelled answers ({report_['from_labels']} by reviewers' labels, "
             f"{report_['from_checks']} by checks): {report_['right']} right, accuracy {report_['accuracy']:.2f} "
             f"[{report_['accuracy_low']:.2f}, {report_['accuracy_high']:.2f}]", "",
             f"{'confidence':<12} {'n':>5} {'right':>6} {'accuracy':>9}  95% interval"]
    for row in report_["reliability"]:
        if row["n"]:
            lines.append(f"{row['bin']:<12} {row['n']:>5} {row['right']:>6} {row['accuracy']:>9.2f}  "
                         f"[{row['accuracy_low']:.2f}, {row['accuracy_high']:.2f}]")
        else:
            lines.append(f"{row['bin']:<12} {0:>5} {'':>6} {'':>9}  (no answers)")
    area = report_["auroc"]
    lines.append("")
    lines.append(f"AUROC {area['auroc']:.3f} [{area['low']:.3f}, {area['high']:.3f}]" if area["auroc"] is not None
                 else f"AUROC: cannot tell ({area['why']})")
    found = report_["threshold"]
    target = report_["precision_target"]
    if found["found"]:
        lines.append(f"threshold for precision ≥ {target:g}: {found['threshold']:g} (answers {found['coverage']:.0%}; "
                     f"precision {found['precision']:.3f}, 95% lower bound {found['precision_low']:.3f})")
    else:
        best = found["best"]
        lines.append(f"no threshold reaches precision {target:g}: best at ≥ {best['threshold']:g}, precision "
                     f"{best['precision']:.3f} (95% lower bound {best['precision_low']:.3f})")
    return "\n".join(lines)
