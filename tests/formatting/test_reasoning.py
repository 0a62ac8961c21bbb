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
