"""Tool calls, reasoning traces and LLaMA-Factory v1 records: read, held in the data model, written back."""

from __future__ import annotations

import json

import pytest

from tuneforge.config import DataConfig, DatasetConfig
from tuneforge.errors import DataError
from tuneforge.io import iter_samples, read_samples, to_records
from tuneforge.io.convert import convert
from tuneforge.types import Message, Sample

WEATHER = {"type": "function", "function": {"name": "weather", "description": "Weather of a city",
                                            "parameters": {"type": "object"}}}

SHAREGPT = {
    "conversations": [
        {"from": "human", "value": "Weather in Paris and Rome?"},
        {"from": "function_call", "value": '[{"name": "weather", "arguments": {"city": "Paris"}}, '
                                           '{"name": "weather", "arguments": {"city": "Rome"}}]'},
        {"from": "observation", "value": "sunny"},
        {"from": "gpt", "value": "<think>\nIt is sunny.\n</think>\n\nParis is sunny."},
    ],
    "tools": json.dumps([WEATHER["function"]]),
}

OPENAI = {"messages": [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": "Let me check.", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}},
        {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Rome"}'}}]},
    {"role": "tool", "content": "sunny", "tool_call_id": "call_1"},
    {"role": "tool", "content": "rainy", "tool_call_id": "call_2"},
    {"role": "assistant", "content": "Sunny.", "reasoning_content": "Paris said sunny."},
], "tools": [WEATHER]}

V1 = {"messages": [
    {"role": "user", "content": [{"type": "text", "value": "Weather in Paris?"}], "loss_weight": 0.0},
    {"role": "assistant", "content": [
        {"type": "reasoning", "value": "I should call the tool."},
        {"type": "tool_call", "value": '{"name": "weather", "arguments": {"city": "Paris"}}'}], "loss_weight": 1.0},
    {"role": "tool", "content": [{"type": "text", "value": "sunny"}]},
    {"role": "assistant", "content": [{"type": "text", "value": "Sunny."}], "loss_weight": 0.5},
], "tools": json.dumps([WEATHER])}


def read(write, record, fmt="auto"):
    path = write("data.jsonl", [record])
    return list(iter_samples(DatasetConfig(path=str(path), format=fmt)))


def test_openai_tool_calls_with_ids_text_and_reasoning(write):
    [s] = read(write, OPENAI)
    call = s.messages[1]
    assert call.content == "Let me check."
    assert call.calls() == [("call_1", "weather", {"city": "Paris"}), ("call_2", "weather", {"city": "Rome"})]
    assert call.tool_calls[0] == {"id": "call_1", "type": "function",
                                  "function": {"name": "weather", "arguments": {"city": "Paris"}}}
    assert [m.tool_call_id for m in s.messages[2:4]] == ["call_1", "call_2"]
    assert s.messages[4].reasoning == "Paris said sunny." and s.messages[4].content == "Sunny."
    assert s.tools == [WEATHER]


def test_old_tool_call_shape_is_normalised():
    old = Message("assistant", "", tool_calls=[{"name": "f", "arguments": '{"x": 1}'}])
    assert old.tool_calls == [{"type": "function", "function": {"name": "f", "arguments": {"x": 1}}}]
    assert old.calls() == [(None, "f", {"x": 1})]
    assert Sample(messages=[old], tools=[{"name": "f"}]).tools == [{"type": "function", "function": {"name": "f"}}]


def test_sharegpt_function_calls_and_think(write):
    [s] = read(write, SHAREGPT)
    assert s.messages[1].calls() == [(None, "weather", {"city": "Paris"}), (None, "weather", {"city": "Rome"})]
    assert s.messages[2] == Message("tool", "sunny")
    assert (s.messages[3].reasoning, s.messages[3].content) == ("It is sunny.", "Paris is sunny.")
    assert s.tools == [WEATHER]


def test_lf_v1_parts_reasoning_tool_calls_and_loss_weights(write):
    [s] = read(write, V1)
    assert [m.loss_weight for m in s.messages] == [0.0, 1.0, None, 0.5]
    assert s.messages[0].content == "Weather in Paris?"
    assert s.messages[1].reasoning == "I should call the tool."
    assert s.messages[1].calls() == [(None, "weather", {"city": "Paris"})] and s.messages[1].content == ""
    assert s.tools == [WEATHER]


def test_v1_is_detected_and_text_value_parts_are_read_as_messages_too(write):
    from tuneforge.io.detect import detect_format
    assert detect_format(V1, {}, "x") == "lf_v1"
    assert detect_format(OPENAI, {}, "x") == "messages"
    [s] = read(write, {"messages": [{"role": "user", "content": [{"type": "text", "value": "Q"}]},
                                    {"role": "assistant", "content": "A"}]}, fmt="messages")
    assert s.messages[0].content == "Q"


def test_unsupported_part_names_its_type_not_text(write, tmp_path):
    path = write("data.jsonl", [{"messages": [{"role": "user", "content": [{"type": "image_url", "value": "x"}]},
                                              {"role": "assistant", "content": "A"}]}])
    with pytest.raises(DataError) as e:
        list(iter_samples(DatasetConfig(path=str(path), format="messages")))
    assert "'image_url'" in str(e.value) and "'text'" not in str(e.value)


@pytest.mark.parametrize("record,fmt", [(SHAREGPT, "sharegpt"), (OPENAI, "messages"), (V1, "lf_v1")])
def test_data_convert_round_trips(write, tmp_path, record, fmt):
    src = write("in.jsonl", [record])
    # through the canonical form and back to the same format
    convert(DataConfig(datasets=[DatasetConfig(path=str(src), format=fmt)]), tmp_path / "mid.jsonl")
    convert(DataConfig(datasets=[DatasetConfig(path=str(tmp_path / "mid.jsonl"))]), tmp_path / "out.jsonl", to=fmt)
    [back] = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    original, _ = read_samples(str(src))
    again, _ = read_samples(str(tmp_path / "out.jsonl"))
    assert [m.to_dict() for m in again[0].messages] == [m.to_dict() for m in original[0].messages]
    assert again[0].tools == original[0].tools
    if fmt == "sharegpt":
        assert back == record
    if fmt == "messages":
        assert back["messages"][1]["tool_calls"] == OPENAI["messages"][1]["tool_calls"]
        assert back["messages"][2]["tool_call_id"] == "call_1"
        assert back["messages"][4]["reasoning_content"] == "Paris said sunny."


def test_v1_converts_to_openai_messages_keeping_everything(write):
    samples, _ = read_samples(str(write("in.jsonl", [V1])))
    [rec] = to_records(samples, "messages")
    assert rec["messages"][1]["reasoning_content"] == "I should call the tool."
    assert rec["messages"][3]["loss_weight"] == 0.5
    with pytest.raises(DataError, match="loss_weight"):
        list(to_records(samples, "sharegpt"))
