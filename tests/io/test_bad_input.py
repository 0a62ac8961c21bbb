"""Every kind of bad input: `file:line: reason` by default; with skip, a rejects file and counts
that add up (read = kept + rejected by reason)."""

from __future__ import annotations

import json

import pytest

from tuneforge.config import DatasetConfig
from tuneforge.errors import DataError
from tuneforge.io import ReadReport, iter_samples

GOOD = {"instruction": "Q", "input": "", "output": "A"}


def jsonl(*lines: bytes | dict) -> bytes:
    return b"".join((line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n" for line in lines)


def read(path, fmt="auto", on_error="raise", report=None):
    return list(iter_samples(DatasetConfig(path=str(path), format=fmt), on_error=on_error, report=report))


CASES = {
    "malformed JSON line": (
        jsonl(GOOD, b'{"instruction": "Q", "output": }'), "auto",
        "malformed JSON: Expecting value at column 32"),
    "missing required field": (
        jsonl(GOOD, {"instruction": "Q", "input": "x"}), "alpaca",
        "missing required field 'output'"),
    "wrong type": (
        jsonl(GOOD, {"instruction": "Q", "input": "", "output": 42}), "auto",
        "wrong type for 'output': expected a string, got int"),
    "empty conversation": (
        jsonl({"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]},
              {"conversations": []}), "auto",
        "empty conversation"),
    "no final assistant turn": (
        jsonl({"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]},
              {"messages": [{"role": "user", "content": "Q"}]}), "auto",
        "conversation does not end with an assistant turn: the last turn is 'user'"),
    "invalid UTF-8": (
        jsonl(GOOD, b'{"instruction": "caf\xe9", "input": "", "output": "A"}'), "auto",
        "invalid UTF-8: byte 0xe9 at column 21"),
    "unpaired surrogate": (
        jsonl(GOOD, b'{"instruction": "Q\\ud800", "input": "", "output": "A"}'), "auto",
        "invalid Unicode: an unpaired surrogate (\\ud800-\\udfff) in 'instruction'"),
    "unknown role tag": (
        jsonl({"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]},
              {"conversations": [{"from": "bot", "value": "A"}]}), "auto",
        "unknown role tag: 'bot' in conversations[0]; expected one of human, gpt, system, function_call, observation"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_record_raises_with_file_and_line(write, case):
    content, fmt, reason = CASES[case]
    path = write("data.jsonl", content)
    with pytest.raises(DataError) as info:
        read(path, fmt)
    assert str(info.value) == f"{path}:2: {reason}"
    assert info.value.where == f"{path}:2"


@pytest.mark.parametrize("case", list(CASES))
def test_bad_record_is_skipped_into_the_rejects_file(write, tmp_path, case):
    content, fmt, reason = CASES[case]
    path = write("data.jsonl", content)
    report = ReadReport(rejects_path=tmp_path / "rejects.jsonl")
    samples = read(path, fmt, on_error="skip", report=report)
    assert len(samples) == 1
    assert (report.read, report.kept, report.n_rejected) == (2, 1, 1) and report.balanced
    [reject] = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert (reject["source"], reject["line"], reject["reason"]) == (str(path), 2, reason)
    assert reject["record"] is not None
    assert report.first_rejected_at == {reason.split(":")[0] if ":" in reason else reason: f"{path}:2"}


def test_counts_by_reason_add_up(write, tmp_path):
    path = write("data.jsonl", jsonl(GOOD, {"instruction": "Q"}, b"{oops", {"instruction": "Q"}, GOOD, b"[1, 2]"))
    report = ReadReport()
    samples = read(path, "alpaca", on_error="skip", report=report)
    assert len(samples) == 2
    assert dict(report.rejected) == {"missing required field 'output'": 2, "malformed JSON": 1, "not an object": 1}
    assert report.read == report.kept + report.n_rejected == 6


def test_json_array_error_names_line_and_index(write):
    records = [GOOD, GOOD, {"instruction": "Q", "input": "", "output": ["A"]}]
    path = write("data.json", records)  # indent=2: the third record opens on line 12
    with pytest.raises(DataError,
                       match=rf"^{path}:12 \(index 2\): wrong type for 'output': expected a string, got list$"):
        read(path)


def test_invalid_utf8_inside_a_json_array_rejects_only_that_record(write):
    path = write("data.json", b'[\n{"instruction": "Q", "input": "", "output": "A"},\n'
                              b'{"instruction": "caf\xe9", "input": "", "output": "A"}\n]')
    report = ReadReport()
    assert len(read(path, on_error="skip", report=report)) == 1
    assert dict(report.rejected) == {"invalid UTF-8": 1}
    assert report.first_rejected_at["invalid UTF-8"] == f"{path}:3 (index 1)"


def test_invalid_utf8_in_csv_names_the_field(write):
    path = write("data.csv", b"instruction,input,output\nQ,,A\ncaf\xe9,,A\n")
    with pytest.raises(DataError, match=rf"^{path}:3: invalid UTF-8: undecodable bytes in 'instruction'$"):
        read(path)


def test_malformed_json_array_stops_even_when_skipping(write):
    path = write("data.json", '[\n{"instruction": "Q", "output": "A"},\n{"instruction": "Q" "output": "A"}\n]')
    with pytest.raises(DataError, match=rf"^{path}:3: malformed JSON: Expecting ',' delimiter at column 21 "
                                        r"\(a .json file must parse as a whole"):
        read(path, on_error="skip")


def test_preference_prompt_must_end_with_user(write):
    path = write("data.jsonl", jsonl({"chosen": [{"role": "user", "content": "Q"},
                                                 {"role": "assistant", "content": "A"}],
                                      "rejected": [{"role": "assistant", "content": "B"}]}))
    with pytest.raises(DataError, match=rf"^{path}:1: empty prompt$"):
        read(path)


def test_a_leading_non_object_is_rejected_and_the_format_still_detected(write):
    path = write("data.jsonl", jsonl(b'"just a string"', GOOD))
    report = ReadReport()
    assert len(read(path, on_error="skip", report=report)) == 1
    assert dict(report.rejected) == {"not an object": 1}
