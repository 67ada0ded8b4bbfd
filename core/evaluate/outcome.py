"""What a check concluded about one answer (core/evaluate/checks.py, tool_checks.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Outcome:
    passed: bool | None  # None: the check could not be made (a judge's call failed, a cost unknown)
    score: float | None = None
    reason: str = ""
    judge_calls: int = 0
    judge_cost_usd: float | None = 0.0
