"""Wording sensitivity: how much of the spread comes from the prompt's wording, how much from sampling.

For each input and model, the answers of every variant are pooled (their meanings are
clustered together, so one meaning has one id across variants). The spread of meanings
splits exactly into two parts (Shannon entropy, nats):

    H(meaning) = H(meaning | variant)  +  I(meaning ; variant)
                 sampling, within a       wording: what knowing the variant
                 wording                  tells about the meaning

The plug-in I (counts as probabilities) is biased upward on small samples: answers
that ignore the prompt still split unevenly between wordings by chance, and I is never
negative. So the share reported is bias-corrected with the permutation null: shuffling
which variant each answer came from keeps the meanings and the wordings' sizes and
breaks any link between them, and the mean of I over those shuffles is what chance
alone gives at this sample size. `wording_share` is (I - mean of the null) / H,
clipped to 0..1: about 0 when every wording spreads the same way, near 1 when each
wording gives its own single meaning. Its interval comes from the same permutation
distribution (the noise of I at this sample size): I minus the null's upper and lower
quantiles, with the level split over the table's rows (Bonferroni), so the intervals
hold together as the Holm-adjusted p-values do and a prompt-blind model's rows all
reach 0. The p-value is the permutation test's (raw) beside its Holm adjustment over
the rows. Beside them: the consistency within each variant and whether the variants'
top meanings agree.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from cachetools import LRUCache
from scipy import special

from core.analyse import stats

PERMUTATIONS = 199   # at least; more when many rows share the error rate (see _permutations)
MAX_PERMUTATIONS = 999
ALPHA = 0.05
NULLS_KEPT = 100_000  # a row's null per way of splitting its answers: a few floats each


def mutual_information(variant_codes: np.ndarray, cluster_codes: np.ndarray, n_variants: int,
                       n_clusters: int) -> np.ndarray:
    """I(meaning; variant) in nats for each row of `variant_codes` (shape P × n), in one pass.

    Over the joint counts N[v, k], I = (Σ N log N + n log n − Σ_v N_v log N_v − Σ_k N_k log N_k) / n.
    Every row holds the same answers and variants in another order, so the margins are the
    same and only Σ N log N is counted per row; a meaning given once adds nothing to it
    (its counts are 0 and 1), so only repeated meanings are tabled."""
    rows, n = variant_codes.shape
    sizes = np.bincount(cluster_codes, minlength=n_clusters)
    variant_sizes = np.bincount(variant_codes[0], minlength=n_variants)
    margins = special.xlogy(variant_sizes, variant_sizes).sum() + special.xlogy(sizes, sizes).sum()
    repeated = sizes[cluster_codes] > 1
    kept, kept_codes = np.unique(cluster_codes[repeated], return_inverse=True)
    cells = (np.arange(rows)[:, None] * n_variants + variant_codes[:, repeated]) * len(kept) + kept_codes[None, :]
    table = np.bincount(cells.ravel(), minlength=rows * n_variants * len(kept)).reshape(rows, -1)
    joint = special.xlogy(table, table).sum(axis=1)
    return np.maximum((joint + special.xlogy(n, n) - margins) / n, 0.0)


def _permutations(rows: int) -> int:
    """Enough shuffles to read the null's quantile at ALPHA / (2 * rows), within reason."""
    return int(min(MAX_PERMUTATIONS, max(PERMUTATIONS, math.ceil(10 * rows / ALPHA) - 1)))


