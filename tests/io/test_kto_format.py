"""KTO labels: LLaMA-Factory's kto format through dataset_info.json unchanged, messages + `label`
records (what the feedback and review exports write), and bad labels named by file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuneforge.config import DataConfig, DatasetConfig
from tuneforge.errors import DataError
from tuneforge.io import read_samples, write_samples
from tuneforge.io.kto import balance_advice, missing_label, sample_label
from tuneforge.types import Message, Sample

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train" / "kto" / "dataset_info.json"
TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}


def _chat(q: str, a: str) -> list[dict]:
    return [{"role": "user", "content": q}, {"role": "assistant", "content": a}]


def test_llama_factory_kto_entry_reads_labels(write):
    write("kto.json", [{"messages": _chat("Hi", "Hello!"), "label": True},
                       {"messages": _chat("Hi", "Go away."), "label": False}])
    info = write("dataset_info.json", {"kto_en_demo": {
        "file_name": "kto.json", "formatting": "sharegpt", "ranking": False,
        "columns": {"messages": "messages", "kto_tag": "label"}, "tags": TAGS}})
    good, bad = read_samples(f"{info}#kto_en_demo")[0]
    assert good.messages == [Message("user", "Hi"), Message("assistant", "Hello!")]
    assert (sample_label(good), sample_label(bad)) == (True, False)
    assert bad.where.endswith("kto.json:15")  # the line its record starts on


def test_the_example_set_is_in_llama_factory_format_with_both_classes():
    samples, report = read_samples(f"{EXAMPLE}#kto_demo")
    labels = [sample_label(s) for s in samples]
    assert report.rejected == {} and len(samples) == 32
    assert labels.count(True) == labels.count(False) == 16


def test_kto_tag_may_name_another_column(write):
    write("thumbs.jsonl", [{"messages": _chat("Q", "A"), "thumb": "true"},  # csv-style strings too
                           {"messages": _chat("Q", "B"), "thumb": "False"}])
    info = write("dataset_info.json", {"t": {"file_name": "thumbs.jsonl", "formatting": "sharegpt", "tags": TAGS,
                                             "columns": {"messages": "messages", "kto_tag": "thumb"}}})
    assert [sample_label(s) for s in read_samples(f"{info}#t")[0]] == [True, False]


def test_messages_with_a_label_column_as_the_feedback_export_writes_them(write, tmp_path):
    path = write("feedback.jsonl", [{"messages": _chat("Q", "A"), "label": True, "id": "r1"},
                                    {"messages": _chat("Q", "B"), "label": False, "id": "r2"}])
    samples, _ = read_samples(str(path))
    assert [sample_label(s) for s in samples] == [True, False]
    # Written back in the same format, the label column is there unchanged.
    out = tmp_path / "out.jsonl"
    write_samples(samples, out, to="messages")
    assert [json.loads(line)["label"] for line in out.read_text().splitlines()] == [True, False]
    # The canonical form keeps it too.
    write_samples(samples, tmp_path / "canon.jsonl")
    assert [sample_label(s) for s in read_samples(str(tmp_path / "canon.jsonl"))[0]] == [True, False]


def test_canonical_records_with_a_label_as_review_export_writes_them(write):
    """`review export --as kto` and `data from-feedback --as kto` write a sample's canonical form (meta
    included) with `label` beside it."""
    sample = Sample(messages=[Message("user", "Q"), Message("assistant", "A")], meta={"item": 3})
    path = write("review.jsonl", [{**sample.to_dict(), "label": False}])
    [s] = read_samples(str(path))[0]
    assert sample_label(s) is False and s.meta["item"] == 3


def test_a_declared_label_must_be_there_and_boolean(write):
    path = write("kto.jsonl", [{"messages": _chat("Q", "A"), "label": True},
                               {"messages": _chat("Q", "B"), "label": "maybe"},
                               {"messages": _chat("Q", "C")}])
    data = DataConfig(datasets=[DatasetConfig(path=str(path), columns={"label": "label"})])
    with pytest.raises(DataError, match=r"kto.jsonl:2: bad label.*'maybe'"):
        read_samples(data)
    samples, report = read_samples(data, on_error="skip")
    assert len(samples) == 1 and report.rejected == {"bad label": 1, "missing required field 'label'": 1}


def test_an_undeclared_label_column_that_is_not_boolean_is_left_alone(write):
    """A chat set may have a `label` of its own (a class name): it still reads, for sft, unchanged."""
    path = write("classes.jsonl", [{"messages": _chat("Q", "A"), "label": "sports"}])
    [s] = read_samples(str(path))[0]
    assert sample_label(s) is None and s.meta["extra"] == {"label": "sports"}
    assert missing_label(s) == "label 'sports', not true or false"


def test_balance_advice_follows_the_papers_range():
    assert balance_advice(10, 10, 1.0, 1.0) is None
    assert balance_advice(12, 10, 1.0, 1.0) is None  # 1.2 is inside [1, 4/3]
    advice = balance_advice(30, 10, 1.0, 1.0)
    assert advice is not None and "= 3.00" in advice and "between 0.33 and 0.44" in advice
    assert balance_advice(10, 0, 1.0, 1.0) is None  # one class is an error of its own, not a balance
