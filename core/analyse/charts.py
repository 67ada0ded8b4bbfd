"""Plotly figure builders: data in, figure out. No Streamlit, no database.

Model output reaches hover labels, and plotly renders a few HTML tags there (<a>, <b>,
<br>...): every answer goes through `_safe()` first, so an answer is always text.
"""

from __future__ import annotations

import functools
import html
import textwrap

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

HOVER_CHARS = 300
MAP_POINTS = 3000
METRIC_LABELS = {
    "consistency": "consistency (share of the largest meaning cluster)",
    "pass_rate": "pass rate (answers passing every check)",
    "entropy": "semantic entropy (nats; 0 = one meaning)",
    "n_clusters": "meaning clusters",
    "mean_similarity": "mean pairwise similarity",
}


@functools.lru_cache(maxsize=65536)  # the same answers' hovers, again at every threshold
def _safe(text, limit: int = HOVER_CHARS, width: int = 60) -> str:
    """Answer text for a hover label: escaped (no markup survives), cut, wrapped. A missing
    answer (an all-error cell's NaN) is empty."""
    text = " ".join(text.split()) if isinstance(text, str) else ""
    if len(text) > limit:
        text = text[:limit] + "…"
    return "<br>".join(_plain(line) for line in textwrap.wrap(text, width) or [""])


def _plain(text) -> str:
    """Text for plotly's labels: its few tags (<a>, <b>, <br>) neutralised. Quotes stay quotes:
    plotly does not decode &quot;, so escaping them would show the entity itself."""
    return html.escape(str(text), quote=False)


AXIS_NAMES = {"variant": "wording", "input": "input", "model": "model", "temperature": "temperature"}


def axis_label(axis: str, value, names: dict | None = None) -> str:
    """How an axis value is shown: T=0.7, the variant's label, input #3 …"""
    if names and value in names:
        return str(names[value])
    if axis == "temperature":
        return f"T={value:g}"
    if axis == "input":
        return f"#{int(value) + 1}"
    return str(value)


def heatmap(rows: list[dict], metric: str = "consistency", y: str = "model", x: str = "temperature",
            names: dict[str, dict] | None = None) -> go.Figure:
    """The grid along two axes (the others aggregated), coloured by a metric; hover shows the
    interval and, within one input, the top answer. `names` maps axis -> value -> label."""
    names = names or {}
    ys = list(dict.fromkeys(r[y] for r in rows))
    ys = sorted(ys) if y == "temperature" else ys
    xs = list(dict.fromkeys(r[x] for r in rows))
    xs = sorted(xs) if x in ("temperature", "variant", "input") else xs
    cells = {}
    for row in rows:
        cells.setdefault((row[y], row[x]), row)
    z, hover = [], []
    for y_value in ys:
        z_row, hover_row = [], []
        for x_value in xs:
            c = cells.get((y_value, x_value))
            if c is None:
                z_row.append(None)
                hover_row.append("no answers")
                continue
            z_row.append(c[metric])
            where = f"{axis_label(y, y_value, names.get(y))} · {axis_label(x, x_value, names.get(x))}"
            if metric == "pass_rate":
                over = f" (mean over {c['inputs']} inputs)" if c["inputs"] > 1 else ""
                interval = (f"({c['interval']})" if c["pass_rate_low"] is None and c.get("interval")
                            else f"[{_pct(c['pass_rate_low'])}–{_pct(c['pass_rate_high'])}]")
                text = (f"<b>{_plain(where)}</b><br>{c['passes']}/{c['answers']} answers pass{over}<br>"
                        f"pass rate {_pct(c['pass_rate'])} {interval}")
                hover_row.append(text)
                continue
            spread_over = (f"mean over {c['inputs']} inputs" if c["inputs"] > 1 else f"{c['n_clusters']} meanings")
            interval = (f"[{_pct(c['consistency_low'])}–{_pct(c['consistency_high'])}]"
                        if c["consistency_low"] is not None or not c.get("interval") else f"({c['interval']})")
            text = (f"<b>{_plain(where)}</b><br>{c['count']} answers, {c['errors']} errors, {spread_over}<br>"
                    f"consistency {_pct(c['consistency'])} {interval}")
            if isinstance(c["top_answer"], str) and c["top_answer"]:
                text += f"<br>top answer:<br>{_safe(c['top_answer'])}"
            hover_row.append(text)
        z.append(z_row)
        hover.append(hover_row)
    reverse = metric in ("entropy", "n_clusters")  # more meanings = more spread: show it hot
    # Tick labels wrapped on a few short lines (never rotated and cut); the whole label is in the hover.
    figure = go.Figure(go.Heatmap(
        z=z, x=[_safe(axis_label(x, v, names.get(x)), 60, 18) for v in xs],
        y=[_safe(axis_label(y, v, names.get(y)), 60, 28) for v in ys], text=hover, hoverinfo="text",
        colorscale="RdYlGn_r" if reverse else "RdYlGn", zmin=0,
        zmax=1 if metric in ("consistency", "mean_similarity", "pass_rate") else None,
        texttemplate="%{z:.2f}", colorbar={"title": {"text": METRIC_LABELS.get(metric, metric)}},
    ))
    # Each row gets room for its wrapped label and its number: the grid is never squashed.
    row_height = 46 if len(ys) <= 20 else 24
    figure.update_layout(title=f"{METRIC_LABELS.get(metric, metric)}: {AXIS_NAMES[y]} × {AXIS_NAMES[x]}",
                         height=170 + row_height * min(len(ys), 60),
                         xaxis={"type": "category", "tickangle": 0, "automargin": True, "side": "bottom"},
                         margin={"l": 10, "r": 10, "t": 50, "b": 10},
                         yaxis={"autorange": "reversed", "type": "category", "automargin": True})
    return figure


