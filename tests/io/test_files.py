"""File kinds, folders, globs: which records come out, with which line numbers."""

from __future__ import annotations

import gzip
import json

import pytest

from tuneforge.errors import DataError
from tuneforge.io import read_samples
from tuneforge.types import Message

ALPACA = [{"instruction": "Say hi", "input": "", "output": "Hi"},
          {"instruction": "Add", "input": "1 2", "output": "3"}]


def contents(samples):
    return [[(m.role, m.content) for m in s.messages] for s in samples]


def test_json_array_records_know_their_line(write):
    path = write("a.json", ALPACA)  # indent=2: records open on lines 2 and 7
    samples, report = read_samples(str(path))
    assert contents(samples) == [[("user", "Say hi"), ("assistant", "Hi")],
                                 [("user", "Add\n1 2"), ("assistant", "3")]]
    assert [s.where for s in samples] == [f"{path}:2", f"{path}:7"]
    assert (report.read, report.kept, report.samples) == (2, 2, 2)


def test_single_json_object_is_one_record(write):
    path = write("one.json", ALPACA[0])
    samples, _ = read_samples(str(path))
    assert contents(samples) == [[("user", "Say hi"), ("assistant", "Hi")]]
    assert samples[0].meta["line"] == 1


def test_jsonl_skips_blank_lines_and_keeps_line_numbers(write):
    path = write("a.jsonl", json.dumps(ALPACA[0]) + "\n\n" + json.dumps(ALPACA[1]) + "\n")
    samples, _ = read_samples(str(path))
    assert [s.meta["line"] for s in samples] == [1, 3]


def test_csv_lines_count_multiline_cells(write):
    path = write("a.csv", 'instruction,input,output\n"two\nlines",,ok\nAdd,1 2,3\n')
    samples, _ = read_samples(str(path))
    assert contents(samples) == [[("user", "two\nlines"), ("assistant", "ok")],
                                 [("user", "Add\n1 2"), ("assistant", "3")]]
    assert [s.meta["line"] for s in samples] == [2, 4]


def test_txt_is_one_text_sample_per_non_empty_line(write):
    path = write("a.txt", "first line\n\nsecond line\n")
    samples, _ = read_samples(str(path))
    assert [(s.text, s.meta["line"]) for s in samples] == [("first line", 1), ("second line", 3)]


@pytest.mark.parametrize("name", ["a.jsonl.gz", "a.json.gz", "a.txt.gz", "a.csv.gz"])
def test_gzip_of_each_kind(tmp_path, name):
    kind = name.split(".")[1]
    body = {"jsonl": "".join(json.dumps(r) + "\n" for r in ALPACA), "json": json.dumps(ALPACA),
            "txt": "Say hi\nAdd\n", "csv": "instruction,input,output\nSay hi,,Hi\nAdd,1 2,3\n"}[kind]
    path = tmp_path / name
    path.write_bytes(gzip.compress(body.encode()))
    samples, _ = read_samples(str(path))
    firsts = [s.text if kind == "txt" else s.messages[0].content for s in samples]
    assert firsts == ["Say hi", "Add" if kind == "txt" else "Add\n1 2"]


def test_parquet_rows_and_gzipped_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    # `system` is null in the first row (Arrow's way of saying absent): read as absent.
    table = pa.Table.from_pylist([{**ALPACA[0], "system": None}, {**ALPACA[1], "system": "Be brief."}])
    pq.write_table(table, tmp_path / "a.parquet")
    (tmp_path / "b.parquet.gz").write_bytes(gzip.compress((tmp_path / "a.parquet").read_bytes()))
    for name in ("a.parquet", "b.parquet.gz"):
        samples, _ = read_samples(str(tmp_path / name))
        assert contents(samples) == [[("user", "Say hi"), ("assistant", "Hi")],
                                     [("system", "Be brief."), ("user", "Add\n1 2"), ("assistant", "3")]]
        assert [s.meta["line"] for s in samples] == [1, 2]


def test_hf_save_to_disk_directory_with_splits(tmp_path):
    datasets = pytest.importorskip("datasets")
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list(ALPACA),
                               "test": datasets.Dataset.from_list(ALPACA[:1])})
    dd.save_to_disk(str(tmp_path / "hf"))
    train, _ = read_samples(str(tmp_path / "hf"))
    assert len(train) == 2 and train[0].meta["source"] == f"{tmp_path / 'hf'}[train]"
    from tuneforge.config import DataConfig, DatasetConfig

    test, _ = read_samples(DataConfig(datasets=[DatasetConfig(path=str(tmp_path / "hf"), split="test")]))
    assert contents(test) == [[("user", "Say hi"), ("assistant", "Hi")]]
    with pytest.raises(DataError, match=r"choose a split with `split:` \(this directory has train, test\)"):
        read_samples(DataConfig(datasets=[DatasetConfig(path=str(tmp_path / "hf"), split="dev")]))


def test_folder_reads_data_files_in_order_and_skips_metadata(write, tmp_path):
    write("d/b.jsonl", [ALPACA[1]])
    write("d/a.json", [ALPACA[0]])
    write("d/dataset_info.json", {"x": {"file_name": "a.json"}})
    write("d/.hidden/c.jsonl", [ALPACA[0]])
    write("d/notes.md", "not data")
    samples, _ = read_samples(str(tmp_path / "d"))
    assert [s.meta["source"] for s in samples] == [str(tmp_path / "d/a.json"), str(tmp_path / "d/b.jsonl")]


def test_glob_and_list_of_paths(write, tmp_path):
    write("g/x1.jsonl", [ALPACA[0]])
    write("g/x2.jsonl", [ALPACA[1]])
    samples, _ = read_samples(str(tmp_path / "g/x*.jsonl"))
    assert len(samples) == 2
    samples, report = read_samples([str(tmp_path / "g/x2.jsonl"), str(tmp_path / "g/x1.jsonl")])
    assert [s.messages[1].content for s in samples] == ["3", "Hi"] and report.read == 2


@pytest.mark.parametrize("path, message", [
    ("missing.json", "missing.json: no such file or directory"),
    ("nothing*.jsonl", "nothing\\*.jsonl: no data files match this pattern"),
    ("a.xml", "a.xml: unsupported file kind '.xml'"),
])
def test_bad_paths_name_the_path(write, tmp_path, path, message):
    write("a.xml", "<x/>")
    with pytest.raises(DataError, match=message):
        read_samples(str(tmp_path / path))


def test_message_roles_are_plain_messages(write):
    samples, _ = read_samples(str(write("a.json", ALPACA[:1])))
    assert samples[0].messages == [Message("user", "Say hi"), Message("assistant", "Hi")]
