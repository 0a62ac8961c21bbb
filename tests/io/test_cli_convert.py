from __future__ import annotations

import json

from typer.testing import CliRunner

from tuneforge.cli import app
from tuneforge.errors import DataError

runner = CliRunner()
RECORDS = [{"instruction": "Q", "input": "", "output": "I am {{name}}."},
           {"instruction": "Q2", "input": "in", "output": "A2"}]


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_convert_to_canonical_and_back(write, tmp_path):
    src = write("a.json", RECORDS)
    result = runner.invoke(app, ["data", "convert", str(src), "-o", str(tmp_path / "c.jsonl")])
    assert result.exit_code == 0, result.output
    assert "records read" in result.output and "records still hold {{name}}" in result.output
    canonical = lines(tmp_path / "c.jsonl")
    assert canonical[1]["messages"] == [{"role": "user", "content": "Q2\nin"}, {"role": "assistant", "content": "A2"}]
    result = runner.invoke(app, ["data", "convert", str(tmp_path / "c.jsonl"), "-o", str(tmp_path / "b.json"),
                                 "--to", "alpaca"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "b.json").read_text()) == RECORDS


def test_convert_fills_placeholders_and_maps_columns(write, tmp_path):
    src = write("a.jsonl", [{"q": "Who?", "a": "I am {{name}}."}])
    result = runner.invoke(app, ["data", "convert", str(src), "-o", str(tmp_path / "o.jsonl"), "--to", "messages",
                                 "--format", "alpaca", "--column", "instruction=q", "--column", "output=a",
                                 "--set-placeholder", "name=Forge"])
    assert result.exit_code == 0, result.output
    assert lines(tmp_path / "o.jsonl") == [{"messages": [{"role": "user", "content": "Who?"},
                                                         {"role": "assistant", "content": "I am Forge."}]}]


def test_bad_record_stops_with_file_and_line(write, tmp_path):
    src = write("a.jsonl", [RECORDS[1], {"instruction": "Q"}])
    result = runner.invoke(app, ["data", "convert", str(src), "-o", str(tmp_path / "o.jsonl")])
    assert result.exit_code != 0
    assert isinstance(result.exception, DataError)
    assert str(result.exception) == f"{src}:2: missing required field 'output'"
    assert not (tmp_path / "o.jsonl").exists()


def test_skip_writes_rejects_and_prints_counts(write, tmp_path):
    src = write("a.jsonl", [RECORDS[1], {"instruction": "Q"}, RECORDS[1]])
    result = runner.invoke(app, ["data", "convert", str(src), "-o", str(tmp_path / "out/o.jsonl"),
                                 "--on-error", "skip"])
    assert result.exit_code == 0, result.output
    assert "missing required field 'output'" in result.output
    assert len(lines(tmp_path / "out/o.jsonl")) == 2
    assert lines(tmp_path / "out/rejects.jsonl") == [
        {"source": str(src), "line": 2, "reason": "missing required field 'output'", "record": {"instruction": "Q"}}]


def test_bad_option_values_are_usage_errors(write, tmp_path):
    src = write("a.json", RECORDS)
    result = runner.invoke(app, ["data", "convert", str(src), "-o", "x.jsonl", "--to", "xml"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["data", "convert", str(src), "-o", "x.jsonl", "--set-placeholder", "name"])
    assert result.exit_code == 2 and "expected NAME=VALUE" in result.output


def test_help_lists_the_formats():
    result = runner.invoke(app, ["data", "convert", "--help"])
    assert result.exit_code == 0
    for word in ("alpaca", "sharegpt", "messages", "--on-error", "--rejects", "--set-placeholder"):
        assert word in result.output
