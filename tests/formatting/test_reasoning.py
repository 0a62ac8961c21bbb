"""Reasoning traces (template.reasoning) and loss weights at encoding time."""

from __future__ import annotations

import pytest

from tuneforge.config import TemplateConfig
from tuneforge.formatting import IGNORE, Encoder, SampleRejected
from tuneforge.types import Message, Sample

CHAT = [Message("user", "Q1"), Message("assistant", "A1", reasoning="r1"),
        Message("user", "Q2"), Message("assistant", "A2", reasoning="r2")]


def trained(char_tokenizer, mode):
    enc = Encoder.create(char_tokenizer, TemplateConfig(name="chatml", reasoning=mode)).encode(Sample(messages=CHAT))
    return char_tokenizer.decode([t for t in enc.labels if t != IGNORE])


@pytest.mark.parametrize("mode,expected", [
    ("keep", "<think>\nr1\n</think>\n\nA1<|im_end|><think>\nr2\n</think>\n\nA2<|im_end|>"),
    ("drop", "A1<|im_end|>A2<|im_end|>"),
    ("drop_history", "A1<|im_end|><think>\nr2\n</think>\n\nA2<|im_end|>"),
])
def test_reasoning_modes_render_and_train(char_tokenizer, mode, expected):
    assert trained(char_tokenizer, mode) == expected


def test_loss_weight_stays_with_a_reasoning_reply(char_tokenizer):
    sample = Sample(messages=[Message("user", "Q"), Message("assistant", "A", reasoning="r", loss_weight=0.5)])
    enc = Encoder.create(char_tokenizer, TemplateConfig(name="chatml", reasoning="keep")).encode(sample)
    assert char_tokenizer.decode([t for t in enc.labels if t != IGNORE]) == "<think>\nr\n</think>\n\nA<|im_end|>"
    assert {w for w, y in zip(enc.weights, enc.labels) if y != IGNORE} == {0.5}


def test_loss_weight_on_a_preference_pair_is_refused_not_ignored(char_tokenizer):
    sample = Sample(messages=[Message("user", "Q", loss_weight=1.0)], chosen=[Message("assistant", "A")],
                    rejected=[Message("assistant", "B")])
    with pytest.raises(SampleRejected, match="loss_weight"):
        Encoder.create(char_tokenizer, TemplateConfig(name="chatml")).encode(sample)


# A thinking model's template in Qwen3's manner: reasoning has its own slot (`reasoning_content`) and is
# shown only in the turns after the last user message.
THINKING_JINJA = (
    "{%- set ns = namespace(last_query=-1) %}"
    "{%- for m in messages %}{%- if m.role == 'user' %}{%- set ns.last_query = loop.index0 %}{%- endif %}"
    "{%- endfor %}"
    "{%- for m in messages %}"
    "{%- if m.role == 'assistant' %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if loop.index0 > ns.last_query and m.reasoning_content %}"
    "{{- '<think>\\n' + m.reasoning_content + '\\n</think>\\n\\n' }}{%- endif %}"
    "{{- m.content + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")


def encode(char_tokenizer, sample, **template):
    return Encoder.create(char_tokenizer, TemplateConfig(**template)).encode(sample)


def test_a_template_with_a_reasoning_slot_renders_the_trace_there_once(char_tokenizer):
    enc = encode(char_tokenizer, Sample(messages=CHAT), jinja=THINKING_JINJA, reasoning="drop_history")
    text = char_tokenizer.decode(enc.input_ids)
    assert text.count("<think>") == 1 and "r1" not in text  # the template's own slot, not a second block
    assert char_tokenizer.decode([t for t in enc.labels if t != IGNORE]) == (
        "A1<|im_end|><think>\nr2\n</think>\n\nA2<|im_end|>")


def test_keeping_history_reasoning_where_the_template_hides_it_says_what_to_set(char_tokenizer):
    with pytest.raises(SampleRejected, match="template.reasoning: drop_history"):
        encode(char_tokenizer, Sample(messages=CHAT), jinja=THINKING_JINJA, reasoning="keep")


def test_a_slot_template_that_does_not_render_the_trace_is_caught(char_tokenizer):
    ignores_it = "{#- reasoning_content is not used -#}" + THINKING_JINJA.replace("m.reasoning_content %}", "false %}")
    sample = Sample(messages=CHAT[:2])
    with pytest.raises(SampleRejected) as e:
        encode(char_tokenizer, sample, jinja=ignores_it)
    assert e.value.reason == "template_drops_reasoning"
    assert encode(char_tokenizer, sample, jinja=ignores_it, reasoning="drop").input_ids  # left out on purpose


def test_reasoning_format_writes_traces_for_templates_without_a_slot(char_tokenizer):
    enc = encode(char_tokenizer, Sample(messages=CHAT[:2]), name="chatml",
                 reasoning_format="<reasoning>{reasoning}</reasoning>\n")
    assert char_tokenizer.decode([t for t in enc.labels if t != IGNORE]) == "<reasoning>r1</reasoning>\nA1<|im_end|>"


def test_reasoning_format_needs_its_placeholder():
    from tuneforge.config import build_config
    from tuneforge.errors import ConfigError

    with pytest.raises(ConfigError, match="template.reasoning_format"):
        build_config({"template": {"reasoning_format": "<think></think>"}})
