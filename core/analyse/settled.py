"""Cells sampled until settled (core/run/settle.py), seen through the Spread page's meaning.

`judge` is the stopping rule's view of a run: each cell's answers as meaning clusters in
sample order, clustered exactly as the Spread page clusters them (the run's method,
threshold, extract mode and the reviewers' decisions), so a cell the page shows as split
is a cell the rule sees as split. `attach` gives each cell of an analysis its `n`,
`settled` and `stopped_by`, and, for a run sampled until settled, replaces the cell's
fixed-n Wilson interval (not valid after adaptive stopping) with the anytime-valid one.
"""

from __future__ import annotations

from core.store import Store
from core.analyse import embed, spread
from core.config import SpreadError
from core.run import settle
from core.store import settling


def judge(store: Store, run_id: int, *, threshold: float = spread.DEFAULT_THRESHOLD) -> dict[tuple, list]:
    """Per cell (variant, input, model, temperature): its answers' meaning clusters in sample order."""
    analysis = spread.analyse_run(store, run_id, threshold=threshold, with_map=False)
    return meanings(analysis)


def meanings(analysis: spread.Analysis) -> dict[tuple, list]:
    answers = analysis.answers.sort_values("sample_idx", kind="stable")
    out: dict[tuple, list] = {}
    for key, group in answers.groupby(["variant", "input", "model", "temperature"], sort=False):
        out[(int(key[0]), int(key[1]), key[2], float(key[3]))] = group["cluster"].tolist()
    return out


def check_meaning_model(store: Store, embeddings: str = "") -> None:
    """Refuse a run sampled until settled whose meaning model cannot be reached: one line."""
    method = embed.ENDPOINT + embeddings if embeddings else embed.default_method()
    try:
        embed.embed(["Paris", "The capital is Paris."], method, store)
    except Exception as error:  # an endpoint down, a model not installed: the rule could not judge
        shown = embeddings or method
        raise SpreadError(f"--until-settled needs the meaning model {shown!r}, which cannot be reached "
                          f"({type(error).__name__}); nothing was written") from None


def attach(store: Store, analysis: spread.Analysis, run: dict) -> None:
    """Give every cell `n`, `settled` and `stopped_by` (a run sampled until settled), and
    its anytime-valid consistency interval in place of the fixed-n one. For a fixed-N run:
    n is the samples taken, settled None, stopped_by None."""
    with store.connection() as db:
        decided = settling.load(db, run["id"])
        taken = settling.samples_taken(db, run["id"])
    adaptive = bool(run["spec"].get("until_settled"))
    labels = meanings(analysis) if adaptive else {}
    for cell in analysis.cells:
        key = (cell["variant"], cell["input"], cell["model"], float(cell["temperature"]))
        decision = decided.get(key, {})
        cell["n"] = taken.get(key, cell.get("count", 0))
        cell["settled"] = decision.get("settled", False) if adaptive else None
        cell["stopped_by"] = decision.get("stopped_by") if adaptive else None
        if adaptive and key in labels:
            bounds = settle.interval(settle.agreement(labels[key]))
            cell["consistency_low"], cell["consistency_high"] = bounds.low, bounds.high
            cell["interval"] = "anytime-valid (Robbins mixture), 95%"
        else:
            cell.setdefault("interval", "Wilson, 95%")


def squares(analysis: spread.Analysis, rows: list[dict], axes: list[str]) -> list[dict]:
    """A run sampled until settled, along two axes (`rows`: analysis.group(axes), after
    `attach`): a square that is one cell of the run gets that cell's anytime-valid interval;
    a square pooling several cells gets none, since a fixed-n interval over cells stopped
    adaptively would claim more than the data holds (the One cell view has each cell's)."""
    keys = [axis for axis in spread.AXES if axis in axes]
    by_square: dict[tuple, list[dict]] = {}
    for cell in analysis.cells:
        by_square.setdefault(tuple(cell[axis] for axis in keys), []).append(cell)
    out = []
    for row in rows:
        found = by_square.get(tuple(row[axis] for axis in keys), [])
        row = dict(row)  # the analysis keeps its own rows for the tables
        if len(found) == 1 and found[0].get("interval", "").startswith("anytime"):
            row["consistency_low"], row["consistency_high"] = found[0]["consistency_low"], found[0]["consistency_high"]
            row["interval"] = found[0]["interval"]
        else:
            row["consistency_low"] = row["consistency_high"] = None
            row["interval"] = "no interval for pooled cells sampled until settled: see One cell"
        out.append(row)
    return out


def cell_text(cell: dict) -> str:
    """One cell's sampling, in words: 'settled at n=10 (precision)' or 'not settled: stopped at max N=40'."""
    if cell.get("settled") is None:
        return f"{cell['n']} samples (fixed N)"
    if cell["settled"]:
        return f"settled at n={cell['n']}: its consistency interval met the run's precision"
    if cell["stopped_by"] == "max_n":
        return f"not settled: stopped at the run's most samples, n={cell['n']}"
    return f"not settled yet: n={cell['n']}, still sampling"


def summary_text(cells: list[dict], run: dict) -> str:
    """The run's cells sampled until settled, in one line."""
    settled_cells = sum(bool(c.get("settled")) for c in cells)
    taken = sum(c.get("n") or 0 for c in cells)
    precision = run["spec"].get("precision")
    return (f"Sampled until settled (precision {precision:g}, at most {run['spec']['n']} per cell): "
            f"{settled_cells} of {len(cells)} cells settled · {taken:,} samples of at most {run['planned']:,}; "
            "intervals are anytime-valid, so they hold after stopping early")


def reused(analysis: spread.Analysis, cell: dict) -> int:
    """How many of a cell's answers were reused from the answer cache (core/run/cache.py)."""
    answers = analysis.answers
    if "cached_from" not in answers:
        return 0
    mine = ((answers["variant"] == cell["variant"]) & (answers["input"] == cell["input"])
            & (answers["model"] == cell["model"]) & (answers["temperature"] == cell["temperature"]))
    return int(answers.loc[mine, "cached_from"].notna().sum())