def _pct(value) -> str:
    return "–" if value is None or pd.isna(value) else f"{100 * value:.0f}%"


def cluster_bars(cell: dict, top: int = 15) -> go.Figure:
    """One cell's meaning clusters, largest first; hover shows each representative answer."""
    sizes = cell["clusters"][:top]
    labels = [f"#{c['cluster']}" for c in sizes]
    figure = go.Figure(go.Bar(
        x=[c["size"] for c in sizes], y=labels, orientation="h",
        text=[f"{100 * c['share']:.0f}%" for c in sizes], textposition="auto",
        customdata=[c["cluster"] for c in sizes],
        hovertext=[f"{c['size']} answers ({100 * c['share']:.0f}%)<br>{_safe(c['representative'])}" for c in sizes],
        hoverinfo="text", marker_color="#4c78a8",
    ))
    figure.update_layout(
        title=f"{cell['n_clusters']} meaning{'s' if cell['n_clusters'] != 1 else ''} in {cell['count']} answers",
        xaxis_title="answers", yaxis={"autorange": "reversed", "type": "category"},
        height=140 + 28 * len(sizes), margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return figure


def _by_model_and_temperature(df: pd.DataFrame, every: pd.DataFrame | None = None):
    """(rows, trace style) per model and temperature: colour = model, shape = temperature,
    fixed by `every` (all rows, when `df` is a sample). Plain traces: plotly express takes
    ten times as long, most of a second for 10,000 points."""
    every = df if every is None else every
    models = list(dict.fromkeys(every["model"]))
    temperatures = sorted(every["temperature"].unique())
    palette, symbols = px.colors.qualitative.Plotly, ["circle", "diamond", "square", "x", "triangle-up", "cross"]
    for (model, temperature), group in df.groupby(["model", "temperature"], sort=True):
        yield group, {"name": f"{_plain(model)} · T={temperature:g}",
                      "marker": {"color": palette[models.index(model) % len(palette)],
                                 "symbol": symbols[temperatures.index(temperature) % len(symbols)], "size": 8}}


def answer_map(coords: pd.DataFrame, max_points: int = MAP_POINTS) -> go.Figure:
    """Every answer as a point (PCA of its embedding): colour = model, shape = temperature.
    Past `max_points`, a fixed random sample: more points only hide each other."""
    df = coords if len(coords) <= max_points else coords.sample(max_points, random_state=0)
    hover = {text: _safe(text, 200) for text in df["text"].unique()}  # repeated answers: escape once
    figure = go.Figure()
    for group, style in _by_model_and_temperature(df, coords):
        figure.add_trace(go.Scatter(
            x=group["x"], y=group["y"], mode="markers", opacity=0.7, **style,
            hovertext=[f"{hover[t]}<br>cluster #{c}" for t, c in zip(group["text"], group["cluster"])],
            hoverinfo="text",
        ))
    shown = "" if len(df) == len(coords) else f" ({len(df):,} of {len(coords):,} shown)"
    figure.update_layout(title=f"All answers by meaning (nearby = similar){shown}", height=480,
                         xaxis={"showticklabels": False, "title": ""}, yaxis={"showticklabels": False, "title": ""},
                         margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return figure


def length_distributions(answers: pd.DataFrame) -> go.Figure:
    """Answer length (completion tokens) per model, one box per temperature."""
    df = answers.copy()
    df["T"] = df["temperature"].map(lambda t: f"T={t:g}")
    figure = px.box(df, x="model", y="completion_tokens", color="T", points="outliers")
    figure.update_layout(title="Answer length (tokens)", yaxis_title="completion tokens", height=400,
                         margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return figure


def latency_distributions(answers: pd.DataFrame) -> go.Figure:
    figure = px.box(answers, x="model", y="latency_ms", points="outliers")
    figure.update_layout(title="Latency per call (ms)", yaxis_title="ms", height=380,
                         margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return figure


def cost_distributions(answers: pd.DataFrame) -> go.Figure | None:
    """Cost per call per model, over the answers whose price is known; None when none is."""
    known = answers[answers["cost_usd"].notna()]
    if known.empty:
        return None
    figure = px.box(known, x="model", y="cost_usd", points="outliers")
    figure.update_layout(title="Cost per call (USD; models of unknown price left out)", yaxis_title="USD",
                         height=380, margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return figure


def cost_vs_consistency(cells: list[dict]) -> go.Figure | None:
    """Per cell: what a call costs against how often the top meaning comes back; None when
    no cell's cost is known (a cost axis of unknowns would read as $0)."""
    df = pd.DataFrame(cells)
    df = df[df["cost_per_call_mean"].notna()] if "cost_per_call_mean" in df else df.iloc[0:0]
    if df.empty:
        return None
    figure = go.Figure()
    for group, style in _by_model_and_temperature(df):
        figure.add_trace(go.Scatter(
            x=group["cost_per_call_mean"], y=group["consistency"], mode="markers", **style,
            error_y={"type": "data", "symmetric": False, "array": group["consistency_high"] - group["consistency"],
                     "arrayminus": group["consistency"] - group["consistency_low"]},
            hovertext=[f"{count} answers · {k:g} meanings" for count, k in zip(group["count"], group["n_clusters"])],
            hoverinfo="text+x+y"))
    figure.update_layout(title="Cost vs consistency per cell (bars: 95% Wilson interval)",
                         xaxis={"title": "cost per call (USD)"}, yaxis={"range": [0, 1.05], "title": "consistency"},
                         height=400, margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return figure


def wording_share(rows: list[dict], names: dict[str, dict] | None = None) -> go.Figure:
    """Per input and model: the share of the spread of meanings that the wording explains."""
    names = names or {}
    figure = go.Figure()
    for model in dict.fromkeys(row["model"] for row in rows):
        mine = [row for row in rows if row["model"] == model]
        figure.add_trace(go.Bar(
            x=[_safe(axis_label("input", row["input"], names.get("input")), 40) for row in mine],
            y=[row["wording_share"] for row in mine], name=_plain(model),
            hovertext=[f"{row['meanings']} meanings · p = {row['p_value']}"
                       + (" · beyond noise" if row["wording_matters"] else "") for row in mine],
            hoverinfo="text+y",
        ))
    figure.update_layout(title="Share of the spread due to the wording, per input (0 = sampling only)",
                         yaxis={"range": [0, 1], "title": "wording share"}, barmode="group", height=360,
                         xaxis={"type": "category"}, margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return figure


def regress_history(rows: list[dict]) -> go.Figure:
    """A golden set's regress runs over time: pass rate with its interval, one colour per model.
    Dates on the x axis (padded by a day around a lone run, which plotly would otherwise
    scale in milliseconds); the y axis reaches past 0 and 100% so no point hides on it."""
    figure = go.Figure()
    for model in dict.fromkeys(row["model"] for row in rows):
        mine = [row for row in rows if row["model"] == model]
        figure.add_trace(go.Scatter(
            x=[pd.Timestamp(row["created_at"]) for row in mine], y=[row["pass_rate"] for row in mine],
            mode="lines+markers", name=_plain(model), cliponaxis=False,
            error_y={"type": "data", "symmetric": False,
                     "array": [(row["pass_rate_high"] or row["pass_rate"]) - row["pass_rate"] for row in mine],
                     "arrayminus": [row["pass_rate"] - (row["pass_rate_low"] or row["pass_rate"]) for row in mine]},
            # A run without a gate has no verdict (gate None): never shown as "pass".
            hovertext=[f"regress {row['id']} · {row['gate'] or 'no gate set'} · v{row['set_version']} · "
                       f"T={row['temperature']:g} · K={row['n']}" for row in mine], hoverinfo="text+y",
        ))
    times = [pd.Timestamp(row["created_at"]) for row in rows]
    pad = max((max(times) - min(times)) * 0.05, pd.Timedelta(hours=12)) if times else pd.Timedelta(hours=12)
    figure.update_layout(
        title="Pass rate over time (bars: 95% interval)", height=360, margin={"l": 10, "r": 10, "t": 50, "b": 10},
        yaxis={"range": [-0.05, 1.05], "tickformat": ".0%", "title": "pass rate", "zeroline": False},
        xaxis={"type": "date", "title": "when",
               **({"range": [min(times) - pad, max(times) + pad]} if times else {})})
    return figure
