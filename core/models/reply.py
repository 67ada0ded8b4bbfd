"""What one call to a model returns, whichever way it travelled (core/models/llm.py)."""

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
    tool_calls: list[dict] | None = None  # [{name, arguments (parsed)}], in the order called
    # The provider's name for its backend configuration (OpenAI's `system_fingerprint`):
    # when it changes, the same model name may answer differently (core/watch/signals.py).
    system_fingerprint: str | None = None


def _field(item, name: str):
    """A field of a provider's object or of its JSON (the direct route reads dicts)."""
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def message_tool_calls(message) -> list[dict] | None:
    """A whole answer's tool calls as stored: [{name, arguments (parsed)}] in order."""
    from core.prompts import shapes

    calls = _field(message, "tool_calls") or []
    return [shapes.call_record(_field(_field(call, "function"), "name"), _field(_field(call, "function"), "arguments"))
            for call in calls] or None


class ToolCallDeltas:
    """A streamed answer's tool calls, put together from their pieces: each chunk carries a
    call's index and, once, its name; its arguments arrive as pieces of one JSON text."""

    def __init__(self):
        self._calls: dict[int, list] = {}

    def add(self, deltas) -> None:
        for delta in deltas or ():
            index = _field(delta, "index")
            call = self._calls.setdefault(len(self._calls) if index is None else index, ["", []])
            function = _field(delta, "function")
            if function is not None:
                call[0] = _field(function, "name") or call[0]
                if _field(function, "arguments"):
                    call[1].append(_field(function, "arguments"))

    def calls(self) -> list[dict] | None:
        from core.prompts import shapes

        return [shapes.call_record(name, "".join(pieces)) for _, (name, pieces) in sorted(self._calls.items())] or None


class TruncatedStream(Exception):
    """A stream that broke or ended before the answer finished: worth another attempt."""
