"""A regress report in plain words, for the Regression page and `spread regress` alike:
the verdict first (pass, fail, or cannot tell yet and what would settle it), every
change signed the same way (a drop is negative), intervals that never read "0% – 0%",
items by their prompt and variables, and cost that is never a made-up $0."""

from __future__ import annotations

from core import display
from core.evaluate import power

HEADINGS = {"pass": "pass — the gate holds", "fail": "fail — a gate is broken",
            "inconclusive": "cannot tell yet (inconclusive)"}
NO_GATE = "no gate set"  # a run without a gate has no verdict: never read as "pass"


def pct(value: float | None) -> str:
    """A share as a percentage: whole points, one decimal under 10%."""
    if value is None:
        return "?"
    return f"{value:.1%}" if 0 < abs(value) < 0.1 else f"{value:.0%}"


def signed_pct(value: float | None) -> str:
    """A change as a signed percentage; a drop is negative (− sign)."""
    if value is None:
        return "?"
    text = pct(abs(value))
    return "±0%" if value == 0 else ("+" if value > 0 else "−") + text


def interval(low: float | None, high: float | None, signed: bool = False) -> str:
    form = signed_pct if signed else pct
    return f"{form(low)} – {form(high)}"


def heading(result: dict) -> str | None:
    """The verdict in a few words; None when no gate was set (nothing was judged)."""
    return HEADINGS[result["gate"]] if result["gates"] else None


def summary(result: dict) -> str | None:
    """One or two sentences that say what the verdict means; None when no gate was set."""
    if not result["gates"]:
        return None
    broken = [g for g in result["gates"] if g["verdict"] == result["gate"]]
    if result["gate"] == "pass":
        return f"Every gate holds: {'; '.join(gate_text(g) for g in result['gates'])}."
    if result["gate"] == "fail":
        return f"The data shows the candidate breaks the gate: {'; '.join(gate_text(g) for g in broken)}."
    return (f"The candidate looks short of the gate, but the data cannot tell that from sampling noise: "
            f"{'; '.join(gate_text(g) for g in broken)}. {settle_text(result['samples_to_settle'], result)}")


def gate_text(g: dict) -> str:
    """One gate's figure against its threshold, with its interval or p-value."""
    if g["gate"] == "min-pass-rate":
        return (f"pass rate {pct(g['value'])} (95% interval {interval(g['low'], g['high'])}) "
                f"against a minimum of {pct(g['threshold'])}")
    allowed = f"drops up to {pct(g['threshold'])} allowed" if g["threshold"] else "no drop allowed"
    return f"change vs baseline {signed_pct(g['change'])}, {allowed} (p = {g['p_value']:.3g})"


def settle_text(samples: int | None, result: dict) -> str:
    if samples is not None:
        both = " in both runs" if result.get("baseline_id") is not None else ""
        return f"About {samples} samples per item{both} (--n {samples}) would settle it."
    if any(g["gate"] == "min-pass-rate" and g["verdict"] == "inconclusive" and g["samples_to_settle"] is None
           for g in result["gates"]):
        return "More samples per item will not settle it: the items differ too much among themselves; more items would."
    return f"It would take more than {power.MAX_SAMPLES:,} samples per item to settle."


def result_cost(result: dict) -> str:
    """The cost of a regress run, never a made-up $0; reports recorded before it was kept say "unknown"."""
    if "cost_usd_known" not in result:
        return "unknown"
    return display.usd(result["cost_usd_known"], result["answers_with_unknown_cost"])


def worst_first(items: list[dict]) -> list[dict]:
    """Items by change against the baseline (most negative first), then by pass rate."""
    return sorted(items, key=lambda i: (i.get("change") if i.get("change") is not None else 0,
                                        i["pass_rate"] if i["pass_rate"] is not None else 1))


def item_rows(result: dict) -> list[dict]:
    """The items, worst change first, with plain column names."""
    return [{
        "item": i["label"], "prompt": i["prompt"], "passes": f"{i['passes']}/{i['samples']}",
        "pass rate": pct(i["pass_rate"]),
        "95% interval": interval(i["pass_rate_low"], i["pass_rate_high"]) if i["pass_rate_low"] is not None else "",
        "baseline": pct(i["baseline_pass_rate"]) if i.get("baseline_pass_rate") is not None else "",
        "change": signed_pct(i["change"]) if i.get("change") is not None else "",
        "p (Holm)": i.get("p_adjusted"), "regressed": i.get("regressed", False), "all pass": i["all_pass"],
        "meanings": i["meanings"], "could not check": i.get("unchecked", 0),
    } for i in worst_first(result["items"])]


def item_title(item: dict) -> str:
    return (f"{item['label']} · {item['passes']}/{item['samples']} pass"
            + (f" · {signed_pct(item['change'])}" if item.get("change") is not None else "")
            + (" · regressed" if item.get("regressed") else "")
            + (f" · {item['unchecked']} could not be checked" if item.get("unchecked") else ""))


def history_rows(past: list[dict]) -> list[dict]:
    return [{"regress": row["id"], "when": row["created_at"][:16].replace("T", " "), "model": row["model"],
             "set version": row["set_version"], "samples per item": row["n"], "temperature": row["temperature"],
             "verdict": row["gate"] or NO_GATE, "pass rate": pct(row["pass_rate"]),
             "95% interval": interval(row["pass_rate_low"], row["pass_rate_high"]),
             "baseline": row["baseline_id"], "by": row["created_by"]} for row in past]
