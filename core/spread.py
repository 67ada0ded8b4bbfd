"""How far the answers of a run spread, per model × temperature cell."""

from __future__ import annotations

import pandas as pd

CELL_KEYS = ["model", "temperature"]


def frame(responses: list[dict]) -> pd.DataFrame:
    """The responses of a run as a DataFrame with the columns the metrics need."""
    columns = ["id", "model", "temperature", "sample_idx", "seed", "text", "finish_reason",
               "prompt_tokens", "completion_tokens", "cost_usd", "latency_ms", "ttft_ms",
               "attempts", "error_type", "error_message", "provider_model", "created_at"]
    df = pd.DataFrame(responses, columns=columns)
    for column in ["prompt_tokens", "completion_tokens", "cost_usd", "latency_ms", "ttft_ms"]:
        df[column] = pd.to_numeric(df[column], errors="coerce").astype("float64")
    return df


def _quantile(values: pd.Series, q: float) -> float | None:
    values = values.dropna()
    return None if values.empty else round(float(values.quantile(q)), 1)


def _total_cost(values: pd.Series) -> float | None:
    """The sum of known costs, or None when any answer's cost is unknown."""
    if values.empty or values.isna().any():
        return None
    return float(values.sum())


def cell_table(responses: list[dict]) -> list[dict]:
    """Per cell: count, errors, tokens, cost and latency p50/p95 over the good answers."""
    df = frame(responses)
    cells = []
    for (model, temperature), group in df.groupby(CELL_KEYS, sort=True):
        good = group[group["error_type"].isna()]
        cells.append({
            "model": model,
            "temperature": float(temperature),
            "count": int(len(good)),
            "errors": int(len(group) - len(good)),
            "error_types": {str(k): int(v) for k, v in group["error_type"].dropna().value_counts().items()},
            "prompt_tokens": int(good["prompt_tokens"].sum()) if good["prompt_tokens"].notna().any() else None,
            "completion_tokens": int(good["completion_tokens"].sum()) if good["completion_tokens"].notna().any() else None,
            "completion_tokens_mean": _mean(good["completion_tokens"]),
            "cost_usd": _total_cost(good["cost_usd"]),
            "latency_ms_p50": _quantile(good["latency_ms"], 0.5),
            "latency_ms_p95": _quantile(good["latency_ms"], 0.95),
            "ttft_ms_p50": _quantile(good["ttft_ms"], 0.5),
            "distinct_answers": int(good["text"].str.strip().str.lower().nunique()),
            "cut_by_max_tokens": int((good["finish_reason"] == "length").sum()),
        })
    return cells


def _mean(values: pd.Series) -> float | None:
    values = values.dropna()
    return None if values.empty else round(float(values.mean()), 1)


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
