"""How well meaning clusters match hand-labelled meanings (a measurement, not a test).

    .venv/bin/python bench/bench_clusters.py [--methods minilm,tfidf,exact] [--thresholds 0.5,0.55,...]
                                             [--split dev|heldout|both] [--label NAME] [--errors]
                                             [--embeddings NAME] [--limit N]

`--embeddings NAME` measures a team's own embedding model: any endpoint of the catalogue
(SPREAD_DB) whose model_info says `mode: embedding`, called through litellm's embedding API.

Loads the labelled benchmark (tests/data/meanings/, see its README), clusters each
question's answers exactly as `spread.analyse` does (de-duplicate by `embed.normalise`,
most frequent first; embed the distinct texts; `meaning.cluster_vectors(..., texts,
context)` with the run's system prompt and prompt as context), and reports per method
and threshold, separately for dev and heldout:
- ARI: adjusted Rand index against the true meanings, averaged over questions;
- false merges: pairs of answers with different meanings in one cluster (the worst error),
  and how many of them state different numbers or names as the answer ("of facts");
- false splits: pairs of answers with the same meaning in different clusters;
- seconds: embedding + clustering, all questions (the model load is reported apart).
Per category (the 14 kinds of error) at the default threshold, too.

Prints tables and appends JSON lines to bench/results/clusters-<date>[-<label>].jsonl. Tune on
dev only; heldout is there to report honestly.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402

from core.analyse import embed, meaning  # noqa: E402
from core.store import Store  # noqa: E402

DATA = ROOT / "tests" / "data" / "meanings"
SPLITS = ("dev", "heldout")
# Categories whose meanings are all numbers, dates, names or lists of them: a false merge
# there puts answers that state different facts in one cluster (the worst error).
FACT_CATEGORIES = {"numbers-words", "units", "dates", "lists-order", "extra-detail", "short-vs-sentence",
                   "wrong-entity", "base-model-style"}


def fact_pair(category: str, meaning_a: str, meaning_b: str) -> bool:
    """Do two different meanings state different numbers or named entities as the answer?"""
    return category in FACT_CATEGORIES or (any(c.isdigit() for c in meaning_a) and any(c.isdigit() for c in meaning_b))


def load(split: str) -> list[dict]:
    with (DATA / f"{split}.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def context_of(question: dict) -> str:
    """The clustering context, built as spread.analyse_run builds it from a run's spec."""
    return f"{question.get('system') or ''}\n{question['question']}"


def distinct_answers(texts: list[str]) -> tuple[list[str], list[str]]:
    """(normalised form of each answer, one original text per distinct form, most frequent first)."""
    norms = [embed.normalise(t) for t in texts]
    counts = Counter(norms)
    first = {}
    for norm, text in zip(norms, texts):
        first.setdefault(norm, text)
    order = sorted(first, key=lambda n: -counts[n])  # stable: ties keep first-seen order
    return norms, [first[n] for n in order]


def cluster_question(question: dict, method: str, threshold: float, vectors: dict,
                     distinct: list[str], norms: list[str]) -> list[int]:
    """One cluster label per answer, as spread.analyse computes it (meaning.cluster on the
    distinct answers), with the embeddings computed once per method."""
    labels, _ = meaning.cluster(distinct, method=method, threshold=threshold, context=context_of(question),
                                embedder=lambda texts, m: np.stack([vectors[t] for t in texts]))
    by_norm = {embed.normalise(t): int(label) for t, label in zip(distinct, labels)}
    return [by_norm[n] for n in norms]


def pair_errors(truth: list[str], predicted: list[int]) -> tuple[int, int, list, list]:
    """(false merges, false splits, the merged pairs, the split pairs) over all answer pairs."""
    merges, splits = [], []
    for i in range(len(truth)):
        for j in range(i + 1, len(truth)):
            same_truth, same_cluster = truth[i] == truth[j], predicted[i] == predicted[j]
            if same_cluster and not same_truth:
                merges.append((i, j))
            elif same_truth and not same_cluster:
                splits.append((i, j))
    return len(merges), len(splits), merges, splits


def embed_all(questions: list[dict], method: str) -> tuple[list, float]:
    """Per question (normalised answers, distinct texts, vectors), and the seconds spent embedding."""
    out, seconds = [], 0.0
    for q in questions:
        norms, distinct = distinct_answers([a["text"] for a in q["answers"]])
        texts = [meaning.comparable(t) for t in distinct]
        start = time.perf_counter()
        vectors = embed.embed(texts, method, Store() if method.startswith(embed.ENDPOINT) else None)
        seconds += time.perf_counter() - start
        out.append((norms, distinct, dict(zip(texts, vectors))))
    return out, seconds


def evaluate(questions: list[dict], method: str, threshold: float, embedded: list) -> tuple[dict, list]:
    """Figures overall and per category, and per-question details (for --errors)."""
    per_category = defaultdict(lambda: {"ari": [], "false_merges": 0, "fact_merges": 0, "false_splits": 0})
    details, seconds = [], 0.0
    for q, (norms, distinct, vectors) in zip(questions, embedded):
        start = time.perf_counter()
        predicted = cluster_question(q, method, threshold, vectors, distinct, norms)
        seconds += time.perf_counter() - start
        truth = [a["meaning"] for a in q["answers"]]
        merges, splits, merged, split = pair_errors(truth, predicted)
        facts = sum(fact_pair(q["category"], truth[i], truth[j]) for i, j in merged)
        ari = adjusted_rand_score(truth, predicted)
        for key in ("all", q["category"]):
            per_category[key]["ari"].append(ari)
            per_category[key]["false_merges"] += merges
            per_category[key]["fact_merges"] += facts
            per_category[key]["false_splits"] += splits
        details.append({"id": q["id"], "category": q["category"], "ari": ari, "predicted": predicted,
                        "merged": merged, "split": split})
    figures = {key: {"ari": round(float(np.mean(v["ari"])), 4), "false_merges": v["false_merges"],
                     "fact_merges": v["fact_merges"], "false_splits": v["false_splits"], "questions": len(v["ari"])}
               for key, v in per_category.items()}
    figures["all"]["cluster_seconds"] = round(seconds, 3)
    return figures, details


