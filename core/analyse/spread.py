"""How far the answers of a run spread: meaning clusters and metrics per model × temperature cell.

The pipeline, top-down:
1. `frame()` puts the stored responses in a DataFrame.
2. Answers are normalised (case, white space, trailing punctuation) and de-duplicated:
   a run of 1,000 samples often holds far fewer distinct answers.
3. The distinct answers are embedded (`embed`) and grouped by average-linkage
   agglomerative clustering (scikit-learn) on cosine similarity: two groups merge while
   their answers are, on average, at least `threshold` alike. Each cluster's
   representative is its medoid: the answer most similar to all the others.
4. Per cell (and per model, per temperature): consistency (share of the largest
   cluster, with a Wilson interval), semantic entropy, mean pairwise similarity,
   answer length, cut answers, cost, latency.

Clusters are run-wide, so the same meaning has the same cluster id in every cell.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
from scipy.stats import binomtest, entropy as shannon_entropy

from core.analyse import embed, meaning

CELL_KEYS = ["model", "temperature"]
DEFAULT_THRESHOLD = meaning.DEFAULT_THRESHOLD


def frame(responses: list[dict]) -> pd.DataFrame:
    """The responses of a run as a DataFrame with the columns the metrics need."""
    columns = ["id", "run_id", "model", "temperature", "sample_idx", "seed", "text", "finish_reason",
               "prompt_tokens", "completion_tokens", "cost_usd", "latency_ms", "ttft_ms",
               "attempts", "error_type", "error_message", "provider_model", "created_at"]
    df = pd.DataFrame(responses, columns=columns)
    for column in ["prompt_tokens", "completion_tokens", "cost_usd", "latency_ms", "ttft_ms", "temperature"]:
        df[column] = pd.to_numeric(df[column], errors="coerce").astype("float64")
    return df


# --- clustering -----------------------------------------------------------------------

@dataclass
class Cluster:
    id: int
    size: int
    representative: str
    representative_id: int
    member_ids: list[int] = field(repr=False)


def _medoid(vectors: np.ndarray, weights: np.ndarray) -> int:
    """The row most similar, weighted by how often each answer came back, to all the others."""
    if len(vectors) > 3000:  # the centroid's nearest row: same idea, linear cost
        centre = (vectors * weights[:, None]).sum(axis=0)
        return int(np.argmax(vectors @ centre))
    return int(np.argmax((vectors @ vectors.T) @ weights))


# --- the analysis ---------------------------------------------------------------------

@dataclass
class Analysis:
    method: str
    threshold: float
    answers: pd.DataFrame  # one row per good answer, with "norm" and "cluster" columns
    clusters: list[Cluster]
    cells: list[dict]
    by_model: list[dict]
    by_temperature: list[dict]
    coords: pd.DataFrame | None = None  # 2-D map of the answers (PCA of the embeddings)
    errors: pd.DataFrame | None = None


Embedder = Callable[[list[str], str], np.ndarray]


def analyse_run(run_id: int, *, method: str | None = None, threshold: float = DEFAULT_THRESHOLD,
                db_path=None, with_map: bool = True, extract: str = "whole") -> Analysis:
    """analyse() a stored run, with model embeddings cached in the database."""
    from core import store

    with store.connect(db_path) as db:
        rows = store.responses(db, run_id)
        run = store.get_run(db, run_id)
    context = f"{run['spec'].get('system') or ''}\n{run['spec']['prompt']}" if run else ""
    return analyse(rows, method=method, threshold=threshold, with_map=with_map, context=context,
                   embedder=lambda texts, m: embed.cached(texts, m, db_path=db_path), extract=extract)


def analyse(responses: list[dict], *, method: str | None = None, threshold: float = DEFAULT_THRESHOLD,
            embedder: Embedder | None = None, with_map: bool = True, context: str = "",
            extract: str = "whole") -> Analysis:
    """Cluster a run's answers by meaning and measure every cell. `responses` are store rows;
    `context` is the prompt (its names and numbers do not tell answers apart); `extract`
    the part of each answer to compare (meaning.EXTRACT_MODES)."""
    method = method or embed.default_method()
    if not 0 < threshold <= 1:
        raise ValueError("the similarity threshold must be in (0, 1]")
    embedder = embedder or embed.embed
    df = frame(responses)
    errors = df[df["error_type"].notna()]
    answers = df[df["error_type"].isna()].copy()
    answers["text"] = answers["text"].fillna("")
    answers["norm"] = answers["text"].map(embed.normalise)

    # Distinct answers, most frequent first, each with one original spelling to embed.
    distinct = (answers.groupby("norm", sort=False)
                .agg(count=("id", "size"), text=("text", "first"), first_id=("id", "first"))
                .sort_values("count", ascending=False, kind="stable"))
    labels, vectors = meaning.cluster(list(distinct["text"]), method=method, threshold=threshold, context=context,
                                      embedder=embedder, extract_mode=extract)
    distinct["cluster"] = labels

    # Renumber clusters by size (0 = largest) and pick each one's medoid.
    sizes = distinct.groupby("cluster")["count"].sum().sort_values(ascending=False, kind="stable")
    renumber = {old: new for new, old in enumerate(sizes.index)}
    distinct["cluster"] = distinct["cluster"].map(renumber)
    answers["cluster"] = answers["norm"].map(distinct["cluster"]).astype(int) if len(answers) else []
    clusters = []
    weights = distinct["count"].to_numpy(dtype=np.float64)
    positions = {norm: i for i, norm in enumerate(distinct.index)}
    members_by_cluster = answers.groupby("cluster")["id"].apply(list) if len(answers) else {}
    for cluster_id in range(len(sizes)):
        rows = np.flatnonzero(distinct["cluster"].to_numpy() == cluster_id)
        medoid = rows[_medoid(vectors[rows], weights[rows])]
        clusters.append(Cluster(
            id=cluster_id, size=int(weights[rows].sum()), representative=distinct["text"].iloc[medoid],
            representative_id=int(distinct["first_id"].iloc[medoid]),
            member_ids=[int(i) for i in members_by_cluster[cluster_id]],
        ))

    row_vectors = vectors[[positions[n] for n in answers["norm"]]] if len(answers) else vectors
    cells = _grouped(answers, errors, ["model", "temperature"], clusters, distinct, vectors, positions)
    analysis = Analysis(
        method=method, threshold=threshold, answers=answers, clusters=clusters, cells=cells,
        by_model=_grouped(answers, errors, ["model"], clusters, distinct, vectors, positions),
        by_temperature=_grouped(answers, errors, ["temperature"], clusters, distinct, vectors, positions),
        errors=errors,
    )
    if with_map:
        analysis.coords = answer_map(answers, row_vectors)
    return analysis


def _grouped(answers, errors, keys, clusters, distinct, vectors, positions) -> list[dict]:
    """metrics_for() per group of `keys` (cells, models or temperatures), errors included."""
    answer_groups = dict(iter(answers.groupby(keys)))
    error_groups = dict(iter(errors.groupby(keys)))
    out = []
    for key in sorted(set(answer_groups) | set(error_groups)):
        values = key if isinstance(key, tuple) else (key,)
        metrics = {k: float(v) if k == "temperature" else v for k, v in zip(keys, values)}
        metrics.update(metrics_for(answer_groups.get(key, answers.iloc[0:0]),
                                   error_groups.get(key, errors.iloc[0:0]), clusters, vectors, positions))
        out.append(metrics)
    return out


def metrics_for(group: pd.DataFrame, errors: pd.DataFrame, clusters: list[Cluster],
                vectors: np.ndarray, positions: dict) -> dict:
    """Every number for one group of answers (a cell, a model, a temperature)."""
    n = len(group)
    counts = group["cluster"].value_counts() if n else pd.Series(dtype=int)
    top = int(counts.iloc[0]) if n else 0
    low, high = wilson(top, n)
    by_distinct = group["norm"].value_counts() if n else pd.Series(dtype=int)
    ids, labels = group["id"].to_numpy(), group["cluster"].to_numpy()
    members = {c: ids[labels == c] for c in counts.index}
    result = basic_metrics(group, errors)
    result.update({
        "distinct_answers": int(group["norm"].nunique()),
        "n_clusters": int(len(counts)),
        "consistency": round(top / n, 4) if n else None,
        "consistency_low": round(low, 4) if n else None,
        "consistency_high": round(high, 4) if n else None,
        "entropy": round(float(shannon_entropy(counts.to_numpy())), 4) if n else None,
        "mean_similarity": mean_pairwise_similarity(
            vectors[[positions[x] for x in by_distinct.index]], by_distinct.to_numpy()) if n > 1 else None,
        "top_cluster": int(counts.index[0]) if n else None,
        "top_answer": clusters[int(counts.index[0])].representative if n else None,
        "clusters": [
            {"cluster": int(c), "size": int(s), "share": round(s / n, 4),
             "representative": clusters[int(c)].representative,
             "member_ids": [int(i) for i in members[c]]}
            for c, s in counts.items()
        ],
    })
    return result


def basic_metrics(group: pd.DataFrame, errors: pd.DataFrame) -> dict:
    """Counts, tokens, cut answers, cost and latency: the numbers that need no embedding."""
    n = len(group)
    column = {name: group[name].to_numpy(dtype=np.float64)
              for name in ("prompt_tokens", "completion_tokens", "cost_usd", "latency_ms", "ttft_ms")}
    tokens = _known(column["completion_tokens"])
    prompt_tokens = _known(column["prompt_tokens"])
    cost = column["cost_usd"]
    cost_known = n > 0 and not np.isnan(cost).any()  # one unknown price: the total is unknown, never 0
    cut = int((group["finish_reason"].to_numpy() == "length").sum())
    return {
        "count": n,
        "errors": int(len(errors)),
        "error_types": {str(k): int(v) for k, v in errors["error_type"].value_counts().items()},
        "prompt_tokens": int(prompt_tokens.sum()) if prompt_tokens.size else None,
        "completion_tokens": int(tokens.sum()) if tokens.size else None,
        "length_mean": _round(tokens.mean()) if tokens.size else None,
        "length_sd": _round(tokens.std(ddof=1)) if tokens.size > 1 else None,
        "length_min": int(tokens.min()) if tokens.size else None,
        "length_max": int(tokens.max()) if tokens.size else None,
        "cut_by_max_tokens": cut,
        "cut_share": round(cut / n, 4) if n else None,
        "cost_usd": float(cost.sum()) if cost_known else None,
        "cost_per_call_mean": float(cost.mean()) if cost_known else None,
        "cost_per_call_p95": float(np.quantile(cost, 0.95)) if cost_known else None,
        "latency_ms_p50": _quantile(column["latency_ms"], 0.5),
        "latency_ms_p95": _quantile(column["latency_ms"], 0.95),
        "latency_ms_p99": _quantile(column["latency_ms"], 0.99),
        "ttft_ms_p50": _quantile(column["ttft_ms"], 0.5),
        "ttft_ms_p95": _quantile(column["ttft_ms"], 0.95),
    }


def _known(values: np.ndarray) -> np.ndarray:
    return values[~np.isnan(values)]


def cell_table(responses: list[dict]) -> list[dict]:
    """Per cell, the metrics that need no embedding (cheap: the Runs page and `spread show`)."""
    df = frame(responses)
    answers = df[df["error_type"].isna()].copy()
    answers["norm"] = answers["text"].fillna("").map(embed.normalise)
    errors = df[df["error_type"].notna()]
    cells = []
    keys = sorted(set(map(tuple, df[CELL_KEYS].itertuples(index=False))), key=lambda k: (k[0], k[1]))
    for model, temperature in keys:
        group = answers[(answers["model"] == model) & (answers["temperature"] == temperature)]
        in_errors = errors[(errors["model"] == model) & (errors["temperature"] == temperature)]
        cell = {"model": model, "temperature": float(temperature)}
        cell.update(basic_metrics(group, in_errors))
        cell["distinct_answers"] = int(group["norm"].nunique())
        cells.append(cell)
    return cells


def _quantile(values: np.ndarray, q: float) -> float | None:
    known = _known(values)
    return None if known.size == 0 else round(float(np.quantile(known, q)), 1)


def _round(value, digits: int = 2):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else round(float(value), digits)


# --- statistics -----------------------------------------------------------------------

def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a share estimated from n samples."""
    if n == 0:
        return (0.0, 1.0)
    interval = binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


