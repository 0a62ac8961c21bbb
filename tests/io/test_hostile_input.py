"""Hostile nesting (50,000 levels of `[`) is a counted bad record with `file:line`, never a crash,
in every file kind; and a convert that stops leaves no output or rejects file that looks complete."""

from __future__ import annotations

import gzip
import json

import pytest
from typer.testing import CliRunner

from tuneforge.cli import app
from tuneforge.config import DatasetConfig
from tuneforge.errors import DataError
from tuneforge.io import ReadReport, iter_samples
from tuneforge.io.nesting import MAX_DEPTH

runner = CliRunner()
GOOD = json.dumps({"instruction": "Q", "input": "", "output": "A"})
DEEP = 50_000
HOSTILE = ['{"a":' + "[" * DEEP + "]" * DEEP + "}",  # closed: a valid, absurd record
           "[" * DEEP,  # never closed
           '{"instruction": "Q", "output": ' + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + "}"]  # parses, too deep
REASON = f"nested too deeply: more than {MAX_DEPTH} levels of arrays and objects"


def deep_jsonl() -> str:
    """20 hostile lines (even line numbers) between 21 good ones."""
    return "".join(f"{GOOD}\n{HOSTILE[i % 3]}\n" for i in range(20)) + GOOD + "\n"


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("name", ["d.jsonl", "d.jsonl.gz"])
def test_convert_skips_deep_lines_and_counts_them(tmp_path, name):
    src = tmp_path / name
    data = deep_jsonl().encode()
    src.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    result = runner.invoke(app, ["data", "convert", str(src), "-o", str(tmp_path / "out/o.jsonl"),
                                 "--on-error", "skip"])
    assert result.exit_code == 0, result.output
    assert len(lines(tmp_path / "out/o.jsonl")) == 21
    rejects = lines(tmp_path / "out/rejects.jsonl")
    assert [(r["source"], r["line"], r["reason"]) for r in rejects] == [(str(src), 2 * i + 2, REASON)
                                                                         for i in range(20)]
    assert rejects[0]["record"] == HOSTILE[0]  # the raw line, kept for the user
    assert "nested too deeply" in result.output  # the summary names the reason
    assert not list((tmp_path / "out").glob(".*"))  # no temporary file left behind


def test_convert_stops_at_a_deep_line_naming_it_and_writes_nothing(tmp_path):
    src = tmp_path / "d.jsonl"
    src.write_text(deep_jsonl())
    result = runner.invoke(app, ["data", "convert", str(src), "-o", str(tmp_path / "out/o.jsonl")])
    assert isinstance(result.exception, DataError)
    assert str(result.exception) == f"{src}:2: {REASON}"
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_deep_element_of_a_json_array_is_one_bad_record(tmp_path):
    src = tmp_path / "a.json"
    src.write_text("[\n" + ",\n".join([GOOD, HOSTILE[0], GOOD, HOSTILE[2], GOOD]) + "\n]\n")
    report = ReadReport(rejects_path=tmp_path / "rejects.jsonl")
    samples = list(iter_samples(DatasetConfig(path=str(src)), on_error="skip", report=report))
    assert len(samples) == 3 and [s.meta["line"] for s in samples] == [2, 4, 6]
    assert (report.read, report.kept, dict(report.rejected)) == (5, 3, {"nested too deeply": 2}) and report.balanced
    assert [(r["line"], r["record"]) for r in lines(tmp_path / "rejects.jsonl")] == [(3, HOSTILE[0]), (5, HOSTILE[2])]

    result = runner.invoke(app, ["data", "convert", str(src), "-o", str(tmp_path / "o.jsonl")])
    assert str(result.exception) == f"{src}:3 (index 1): {REASON}"
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.parametrize("text", ["[" * DEEP, "[\n" + GOOD + ",\n" + "[" * DEEP])
def test_a_json_file_too_deep_to_parse_is_one_error_naming_it(tmp_path, text):
    src = tmp_path / "a.json"
    src.write_text(text)
    with pytest.raises(DataError, match=rf"^{src}:\d+: malformed JSON: nested too deeply.*never closed"):
        list(iter_samples(DatasetConfig(path=str(src)), on_error="skip"))


