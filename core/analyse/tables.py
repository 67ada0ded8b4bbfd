"""The grid's numbers as tables a reviewer reads without a glossary.

Plain column names with their units, percentages with the precision the data holds,
every share beside its interval, entropy never "-0.00", cost "unknown" rather than $0.
Rows come from `spread` (cells or groups of cells); axis values are named by the
caller's `names` (wording labels, inputs by their variables).
"""

from __future__ import annotations

import pandas as pd

from core import display
from core.analyse.charts import AXIS_NAMES, axis_label


def percent(value: float | None, digits: int = 0) -> str:
    return "–" if value is None or pd.isna(value) else f"{100 * value:.{digits}f}%"


def share_with_interval(value: float | None, low: float | None, high: float | None) -> str:
    if value is None or pd.isna(value):
        return "–"
    return percent(value) + ("" if low is None or pd.isna(low) else f" ({percent(low)}–{percent(high)})")


def number(value: float | None, digits: int = 2) -> str:
    """A number cut to `digits`, never negative zero (an entropy of -1e-17 is 0)."""
    if value is None or pd.isna(value):
        return "–"
    rounded = round(float(value), digits)
    return f"{rounded + 0.0:.{digits}f}"  # + 0.0 turns -0.0 into 0.0


def milliseconds(value: float | None) -> str:
    return "–" if value is None or pd.isna(value) else f"{value:,.0f}"


def spread_rows(rows: list[dict], axes: list[str], names: dict | None = None) -> pd.DataFrame:
    """Groups of the grid (per wording, input, model or temperature) with their meaning
    metrics, length, cut answers, latency and cost."""
    names = names or {}
    table = []
    for row in rows:
        shown = {AXIS_NAMES[axis]: axis_label(axis, row[axis], names.get(axis)) for axis in axes}
        shown.update({
            "answers": row["count"], "errors": row["errors"],
            "meanings": row.get("n_clusters"),
            "top meaning share (95% interval)": share_with_interval(
                row.get("consistency"), row.get("consistency_low"), row.get("consistency_high")),
            "semantic entropy (nats)": number(row.get("entropy")),
            "mean similarity (cosine)": number(row.get("mean_similarity")),
            "mean length (tokens)": number(row.get("length_mean"), 1),
            "cut by max tokens": percent(row.get("cut_share")),
            "latency p50 (ms)": milliseconds(row.get("latency_ms_p50")),
            "latency p95 (ms)": milliseconds(row.get("latency_ms_p95")),
            "cost": display.usd(row.get("cost_usd_known", row.get("cost_usd")), row.get("answers_unpriced", 0)),
        })
        if "inputs" in row and "input" not in axes:
            shown["inputs"] = row["inputs"]
        table.append(shown)
    return pd.DataFrame(table)


def latency(cell: dict, which: str) -> str:
    """A latency in ms, marked when it was measured while the embedded model ran on the same cores."""
    text = milliseconds(cell.get(which))
    return text + " (local load)" if cell.get("latency_under_local_load") and text != "–" else text


def cell_rows(cells: list[dict], names: dict | None = None) -> pd.DataFrame:
    """The Runs page's cells: what came back, how long it took, what it cost. The columns
    that matter come first, so the table fits a laptop screen without scrolling."""
    names = names or {}
    return pd.DataFrame([{
        "wording": axis_label("variant", c["variant"], names.get("variant")),
        "input": axis_label("input", c["input"], names.get("input")),
        "model": c["model"], "temperature": f"{c['temperature']:g}",
        "answers": c["count"], "errors": c["errors"],
        "cost": display.usd(c.get("cost_usd_known", c.get("cost_usd")), c.get("answers_unpriced", 0)),
        "latency p50 (ms)": latency(c, "latency_ms_p50"),
        "latency p95 (ms)": latency(c, "latency_ms_p95"),
        "first token p50 (ms)": milliseconds(c.get("ttft_ms_p50")),
        "mean length (tokens)": number(c.get("length_mean"), 1),
        "cut by max tokens": percent(c.get("cut_share")),
        "distinct texts": c.get("distinct_answers"),
    } for c in cells])
