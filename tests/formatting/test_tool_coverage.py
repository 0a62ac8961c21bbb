"""A template never drops content silently: tool calls, tool lists and contents must appear in the
rendering; `template: auto` swaps a template that cannot carry tools for the family's built-in."""

from __future__ import annotations

import json
import re

import pytest

from tuneforge.config import TemplateConfig
from tuneforge.formatting import Encoder, SampleRejected, tokenize_samples
from tuneforge.types import Message, Sample

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
                                           "parameters": {"type": "object",
                                                          "properties": {"city": {"type": "string"}}}}},
         {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}]

# A user's own template that knows nothing of tool calls (like SmolLM2's own).
IGNORES_CALLS = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
# One that drops the system prompt.
IGNORES_SYSTEM = ("{% for m in messages if m.role != 'system' %}<|im_start|>{{ m.role }}\n{{ m.content }}"
                  "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def call_sample(city: str = "Paris") -> Sample:
    return Sample(messages=[
        Message("user", f"Weather in {city}?"),
        Message("assistant", "", tool_calls=[{"name": "get_weather", "arguments": {"city": city}}]),
        Message("tool", '{"temp": 21}', name="get_weather"),
        Message("assistant", f"It is 21 degrees in {city}."),
    ], tools=TOOLS)


@pytest.fixture(scope="module")
def smol(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert "tool" not in tokenizer.chat_template  # SmolLM2's own template has no tool support
    return tokenizer


def test_auto_replaces_a_template_without_tool_support_and_says_so(smol):
    samples = [call_sample("Paris"), call_sample("Rome")]
    ds, stats = tokenize_samples(samples, smol, TemplateConfig(), use_cache=False)
    assert stats.kept == 2 and stats.dropped == {}
    assert stats.template == "chatml"
    assert stats.template_note is not None and "'chatml'" in stats.template_note
    assert "tool calls (2 samples)" in stats.template_note and "tool definitions (2 samples)" in stats.template_note
    for i, city in enumerate(["Paris", "Rome"]):
        text = smol.decode(ds["input_ids"][i])
        assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "' + city + '"}}' in text
        assert '"name": "get_weather"' in text.split("<|im_start|>user")[0]  # the tool list, in the system turn
        assert '"name": "get_time"' in text
        # the call is trained: it is the reply, not an empty turn
        trained = smol.decode([t for t, label in zip(ds["input_ids"][i], ds["labels"][i]) if label != -100])
        assert "get_weather" in trained and city in trained


def test_auto_keeps_the_tokenizers_own_template_for_data_without_tools(smol):
    _, stats = tokenize_samples([Sample(messages=[Message("user", "hi"), Message("assistant", "hello")])], smol,
                                TemplateConfig(), use_cache=False)
    assert stats.template == "auto" and stats.template_note is None and stats.kept == 1


def test_a_template_that_ignores_tool_calls_rejects_the_samples_by_reason(smol):
    samples = [call_sample("Paris"), call_sample("Rome"),
               Sample(messages=[Message("user", "hi"), Message("assistant", "hello")], tools=TOOLS),
               Sample(messages=[Message("user", "hi"), Message("assistant", "hello")])]
    _, stats = tokenize_samples(samples, smol, TemplateConfig(jinja=IGNORES_CALLS), use_cache=False)
    assert stats.template_note is None  # the user's own template is never swapped
    assert stats.dropped == {"template_drops_tool_calls": 2, "template_drops_tools": 1}
    assert stats.kept == 1 and stats.samples == stats.kept + sum(stats.dropped.values())
    assert "get_weather" in stats.rejects[0].detail


def test_a_template_that_drops_content_is_caught(smol):
    sample = Sample(messages=[Message("system", "Answer in French."), Message("user", "hi"),
                              Message("assistant", "bonjour")])
    with pytest.raises(SampleRejected) as e:
        Encoder.create(smol, TemplateConfig(jinja=IGNORES_SYSTEM)).encode(sample)
    assert e.value.reason == "template_drops_content"


def test_arguments_are_compared_by_value_not_key_order():
    from tuneforge.formatting.coverage import dropped

    messages = [Message("user", "Weather?"), Message("assistant", "", tool_calls=[
        {"name": "get_weather", "arguments": json.dumps({"unit": "C", "city": "Paris"})}])]
    reordered = 'Weather? {"name": "get_weather", "arguments": {"city": "Paris", "unit": "C"}}'
    assert dropped(messages, None, reordered) is None
    reason, detail = dropped(messages, None, 'Weather? {"name": "get_weather", "arguments": {"unit": "C"}}')
    assert reason == "template_drops_tool_calls" and "'Paris'" in detail


def test_head_truncation_never_leaves_a_bare_header(smol):
    long = " ".join(f"word{i}" for i in range(300))
    sample = Sample(messages=[Message("user", long), Message("assistant", "Short answer.")])
    enc = Encoder.create(smol, TemplateConfig(cutoff_len=120)).encode(sample)
    assert enc.truncated and len(enc.input_ids) <= 120
    text = smol.decode(enc.input_ids)
    assert text.startswith("<|im_start|>system\n")
    # every header names its role; the user's text lost its head, not its header
    assert re.findall(r"<\|im_start\|>(\w+)\n", text) == ["system", "user", "assistant"]
    assert text.count("<|im_start|>") == 3 and "word299" in text and "word0 " not in text
    assert text.endswith("Short answer.<|im_end|>")


def test_preference_head_truncation_keeps_the_headers(smol):
    long = " ".join(f"word{i}" for i in range(300))
    sample = Sample(messages=[Message("user", long)], chosen=[Message("assistant", "Yes.")],
                    rejected=[Message("assistant", "No.")])
    enc = Encoder.create(smol, TemplateConfig(cutoff_len=100)).encode(sample)
    assert enc.truncated and len(enc.prompt_ids) + max(len(enc.chosen_ids), len(enc.rejected_ids)) <= 100
    prompt = smol.decode(enc.prompt_ids)
    assert re.findall(r"<\|im_start\|>(\w+)\n", prompt) == ["system", "user", "assistant"]