@dataclass
class Design:
    """Which answers each (input, model) row pools, their wordings and the shuffled
    wordings of its permutation null: none of it depends on the meaning clusters, so it
    is drawn once per run's answers and every threshold reuses it."""
    rows: list[tuple[tuple[int, str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]]  # key, positions,
    permutations: int                                                                  # variants, codes, shuffled
    # A row's information and permutation null depend on how its answers split into
    # meanings, not on the clusters' numbers: most thresholds split most rows as another
    # threshold did, and the shuffles are the most of a new threshold's cost.
    nulls: LRUCache = field(default_factory=lambda: LRUCache(maxsize=NULLS_KEPT), repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # sessions are threads


def design(answers: pd.DataFrame, *, seed: int = 0) -> Design:
    """The rows of by_input(): (input, model) answered by two or more variants."""
    rng = np.random.default_rng(seed)
    variant = answers["variant"].to_numpy()
    groups = [(key, rows) for key, rows in sorted(answers.groupby(["input", "model"]).indices.items())
              if len(np.unique(variant[rows])) >= 2]
    permutations = _permutations(len(groups))
    rows = []
    for key, positions in groups:
        variants, codes = np.unique(variant[positions], return_inverse=True)
        shuffled = rng.permuted(np.broadcast_to(codes, (permutations, len(codes))), axis=1)
        rows.append(((int(key[0]), key[1]), positions, variants, codes, shuffled))
    return Design(rows, permutations)


def by_input(answers: pd.DataFrame, *, seed: int = 0, drawn: Design | None = None) -> list[dict]:
    """One row per (input, model) answered by two or more variants (`drawn`: design() of
    these answers, if already made)."""
    drawn = drawn or design(answers, seed=seed)
    permutations = drawn.permutations
    tail = ALPHA / (2 * max(len(drawn.rows), 1))  # each side of each row's interval
    cluster = answers["cluster"].to_numpy()
    out = []
    for row, ((input_idx, model), positions, variants, variant_codes, shuffled) in enumerate(drawn.rows):
        clusters, cluster_codes = np.unique(cluster[positions], return_inverse=True)
        total = stats.entropy(np.bincount(cluster_codes))
        split = (row, _in_order_of_appearance(cluster_codes).tobytes())
        with drawn.lock:
            known = drawn.nulls.get(split)
        if known is None:
            information = float(mutual_information(variant_codes[None, :], cluster_codes, len(variants),
                                                   len(clusters))[0])
            null = mutual_information(shuffled, cluster_codes, len(variants), len(clusters))
            known = (information, float(null.mean()), *np.quantile(null, [tail, 1 - tail]).tolist(),
                     int((null >= information - 1e-12).sum()))
            with drawn.lock:
                drawn.nulls[split] = known
        information, null_mean, null_low, null_high, as_large = known
        p_value = (1 + as_large) / (permutations + 1)
        per_variant = {}
        for code, variant in enumerate(variants):
            counts = np.bincount(cluster_codes[variant_codes == code], minlength=len(clusters))
            per_variant[int(variant)] = {"n": int(counts.sum()), "consistency": round(counts.max() / counts.sum(), 4),
                                         "top_cluster": int(clusters[counts.argmax()])}
        tops = [v["top_cluster"] for v in per_variant.values()]
        pairs = [(a, b) for i, a in enumerate(tops) for b in tops[i + 1:]]

        def share(excess: float) -> float:
            return float(np.clip(excess / total, 0.0, 1.0)) if total > 1e-12 else 0.0

        centred = (information - null_mean) / total if total > 1e-12 else 0.0
        out.append({
            "input": input_idx, "model": model, "answers": len(positions), "meanings": len(clusters),
            "entropy": round(total, 4), "entropy_within": round(total - information, 4),
            "information": round(max(information, 0.0), 4),
            "information_null": round(null_mean, 4),
            "wording_share": round(share(information - null_mean), 4),
            "wording_share_low": round(share(information - null_high), 4),
            "wording_share_high": round(share(information - null_low), 4),
            "wording_share_centred": round(centred, 4),  # unclipped: what summary() averages
            "wording_share_plugin": round(share(information), 4),
            "p_value": round(p_value, 4),
            "variants": per_variant,
            "top_agreement": round(sum(a == b for a, b in pairs) / len(pairs), 4),
            "top_meaning_changes": len(set(tops)) > 1,
        })
    for row, adjusted in zip(out, stats.holm([row["p_value"] for row in out])):
        row["p_value_holm"] = round(adjusted, 4)
        row["wording_matters"] = adjusted <= ALPHA
    return out


def _in_order_of_appearance(codes: np.ndarray) -> np.ndarray:
    """The same split of answers into meanings, numbered by first appearance: two
    thresholds that split a row alike give the same array whatever their clusters' ids."""
    _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    return np.argsort(np.argsort(first))[inverse]


WORDING_KEYS = ("input", "model", "answers", "meanings", "wording_share", "wording_share_low", "wording_share_high",
                "p_value", "p_value_holm", "wording_matters")


def table(rows: list[dict]) -> list[dict]:
    """The rows as `spread show --json` gives them (its `wording` list)."""
    return [{key: row[key] for key in WORDING_KEYS} for row in rows]


def summary(rows: list[dict]) -> list[dict]:
    """Per model, over inputs: the mean bias-corrected share of spread due to wording (t interval
    over inputs, of the unclipped shares, so chance above and below 0 cancels),
    the share of inputs whose top meaning changes with the wording (Wilson), and how many
    inputs show a wording effect beyond sampling noise (permutation test, Holm)."""
    out = []
    for model in dict.fromkeys(row["model"] for row in rows):
        mine = [row for row in rows if row["model"] == model]
        mean, low, high = stats.mean_interval([row["wording_share_centred"] for row in mine])
        changed = sum(row["top_meaning_changes"] for row in mine)
        changed_low, changed_high = stats.wilson(changed, len(mine))
        within = {}
        for row in mine:
            for variant, values in row["variants"].items():
                within.setdefault(variant, []).append(values["consistency"])
        out.append({
            "model": model, "inputs": len(mine),
            "wording_share": stats.rounded(max(mean, 0.0)), "wording_share_low": stats.rounded(low),
            "wording_share_high": stats.rounded(high),
            "top_meaning_changes": changed, "top_meaning_changes_share": round(changed / len(mine), 4),
            "top_meaning_changes_low": round(changed_low, 4), "top_meaning_changes_high": round(changed_high, 4),
            "wording_matters": sum(row["wording_matters"] for row in mine),
            "consistency_within": {variant: stats.rounded(np.mean(values)) for variant, values in sorted(within.items())},
        })
    return out