def share_difference(k1: int, n1: int, k2: int, n2: int, confidence: float = 0.95) -> tuple[float, float, float]:
    """Difference of two shares with Newcombe's hybrid score interval (built on Wilson's)."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, confidence)
    l2, u2 = wilson(k2, n2, confidence)
    diff = p1 - p2
    low = diff - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = diff + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return diff, low, high


def mean_pairwise_similarity(vectors: np.ndarray, counts: np.ndarray) -> float:
    """Mean cosine similarity over all pairs of answers, distinct answers weighted by count."""
    counts = counts.astype(np.float64)
    n = counts.sum()
    if n < 2:
        return None
    weighted = vectors.T.astype(np.float64) @ counts  # Σ_i c_i v_i
    total = float(weighted @ weighted)  # Σ_i Σ_j c_i c_j v_i·v_j, self-pairs included
    self_pairs = float((counts * np.einsum("ij,ij->i", vectors, vectors)).sum())
    return round(float((total - self_pairs) / (n * (n - 1))), 4)


# --- maps and comparisons -------------------------------------------------------------

def answer_map(answers: pd.DataFrame, vectors: np.ndarray) -> pd.DataFrame:
    """2-D coordinates of every answer (PCA of its embedding), for a scatter plot."""
    coords = answers[["id", "model", "temperature", "text", "cluster"]].copy()
    if len(answers) >= 3 and vectors.shape[1] >= 2:
        from sklearn.decomposition import PCA

        xy = PCA(n_components=2, random_state=0).fit_transform(vectors)
    else:
        xy = np.zeros((len(answers), 2))
    coords["x"], coords["y"] = xy[:, 0], xy[:, 1]
    return coords


def compare(analysis: Analysis, side_a: pd.Series, side_b: pd.Series) -> dict:
    """Two sets of answers (boolean masks over analysis.answers) side by side."""
    answers = analysis.answers
    a, b = answers[side_a], answers[side_b]
    counts_a, counts_b = a["cluster"].value_counts(), b["cluster"].value_counts()
    shared = sorted(set(counts_a.index) & set(counts_b.index), key=lambda c: -(counts_a[c] + counts_b[c]))

    def rows(ids):
        return [{"cluster": int(c), "representative": analysis.clusters[c].representative,
                 "share_a": round(counts_a.get(c, 0) / max(len(a), 1), 4),
                 "share_b": round(counts_b.get(c, 0) / max(len(b), 1), 4)} for c in ids]

    result = {
        "n_a": len(a), "n_b": len(b),
        "shared": rows(shared),
        "only_a": rows([c for c in counts_a.index if c not in counts_b.index]),
        "only_b": rows([c for c in counts_b.index if c not in counts_a.index]),
    }
    if len(a) and len(b):
        top_a, top_b = int(counts_a.iloc[0]), int(counts_b.iloc[0])
        diff, low, high = share_difference(top_a, len(a), top_b, len(b))
        result.update({
            "consistency_a": round(top_a / len(a), 4), "consistency_b": round(top_b / len(b), 4),
            "consistency_a_ci": [round(x, 4) for x in wilson(top_a, len(a))],
            "consistency_b_ci": [round(x, 4) for x in wilson(top_b, len(b))],
            "consistency_shift": round(diff, 4), "consistency_shift_ci": [round(low, 4), round(high, 4)],
            # An interval that excludes 0 is a shift that sampling noise does not explain.
            "shift_is_significant": bool(low > 0 or high < 0),
            "representative_a": analysis.clusters[int(counts_a.index[0])].representative,
            "representative_b": analysis.clusters[int(counts_b.index[0])].representative,
        })
    return result


def word_diff(a: str, b: str) -> list[tuple[str, str]]:
    """Word-level diff: a list of (op, words) with op in "=", "-", "+"."""
    words_a, words_b = a.split(), b.split()
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=words_a, b=words_b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(("=", " ".join(words_a[i1:i2])))
        else:
            if i2 > i1:
                out.append(("-", " ".join(words_a[i1:i2])))
            if j2 > j1:
                out.append(("+", " ".join(words_b[j1:j2])))
    return out


def progress_grid(counts: list[dict], models: list[str], temperatures: list[float], n: int) -> pd.DataFrame:
    """A models × temperatures table of "received/planned" (with errors) for a live run."""
    by_cell = {(c["model"], float(c["temperature"])): c for c in counts}
    grid = {}
    for t in temperatures:
        column = []
        for m in models:
            cell = by_cell.get((m, float(t)), {"received": 0, "errors": 0})
            text = f"{cell['received']}/{n}"
            if cell["errors"]:
                text += f" ({cell['errors']} err)"
            column.append(text)
        grid[f"T={t:g}"] = column
    return pd.DataFrame(grid, index=pd.Index(models, name="model"))


def compare_runs(side_a: tuple[int, list[tuple[str, float]]], side_b: tuple[int, list[tuple[str, float]]], *,
                 method: str | None = None, threshold: float = DEFAULT_THRESHOLD, db_path=None) -> dict:
    """Compare cells of one run, or of two runs (before and after a prompt change).

    Each side is (run_id, [(model, temperature), ...]); an empty cell list means the
    whole run. Both sides are clustered together, so a shared meaning has one id.
    """
    from core import store

    with store.connect(db_path) as db:
        rows = store.responses(db, side_a[0])
        if side_b[0] != side_a[0]:
            rows += store.responses(db, side_b[0])
        specs = [store.get_run(db, run_id)["spec"] for run_id in {side_a[0], side_b[0]}]
    context = "\n".join(f"{spec.get('system') or ''}\n{spec['prompt']}" for spec in specs)
    analysis = analyse(rows, method=method, threshold=threshold, with_map=False, context=context,
                       embedder=lambda texts, m: embed.cached(texts, m, db_path=db_path))
    answers = analysis.answers

    def mask(side):
        run_id, cells = side
        selected = answers["run_id"] == run_id
        if cells:
            in_cells = pd.Series(False, index=answers.index)
            for model, temperature in cells:
                in_cells |= (answers["model"] == model) & (answers["temperature"] == float(temperature))
            selected &= in_cells
        return selected

    result = compare(analysis, mask(side_a), mask(side_b))
    if "representative_a" in result:
        result["diff"] = word_diff(result["representative_a"], result["representative_b"])
    result["method"], result["threshold"] = analysis.method, analysis.threshold
    return result
