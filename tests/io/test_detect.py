from __future__ import annotations

import pytest

from tuneforge.errors import DataError
from tuneforge.io import detect_format


@pytest.mark.parametrize("record, expected", [
    ({"instruction": "Q", "input": "", "output": "A"}, "alpaca"),
    ({"instruction": "Q", "chosen": "a", "rejected": "b"}, "alpaca"),
    ({"conversations": [], "chosen": {}, "rejected": {}}, "sharegpt"),
    ({"messages": []}, "messages"),
    ({"messages": [], "meta": {"source": "x"}}, "tuneforge"),
    ({"text": "T", "meta": {}}, "tuneforge"),
    ({"text": "T"}, "text"),
    ({"prompt": "Q", "chosen": "a", "rejected": "b"}, "preference"),
    ({"chosen": [], "rejected": []}, "preference"),
    ({"instruction": "Q", "instances": []}, "self_instruct"),
])
def test_detects_each_format(record, expected):
    assert detect_format(record, {}, "f.jsonl") == expected


def test_column_mapping_is_applied_before_detecting():
    assert detect_format({"question": "Q", "instruction": "x", "answer": "A"}, {"output": "answer"}, "f") == "alpaca"


def test_ambiguous_record_names_the_candidates_and_the_file():
    with pytest.raises(DataError, match=r"^f.jsonl: cannot tell the format: the first record fits alpaca and text "
                                        r"\(fields: instruction, output, text\); set `format`"):
        detect_format({"instruction": "Q", "output": "A", "text": "T"}, {}, "f.jsonl")


def test_unknown_record_lists_the_formats():
    with pytest.raises(DataError, match=r"f.jsonl: cannot tell the format: the first record's fields \(a, q\) "
                                        r"fit none of tuneforge, alpaca, sharegpt"):
        detect_format({"q": 1, "a": 2}, {}, "f.jsonl")