def test_a_single_deep_object_in_a_json_file_is_a_bad_record(tmp_path):
    src = tmp_path / "a.json"
    src.write_text(HOSTILE[0])
    report = ReadReport()
    assert list(iter_samples(DatasetConfig(path=str(src)), on_error="skip", report=report)) == []
    assert dict(report.rejected) == {"nested too deeply": 1}


def test_deep_json_inside_a_string_field_is_a_bad_record(tmp_path):
    src = tmp_path / "t.jsonl"
    deep_tools = {"instruction": "Q", "input": "", "output": "A", "tools": "[" * DEEP + "]" * DEEP}
    src.write_text(GOOD + "\n" + json.dumps(deep_tools) + "\n")
    with pytest.raises(DataError, match=rf"^{src}:2: nested too deeply"):
        list(iter_samples(DatasetConfig(path=str(src))))


def test_parquet_nested_past_the_limit_is_an_error_naming_the_file(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    value: object = "x"
    for _ in range(MAX_DEPTH + 5):
        value = [value]
    pq.write_table(pa.table({"text": ["ok"], "extra": [value]}), tmp_path / "p.parquet")
    with pytest.raises(DataError, match=rf"^{tmp_path / 'p.parquet'}: cannot read this parquet file: .*deeply nested"):
        list(iter_samples(DatasetConfig(path=str(tmp_path / "p.parquet")), on_error="skip"))


def test_deep_dataset_info_is_an_error_naming_it(tmp_path):
    info = tmp_path / "dataset_info.json"
    info.write_text("[" * DEEP)
    with pytest.raises(DataError, match=rf"^{info}: not a valid dataset_info.json \(nested too deeply\)"):
        list(iter_samples(DatasetConfig(path=f"{info}#x")))


def test_a_convert_that_stops_leaves_neither_output_nor_rejects(tmp_path):
    """Rejects are written beside the output under a temporary name and renamed only when the
    output is complete; here the run stops on a sample the output format cannot hold."""
    (tmp_path / "a.jsonl").write_text(GOOD + "\n{oops\n")
    (tmp_path / "t.jsonl").write_text('{"text": "plain text has no alpaca form"}\n')
    out = tmp_path / "out"
    result = runner.invoke(app, ["data", "convert", str(tmp_path / "a.jsonl"), str(tmp_path / "t.jsonl"),
                                 "-o", str(out / "o.jsonl"), "--to", "alpaca", "--on-error", "skip"])
    assert isinstance(result.exception, DataError) and "cannot write as alpaca" in str(result.exception)
    assert list(out.iterdir()) == []
    # the same input without the unwritable file: both files appear
    result = runner.invoke(app, ["data", "convert", str(tmp_path / "a.jsonl"), "-o", str(out / "o.jsonl"),
                                 "--to", "alpaca", "--on-error", "skip"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["o.jsonl", "rejects.jsonl"]


def test_a_csv_cell_past_the_csv_module_default_limit_is_read(tmp_path):
    src = tmp_path / "long.csv"
    src.write_text("instruction,input,output\nQ,,A\nQ,," + "x" * 200_000 + "\nQ2,,A2\n")
    samples = list(iter_samples(DatasetConfig(path=str(src))))
    assert [len(s.messages[-1].content) for s in samples] == [1, 200_000, 2]


@pytest.mark.parametrize("damage", ["truncated", "corrupt", "not gzip"])
def test_a_damaged_gz_file_is_one_error_naming_it(tmp_path, damage):
    data = gzip.compress(b"".join(b'{"text": "line %d"}\n' % i for i in range(5000)))
    data = {"truncated": data[: len(data) // 2], "corrupt": data[:20] + bytes(200) + data[220:],
            "not gzip": b'{"text": "x"}\n'}[damage]
    src = tmp_path / "d.jsonl.gz"
    src.write_bytes(data)
    with pytest.raises(DataError, match=rf"^{src}: cannot read this file: "):
        list(iter_samples(DatasetConfig(path=str(src)), on_error="skip"))
