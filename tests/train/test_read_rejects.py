"""Training reads its data like `data convert`: skipped records go to the rejects file, which only
appears once the whole read succeeded."""

from __future__ import annotations

import json

import pytest

from tuneforge.config import build_config
from tuneforge.errors import TuneforgeError
from tuneforge.train.run import read_training_samples


def write_data(path, bad_lines: int = 1):
    good = [json.dumps({"instruction": f"Q{i}?", "output": "A."}) for i in range(3)]
    path.write_text("\n".join(good + ["{not json"] * bad_lines) + "\n")
    return path


def config(tmp_path, paths):
    return build_config({"data": {"datasets": [{"path": str(p)} for p in paths], "on_error": "skip",
                                  "rejects_path": str(tmp_path / "rejects.jsonl")},
                         "train": {"output_dir": str(tmp_path / "run")}})


def test_skipped_records_are_written_out_and_counted(tmp_path):
    samples, report = read_training_samples(config(tmp_path, [write_data(tmp_path / "a.jsonl", 2)]))
    assert len(samples) == 3 and report.n_rejected == 2
    assert len((tmp_path / "rejects.jsonl").read_text().splitlines()) == 2
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []


def test_a_read_that_stops_leaves_no_rejects_file(tmp_path):
    cfg = config(tmp_path, [write_data(tmp_path / "a.jsonl"), tmp_path / "missing.jsonl"])
    with pytest.raises(TuneforgeError, match="missing.jsonl"):
        read_training_samples(cfg)
    assert not (tmp_path / "rejects.jsonl").exists()
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []
