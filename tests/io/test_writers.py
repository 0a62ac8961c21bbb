from __future__ import annotations

import gzip
import json

import pytest

from tuneforge.errors import TuneforgeError
from tuneforge.io import read_samples, write_samples
from tuneforge.types import Message, Sample

SAMPLES = [
    Sample(messages=[Message("user", "Q"), Message("assistant", "A")], id="a",
           meta={"source": "x.json", "line": 2, "layout": {"input_len": 0}}),
    Sample(messages=[Message("system", "S"), Message("user", "Q2"),
                     Message("assistant", "", tool_calls=[{"name": "f", "arguments": {"x": 1}}]),
                     Message("tool", "out", name="f"), Message("assistant", "done")],
           tools=[{"name": "f", "parameters": {"type": "object"}}], task="t",
           meta={"source": "y.jsonl", "line": 1, "score": 0.5}),
    Sample(text="raw text", meta={"source": "c4.jsonl", "line": 9}),
    Sample(messages=[Message("user", "P")], chosen=[Message("assistant", "good")],
           rejected=[Message("assistant", "bad")], meta={"source": "dpo.json", "line": 3}),
]


@pytest.mark.parametrize("name", ["out.jsonl", "out.json", "out.jsonl.gz", "out.json.gz", "out.parquet"])
def test_canonical_round_trip_through_each_container(tmp_path, name):
    if name.endswith(".parquet"):
        pytest.importorskip("pyarrow")
    assert write_samples(SAMPLES, tmp_path / name) == 4
    samples, report = read_samples(str(tmp_path / name))
    assert samples == SAMPLES and report.read == 4


def test_json_output_is_an_indented_array(tmp_path):
    write_samples(SAMPLES[:1], tmp_path / "out.json", to="alpaca")
    text = (tmp_path / "out.json").read_text()
    assert json.loads(text) == [{"instruction": "Q", "input": "", "output": "A", "id": "a"}]
    assert text.startswith('[\n  {\n    "instruction": "Q",')


def test_empty_input_writes_an_empty_file(tmp_path):
    assert write_samples([], tmp_path / "out.json") == 0
    assert json.loads((tmp_path / "out.json").read_text()) == []
    assert write_samples([], tmp_path / "out.jsonl.gz") == 0
    assert gzip.decompress((tmp_path / "out.jsonl.gz").read_bytes()) == b""


def test_a_failed_write_leaves_no_output(tmp_path):
    with pytest.raises(TuneforgeError, match="x.json:2: cannot write as text: a chat sample has no text form"):
        write_samples(SAMPLES, tmp_path / "out.jsonl", to="text")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["out.csv", "out.parquet.gz"])
def test_unsupported_output_names_are_refused(tmp_path, name):
    with pytest.raises(TuneforgeError, match=f"cannot write '{name}'"):
        write_samples(SAMPLES, tmp_path / name)