def show_errors(questions: list[dict], details: list[dict]) -> None:
    for q, d in zip(questions, details):
        if not d["merged"] and not d["split"]:
            continue
        texts = [a["text"] for a in q["answers"]]
        truth = [a["meaning"] for a in q["answers"]]
        print(f"\n{q['id']} {q['category']} ARI {d['ari']:.2f}: {q['question']}")
        for k in sorted(set(d["predicted"])):
            members = [i for i, p in enumerate(d["predicted"]) if p == k]
            print(f"  cluster {k}: " + " | ".join(f"{texts[i].strip()[:60]!r}<{truth[i]}>" for i in members))


def git_commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default="minilm,tfidf,exact")
    parser.add_argument("--embeddings", metavar="NAME", action="append", default=[],
                        help="also measure this catalogue embedding endpoint (the database in SPREAD_DB); repeatable")
    parser.add_argument("--limit", type=int, help="only the first N questions of each split (a quick look)")
    parser.add_argument("--thresholds", default="0.5,0.55,0.6,0.65,0.7,0.75,0.8,0.85,0.9")
    parser.add_argument("--split", choices=[*SPLITS, "both"], default="both")
    parser.add_argument("--label", default="", help="a name for this run in the JSON lines (e.g. before)")
    parser.add_argument("--errors", action="store_true", help="print the clusters of imperfect dev questions "
                        "at the default threshold (never heldout: do not tune on it)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()

    methods = [m for m in args.methods.split(",") if m] + [embed.ENDPOINT + name for name in args.embeddings]
    for method in methods:
        if method.startswith(embed.ENDPOINT):
            embed.embedding_endpoint(Store(), method)  # a clear error before any work
    thresholds = [float(t) for t in args.thresholds.split(",")]
    splits = SPLITS if args.split == "both" else (args.split,)
    stamp = datetime.datetime.now().astimezone()
    common = {"date": stamp.isoformat(timespec="seconds"), "commit": git_commit(), "label": args.label,
              "cores": os.cpu_count(), "default_threshold": meaning.DEFAULT_THRESHOLD}
    rows = []
    if "minilm" in methods:
        start = time.perf_counter()
        embed.MiniLM.get()
        print(f"MiniLM loaded in {time.perf_counter() - start:.2f} s ({os.cpu_count()} cores)")

    for split in splits:
        questions = load(split)[:args.limit]
        n_answers = sum(len(q["answers"]) for q in questions)
        print(f"\n== {split}: {len(questions)} questions, {n_answers} answers "
              f"(default threshold {meaning.DEFAULT_THRESHOLD})")
        print(f"{'method':<8} {'threshold':>9} {'ARI':>6} {'false merges':>13} {'of facts':>9} {'false splits':>13} "
              f"{'seconds':>8}")
        at_default = {}
        for method in methods:
            embedded, embed_seconds = embed_all(questions, method)
            for threshold in sorted(set(thresholds) | {meaning.DEFAULT_THRESHOLD}):
                figures, details = evaluate(questions, method, threshold, embedded)
                total = figures["all"]
                seconds = embed_seconds + total["cluster_seconds"]
                mark = " *" if threshold == meaning.DEFAULT_THRESHOLD else ""
                if threshold in thresholds or mark:
                    print(f"{method:<8} {threshold:>9.2f} {total['ari']:>6.3f} {total['false_merges']:>13} "
                          f"{total['fact_merges']:>9} {total['false_splits']:>13} {seconds:>8.2f}{mark}")
                for category, f in figures.items():
                    rows.append({**common, "split": split, "method": method, "threshold": threshold,
                                 "category": category, "ari": f["ari"], "false_merges": f["false_merges"],
                                 "fact_merges": f["fact_merges"], "false_splits": f["false_splits"],
                                 "questions": f["questions"],
                                 **({"seconds": round(seconds, 3), "embed_seconds": round(embed_seconds, 3)}
                                    if category == "all" else {})})
                if mark:
                    at_default[method] = (figures, details)
        print(f"\nper category at the default threshold {meaning.DEFAULT_THRESHOLD} "
              "(ARI / false merges / false splits)")
        categories = sorted(k for k in next(iter(at_default.values()))[0] if k != "all")
        print(f"{'category':<18}" + "".join(f"{m:>20}" for m in at_default))
        for category in categories:
            cells = [f"{f[category]['ari']:.2f} / {f[category]['false_merges']:>2} / {f[category]['false_splits']:>3}"
                     for f, _ in at_default.values()]
            print(f"{category:<18}" + "".join(f"{c:>20}" for c in cells))
        if args.errors and split == "dev":
            for method, (_, details) in at_default.items():
                print(f"\n-- {method} errors on dev")
                show_errors(questions, details)

    if not args.no_save:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        suffix = f"-{args.label}" if args.label else ""
        path = out / f"clusters-{stamp.date().isoformat()}{suffix}.jsonl"
        with path.open("a", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
        print(f"\n{len(rows)} rows appended to {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
