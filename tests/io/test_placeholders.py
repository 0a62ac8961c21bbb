from __future__ import annotations

import pytest

from tuneforge.config import DataConfig, DatasetConfig
from tuneforge.errors import DataError
from tuneforge.io import read_samples

IDENTITY = [{"instruction": "who are you?", "input": "", "output": "I am {{name}}, made by {{ author }}."},
            {"instruction": "hi", "input": "", "output": "Hello! I am {{name}}."},
            {"instruction": "code", "input": "", "output": "Use {{ user.name }} in the template."}]


def test_values_fill_every_placeholder(write):
    path = write("identity.json", IDENTITY)
    samples, _ = read_samples(str(path), placeholders={"name": "Forge", "author": "ACME"})
    assert [s.messages[-1].content for s in samples] == [
        "I am Forge, made by ACME.", "Hello! I am Forge.", "Use {{ user.name }} in the template."]


def test_without_values_placeholders_stay_and_are_counted(write):
    samples, report = read_samples(str(write("identity.json", IDENTITY)))
    assert samples[0].messages[-1].content == "I am {{name}}, made by {{ author }}."
    assert dict(report.unfilled) == {"name": 2, "author": 1}


def test_a_placeholder_without_a_value_is_named(write):
    path = write("identity.json", IDENTITY)
    config = DataConfig(datasets=[DatasetConfig(path=str(path))], placeholders={"name": "Forge"})
    with pytest.raises(DataError, match=rf"^{path}:2 \(index 0\): unfilled placeholders: \{{\{{author\}}\}}; "
                                        r"give values with data.placeholders"):
        read_samples(config)
