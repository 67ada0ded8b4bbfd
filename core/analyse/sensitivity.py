"""Wording sensitivity: how much of the spread comes from the prompt's wording, how much from sampling.

For each input and model, the answers of every variant are pooled (their meanings are
clustered together, so one meaning has one id across variants). The spread of meanings
splits exactly into two parts (Shannon entropy, nats):

    H(meaning) = H(meaning | variant)  +  I(meaning ; variant)
                 sampling, within a       wording: what knowing the variant
                 wording                  tells about the meaning

`wording_share` is I / H: 0 when every wording spreads the same way, 1 when each
wording gives its own single meaning. Beside it: the consistency within each variant,
whether the variants' top meanings agree, and a permutation test of I (shuffling which
variant each answer came from), so a wording effect on a handful of samples is not
mistaken for one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.analyse import stats

PERMUTATIONS = 199
ALPHA = 0.05


def mutual_information(variant_codes: np.ndarray, cluster_codes: np.ndarray, n_variants: int,
                       n_clusters: int) -> np.ndarray:
    """I(meaning; variant) in nats for each row of `variant_codes` (shape P × n), in one pass."""
    rows, n = variant_codes.shape
    table = np.zeros((rows, n_variants, n_clusters))
    np.add.at(table, (np.arange(rows)[:, None], variant_codes, cluster_codes[None, :]), 1.0)
    joint = table / n
    p_variant = joint.sum(axis=2, keepdims=True)
    p_cluster = joint.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = joint * np.log(joint / (p_variant * p_cluster))
    return np.nansum(terms, axis=(1, 2))


def by_input(answers: pd.DataFrame, *, seed: int = 0) -> list[dict]:
    """One row per (input, model) answered by two or more variants."""
    rng = np.random.default_rng(seed)
    out = []
    for (input_idx, model), group in answers.groupby(["input", "model"], sort=True):
        if group["variant"].nunique() < 2:
            continue
        variants, variant_codes = np.unique(group["variant"].to_numpy(), return_inverse=True)
        clusters, cluster_codes = np.unique(group["cluster"].to_numpy(), return_inverse=True)
        total = stats.entropy(np.bincount(cluster_codes))
        information = float(mutual_information(variant_codes[None, :], cluster_codes, len(variants), len(clusters))[0])
        shuffled = np.array([rng.permutation(variant_codes) for _ in range(PERMUTATIONS)])
        null = mutual_information(shuffled, cluster_codes, len(variants), len(clusters))
        p_value = (1 + int((null >= information - 1e-12).sum())) / (PERMUTATIONS + 1)
        per_variant = {}
        for code, variant in enumerate(variants):
            counts = np.bincount(cluster_codes[variant_codes == code], minlength=len(clusters))
            per_variant[int(variant)] = {"n": int(counts.sum()), "consistency": round(counts.max() / counts.sum(), 4),
                                         "top_cluster": int(clusters[counts.argmax()])}
        tops = [v["top_cluster"] for v in per_variant.values()]
        pairs = [(a, b) for i, a in enumerate(tops) for b in tops[i + 1:]]
        out.append({
            "input": int(input_idx), "model": model, "answers": len(group), "meanings": len(clusters),
            "entropy": round(total, 4), "entropy_within": round(total - information, 4),
            "information": round(max(information, 0.0), 4),
            "wording_share": round(information / total, 4) if total > 1e-12 else 0.0,
            "p_value": round(p_value, 4),
            "variants": per_variant,
            "top_agreement": round(sum(a == b for a, b in pairs) / len(pairs), 4),
            "top_meaning_changes": len(set(tops)) > 1,
        })
    _holm(out)
    return out


def _holm(rows: list[dict]) -> None:
    """Mark the rows whose wording effect survives Holm's correction for many inputs."""
    order = sorted(range(len(rows)), key=lambda k: rows[k]["p_value"])
    m, still = len(rows), True
    for rank, k in enumerate(order):
        still = still and rows[k]["p_value"] <= ALPHA / (m - rank)
        rows[k]["wording_matters"] = still


def summary(rows: list[dict]) -> list[dict]:
    """Per model, over inputs: the mean share of spread due to wording (t interval over inputs),
    the share of inputs whose top meaning changes with the wording (Wilson), and how many
    inputs show a wording effect beyond sampling noise (permutation test, Holm)."""
    out = []
    for model in dict.fromkeys(row["model"] for row in rows):
        mine = [row for row in rows if row["model"] == model]
        mean, low, high = stats.mean_interval([row["wording_share"] for row in mine])
        changed = sum(row["top_meaning_changes"] for row in mine)
        changed_low, changed_high = stats.wilson(changed, len(mine))
        within = {}
        for row in mine:
            for variant, values in row["variants"].items():
                within.setdefault(variant, []).append(values["consistency"])
        out.append({
            "model": model, "inputs": len(mine),
            "wording_share": stats.rounded(mean), "wording_share_low": stats.rounded(low),
            "wording_share_high": stats.rounded(high),
            "top_meaning_changes": changed, "top_meaning_changes_share": round(changed / len(mine), 4),
            "top_meaning_changes_low": round(changed_low, 4), "top_meaning_changes_high": round(changed_high, 4),
            "wording_matters": sum(row["wording_matters"] for row in mine),
            "consistency_within": {variant: stats.rounded(np.mean(values)) for variant, values in sorted(within.items())},
        })
    return out
