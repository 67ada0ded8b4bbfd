"""The promptfoo export keeps a golden item's conversation and tools."""

import yaml

from core.formats import golden_files
from core.review import golden
from test_prompt_shapes import WEATHER

CHAT = [{"role": "system", "content": "You answer with a tool call."},
        {"role": "user", "content": "Weather in Rome?"},
        {"role": "assistant", "content": "get_weather(Rome)"},
        {"role": "user", "content": "And in Paris?"}]
FORMAT = {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}, "strict": True}}


def test_the_promptfoo_export_keeps_the_few_shot_turns_tools_and_response_format(store):
    golden.create_set(store, "chat")
    golden.add_items(store, "chat", [
        golden.Item(prompt="And in Paris?", system="You answer with a tool call.", messages=CHAT,
                    shape={"tools": WEATHER, "tool_choice": "auto", "response_format": FORMAT},
                    reference="Sunny."),
        golden.Item(prompt="Capital of Peru?", reference="Lima.")])
    text = golden_files.export(store, "chat", "promptfoo").decode()
    assert "'{{ messages | dump }}'" in text.splitlines()[1]
    conversation, plain = sorted(yaml.safe_load(text), key=lambda t: "messages" not in t["vars"])
    assert conversation["vars"]["messages"] == CHAT  # the few-shot turns, in order, as sent
    assert conversation["vars"]["prompt"] == "And in Paris?"
    assert conversation["options"] == {"tools": WEATHER, "tool_choice": "auto", "response_format": FORMAT}
    assert "messages" not in plain["vars"] and "options" not in plain
    assert plain["vars"]["prompt"] == "Capital of Peru?"
