"""Each format -> Sample with exact contents, and back with nothing lost."""

from __future__ import annotations

import pytest

from tuneforge.config import DatasetConfig
from tuneforge.errors import ConfigError
from tuneforge.io import iter_samples, read_samples, to_records
from tuneforge.types import Message, Sample

TOOLS = [{"name": "add", "description": "Add numbers", "parameters": {"type": "object"}}]


def read_one(write, record, fmt="auto", **config):
    path = write("data.jsonl", [record])
    return list(iter_samples(DatasetConfig(path=str(path), format=fmt, **config)))


def round_trip(write, records, to):
    samples, _ = read_samples(str(write("data.jsonl", records)))
    return list(to_records(samples, to))


def test_alpaca_with_system_and_history(write):
    record = {"instruction": "And now?", "input": "x=2", "output": "4", "system": "Be exact.",
              "history": [["x=1, double it", "2"]]}
    [s] = read_one(write, record)
    assert s.messages == [Message("system", "Be exact."), Message("user", "x=1, double it"),
                          Message("assistant", "2"), Message("user", "And now?\nx=2"), Message("assistant", "4")]
    assert s.meta["layout"] == {"input_len": 3}
    assert round_trip(write, [record], "alpaca") == [record]


def test_alpaca_instruction_with_newlines_splits_back_exactly(write):
    record = {"instruction": "Line one\nline two", "input": "in\nput", "output": "ok", "id": "r1", "score": 5}
    [s] = read_one(write, record)
    assert s.messages[0].content == "Line one\nline two\nin\nput"
    assert (s.id, s.meta["extra"]) == ("r1", {"score": 5})
    assert round_trip(write, [record], "alpaca") == [record]


def test_alpaca_ranking_is_preference(write):
    record = {"instruction": "Pick", "input": "", "chosen": "good", "rejected": "bad"}
    [s] = read_one(write, record)
    assert (s.kind, s.chosen, s.rejected) == ("preference", [Message("assistant", "good")],
                                              [Message("assistant", "bad")])
    assert round_trip(write, [record], "alpaca") == [record]


def test_alpaca_column_mapping(write):
    [s] = read_one(write, {"question": "Q", "answer": "A"}, fmt="alpaca",
                   columns={"instruction": "question", "output": "answer"})
    assert s.messages == [Message("user", "Q"), Message("assistant", "A")]


def test_unknown_column_field_names_the_closest(write):
    with pytest.raises(ConfigError,
                       match="'instrution' is not a field of the alpaca format; did you mean 'instruction'"):
        read_one(write, {"instruction": "Q", "output": "A"}, fmt="alpaca", columns={"instrution": "q"})


SHAREGPT_TOOLS = {
    "conversations": [
        {"from": "human", "value": "What is 2+3?"},
        {"from": "function_call", "value": '{"name": "add", "arguments": {"a": 2, "b": 3}}'},
        {"from": "observation", "value": "5"},
        {"from": "gpt", "value": "It is 5."},
    ],
    "system": "You can call tools.",
    "tools": '[{"name": "add", "description": "Add numbers", "parameters": {"type": "object"}}]',
}


def test_sharegpt_tool_calls_observations_and_tools(write):
    [s] = read_one(write, SHAREGPT_TOOLS)
    assert s.messages == [
        Message("system", "You can call tools."),
        Message("user", "What is 2+3?"),
        Message("assistant", "", tool_calls=[{"name": "add", "arguments": {"a": 2, "b": 3}}]),
        Message("tool", "5"),
        Message("assistant", "It is 5."),
    ]
    assert s.tools == [{"type": "function", "function": TOOLS[0]}]  # OpenAI's shape
    assert round_trip(write, [SHAREGPT_TOOLS], "sharegpt") == [SHAREGPT_TOOLS]


def test_sharegpt_custom_tags(write):
    record = {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"},
                           {"role": "assistant", "content": "A"}]}
    tags = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}
    [s] = read_one(write, record, fmt="sharegpt", columns={"conversations": "messages"}, tags=tags)
    assert s.messages == [Message("system", "S"), Message("user", "Q"), Message("assistant", "A")]


def test_sharegpt_preference_like_dpo_en_demo(write):
    record = {"conversations": [{"from": "system", "value": "S"}, {"from": "human", "value": "Q"}],
              "chosen": {"from": "gpt", "value": "good"}, "rejected": {"from": "gpt", "value": "bad"}}
    [s] = read_one(write, record)
    assert s.messages == [Message("system", "S"), Message("user", "Q")]
    assert (s.chosen, s.rejected) == ([Message("assistant", "good")], [Message("assistant", "bad")])
    assert round_trip(write, [record], "sharegpt") == [record]


