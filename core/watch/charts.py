"""The Monitors page's charts (plotly), from `monitors.history` rows, oldest first."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

VERDICT_MARKERS = {"pass": ("circle", "#2e7d32"), "fail": ("x", "#c62828"), "inconclusive": ("diamond", "#f9a825"),
                   None: ("circle-open", "#757575")}
BANDS = {"baseline_top": "the baseline's usual meaning", "other_baseline": "its other baseline meanings",
         "new": "meanings new since the baseline"}


def _times(rows: list[dict]) -> list:
    return [pd.Timestamp(row["when"]) for row in rows]


def _layout(figure: go.Figure, title: str, y: dict) -> go.Figure:
    figure.update_layout(title=title, height=300, margin={"l": 10, "r": 10, "t": 50, "b": 10}, yaxis=y,
                         xaxis={"type": "date", "title": "check"}, legend={"orientation": "h"})
    return figure


def pass_rate(rows: list[dict]) -> go.Figure:
    """Pass rate per check with its 95% interval; the marker says the gate's verdict."""
    rated = [row for row in rows if row["pass_rate"] is not None]
    figure = go.Figure()
    for verdict, (symbol, colour) in VERDICT_MARKERS.items():
        mine = [row for row in rated if row["verdict"] == verdict]
        if not mine:
            continue
        figure.add_trace(go.Scatter(
            x=_times(mine), y=[row["pass_rate"] for row in mine], mode="markers", cliponaxis=False,
            name="baseline / no verdict" if verdict is None else verdict,
            marker={"symbol": symbol, "color": colour, "size": 9},
            error_y={"type": "data", "symmetric": False,
                     "array": [(row["pass_rate_high"] or row["pass_rate"]) - row["pass_rate"] for row in mine],
                     "arrayminus": [row["pass_rate"] - (row["pass_rate_low"] or row["pass_rate"]) for row in mine]},
            hovertext=[f"check {row['check_id']} · {row['state']}"
                       + (f" · alerting: {', '.join(row['alerting'])}" if row["alerting"] else "") for row in mine],
            hoverinfo="text+y"))
    if rated:
        figure.add_trace(go.Scatter(x=_times(rated), y=[row["pass_rate"] for row in rated], mode="lines",
                                    line={"color": "#9e9e9e", "width": 1}, showlegend=False, hoverinfo="skip"))
    return _layout(figure, "Pass rate per check (bars: 95% interval; marker: the gate's verdict)",
                   {"range": [-0.05, 1.05], "tickformat": ".0%", "title": "pass rate"})


def meaning_shares(rows: list[dict]) -> go.Figure | None:
    """Where each check's answers went, as a stacked area (None before any comparison)."""
    compared = [row for row in rows if row.get("meaning")]
    if not compared:
        return None
    figure = go.Figure()
    for band, label in BANDS.items():
        figure.add_trace(go.Scatter(x=_times(compared), y=[row["meaning"][band] for row in compared], name=label,
                                    mode="lines", stackgroup="meaning", hoverinfo="x+y"))
    return _layout(figure, "Meanings of the answers, against the baseline's (share of answers, mean over items)",
                   {"range": [0, 1], "tickformat": ".0%", "title": "share"})


def latency(rows: list[dict]) -> go.Figure | None:
    timed = [row for row in rows if row.get("p50_ms") is not None]
    if not timed:
        return None
    figure = go.Figure()
    for name in ("p50_ms", "p95_ms"):
        figure.add_trace(go.Scatter(x=_times(timed), y=[row[name] for row in timed], name=name[:3],
                                    mode="lines+markers"))
    return _layout(figure, "Latency per answer", {"title": "ms", "rangemode": "tozero"})


def cost(rows: list[dict]) -> go.Figure | None:
    priced = [row for row in rows if row.get("cost_per_answer") is not None]
    if not priced:
        return None
    figure = go.Figure(go.Scatter(x=_times(priced), y=[row["cost_per_answer"] for row in priced],
                                  mode="lines+markers", name="cost"))
    return _layout(figure, "Cost per answer (only checks whose every answer has a known price)",
                   {"title": "USD", "rangemode": "tozero"})
