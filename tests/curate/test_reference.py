"""Decontamination against an eval set and cross-dataset dedup: the `reference_dedup` operator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from curate_samples import chat, load_alpaca

from tuneforge.curate import REJECTS, Drop, RunOptions, parse_op, read_output, run
from tuneforge.errors import ConfigError
from tuneforge.types import Sample

EVAL = Path(__file__).parent / "data" / "eval_set.jsonl"


def test_eval_copies_are_dropped_with_the_reference_file_and_line():
    op = parse_op({"op": "reference_dedup", "name": "decontaminate", "references": [str(EVAL)],
                   "fields": ["user"], "reference_fields": ["user"]}, "ops[0]").build()
    # an English question reworded at the edges, a Chinese one with punctuation and one character changed
    en = op(chat("what is the boiling point of water at sea level in degrees Celsius ?", "It is 100."))
    zh = op(chat("请说出中国最长的河流,并简单介绍它流经的地区", "长江。"))
    assert isinstance(en, Drop) and en.reason == "matches_reference"
    assert en.detail.startswith(f"{EVAL}:1 (jaccard ")
    assert isinstance(zh, Drop) and zh.detail.startswith(f"{EVAL}:3 (jaccard ")
    for unrelated in (chat("What is the freezing point of mercury?", "About -39 °C."),
                      chat("请介绍一下黄河的源头在哪里。", "黄河发源于青海。"), chat("", "")):
        assert isinstance(op(unrelated), Sample)


def test_threshold_and_fields_decide_what_matches():
    loose = parse_op({"op": "reference_dedup", "references": [str(EVAL)], "threshold": 0.3}, "0").build()
    strict = parse_op({"op": "reference_dedup", "references": [str(EVAL)], "threshold": 0.95}, "0").build()
    # the eval answer alone: half of what the reference record (question + answer) holds
    answer_only = chat("Jupiter fact?",
                       "Jupiter is the largest planet; it has a giant storm called the Great Red Spot.")
    assert isinstance(strict(answer_only), Sample)
    assert loose(answer_only).detail.startswith(f"{EVAL}:2")


def test_cross_dataset_dedup_in_a_run(tmp_path):
    base = load_alpaca("alpaca_en_demo.json")[:50]
    ref = tmp_path / "v1.jsonl"
    ref.write_text("".join(json.dumps({"instruction": s.messages[0].content, "output": s.messages[1].content}) + "\n"
                           for s in base[:20]), encoding="utf-8")
    ops = [parse_op({"op": "reference_dedup", "references": [str(ref)]}, "0")]
    stats = run(base, ops, tmp_path / "out", RunOptions(shard_size=16))
    assert stats["removed"] == {"reference_dedup/matches_reference": 20}
    assert [s.meta["line"] for s in read_output(tmp_path / "out")] == list(range(21, 51))
    rejects = [json.loads(line) for line in (tmp_path / "out" / REJECTS).read_text(encoding="utf-8").splitlines()]
    assert [(r["where"], r["detail"]) for r in rejects[:2]] == [
        (f"alpaca_en_demo.json:{i}", f"{ref}:{i} (jaccard 1.00)") for i in (1, 2)]


def test_empty_references_are_a_config_error(tmp_path):
    (tmp_path / "empty.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match="references: no records"):
        parse_op({"op": "reference_dedup", "references": [str(tmp_path / "empty.jsonl")]}, "0").build()