def test_openai_messages_with_text_parts_and_openai_tool_calls(write):
    record = {"messages": [
        {"role": "user", "content": [{"type": "text", "text": "Add"}, {"type": "text", "text": "2 and 3"}]},
        {"role": "assistant", "content": None,
         "tool_calls": [{"type": "function", "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'}}]},
        {"role": "tool", "content": "5", "name": "add"},
        {"role": "assistant", "content": "5"},
    ], "tools": [{"type": "function", "function": TOOLS[0]}]}
    [s] = read_one(write, record)
    assert s.messages == [Message("user", "Add\n2 and 3"),
                          Message("assistant", "", tool_calls=[{"name": "add", "arguments": {"a": 2, "b": 3}}]),
                          Message("tool", "5", name="add"), Message("assistant", "5")]
    assert s.tools == [{"type": "function", "function": TOOLS[0]}]  # OpenAI's shape
    [back] = round_trip(write, [record], "messages")
    assert back["messages"][1] == {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'}}]}
    assert back["tools"] == record["tools"]


def test_messages_plain_round_trip(write):
    record = {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"},
                           {"role": "assistant", "content": "A"}], "id": "m1"}
    assert round_trip(write, [record], "messages") == [record]


def test_text_field(write):
    [s] = read_one(write, {"text": "Once upon a time.", "url": "http://x"})
    assert (s.kind, s.text, s.meta["extra"]) == ("text", "Once upon a time.", {"url": "http://x"})
    assert round_trip(write, [{"text": "T", "url": "u"}], "text") == [{"text": "T", "url": "u"}]


@pytest.mark.parametrize("record, prompt, chosen", [
    ({"prompt": "Q", "chosen": "good", "rejected": "bad"},
     [Message("user", "Q")], [Message("assistant", "good")]),
    ({"prompt": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}],
      "chosen": [{"role": "assistant", "content": "good"}], "rejected": [{"role": "assistant", "content": "bad"}]},
     [Message("system", "S"), Message("user", "Q")], [Message("assistant", "good")]),
    ({"chosen": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "good"}],
      "rejected": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "bad"}]},
     [Message("user", "Q")], [Message("assistant", "good")]),
], ids=["strings", "lists", "full-conversations"])
def test_preference_shapes(write, record, prompt, chosen):
    [s] = read_one(write, record)
    assert (s.kind, s.messages, s.chosen, s.rejected[0].content) == ("preference", prompt, chosen, "bad")
    assert round_trip(write, [record], "preference") == [record]


def test_self_instruct_one_sample_per_instance_and_back(write):
    record = {"id": "t1", "name": "math", "instruction": "Add.",
              "instances": [{"input": "1 2", "output": "3"}, {"input": "", "output": "0"}], "is_classification": False}
    samples, report = read_samples(str(write("seed.jsonl", [record])))
    assert [[(m.role, m.content) for m in s.messages] for s in samples] == [
        [("user", "Add.\n1 2"), ("assistant", "3")], [("user", "Add."), ("assistant", "0")]]
    assert (report.read, report.kept, report.samples) == (1, 1, 2)
    assert {s.id for s in samples} == {"t1"}
    assert list(to_records(samples, "self_instruct")) == [record]


def test_canonical_keeps_everything(write):
    sample = Sample(messages=[Message("user", "Q"), Message("assistant", "A")], tools=TOOLS, task="math",
                    id="c1", meta={"source": "orig.json", "line": 7, "quality": 0.9})
    [s] = read_one(write, sample.to_dict())
    assert s == sample  # the original provenance wins over the canonical file's


def test_task_from_config_is_set_on_every_sample(write):
    [s] = read_one(write, {"text": "T"}, task="pretrain")
    assert s.task == "pretrain"


@pytest.mark.parametrize("to, message", [
    ("alpaca", "cannot write as alpaca: no alpaca form: alpaca holds alternating user/assistant turns"),
    ("text", "cannot write as text: a chat sample has no text form"),
])
def test_writer_refuses_what_a_format_cannot_hold(write, to, message):
    samples, _ = read_samples(str(write("data.jsonl", [SHAREGPT_TOOLS])))
    with pytest.raises(Exception, match=message):
        list(to_records(samples, to))


def test_config_accepts_exactly_the_registered_formats():
    from typing import get_args

    from tuneforge.io import FORMATS

    assert set(get_args(DatasetConfig.model_fields["format"].annotation)) == {"auto", *FORMATS}
