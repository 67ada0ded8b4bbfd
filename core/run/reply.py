"""What one call to a model returns, whichever way it travelled (core/run/llm.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Sample:
    text: str
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    provider_model: str | None
    ttft_ms: float | None
    deployment: str | None = None  # which deployment of a model group answered


class TruncatedStream(Exception):
    """A stream that broke or ended before the answer finished: worth another attempt."""
