"""Timestamps as every table stores them: UTC, ISO 8601, milliseconds."""

from datetime import datetime, timezone


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
