"""More than 5% of the samples dropped for their length: `train` and `doctor` say the share and the ways out."""

from __future__ import annotations

import json

import pytest

from tuneforge.config import build_config
from tuneforge.formatting.encode import cutoff_drop_warning


def test_the_warning_starts_above_five_percent_and_names_both_ways_out():
    assert cutoff_drop_warning(5, 100, 512, "truncate") is None
    warning = cutoff_drop_warning(6, 100, 512, "truncate")
    assert warning is not None and warning.startswith("6 of 100 samples (6%) are dropped")
    assert "template.cutoff_len (now 512)" in warning and "template.cutoff_policy: truncate_reply" in warning
    already = cutoff_drop_warning(6, 100, 512, "truncate_reply")
    assert already is not None and "cutoff_policy" not in already  # the one way left


@pytest.fixture
def one_in_ten_too_long(tiny_model_dir, tmp_path):
    rows = [{"instruction": f"Say {i}.", "output": f"{i}."} for i in range(9)]
    rows.append({"instruction": "Tell a long story.", "output": "Once upon a time " * 40})
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"model": {"name_or_path": str(tiny_model_dir)}, "data": str(data), "template": {"cutoff_len": 64},
            "train": {"output_dir": str(tmp_path / "run"), "max_steps": 1, "batch_size": 4}}


def test_train_prints_the_share_and_trains_the_rest(one_in_ten_too_long, capsys):
    from tuneforge.train.run import run_training

    summary = run_training(build_config(one_in_ten_too_long))
    out = capsys.readouterr().out
    assert "warning: 1 of 10 samples (10%) are dropped as too long for the cutoff: raise template.cutoff_len " \
           "(now 64), or set template.cutoff_policy: truncate_reply" in out
    assert summary.result.state.step == 1


def test_doctor_reports_the_share_and_the_ways_out(one_in_ten_too_long):
    from tuneforge.doctor import run_doctor

    report = run_doctor(build_config(one_in_ten_too_long))
    finding = next(f for f in report.findings if f.code == "cutoff_drops")
    assert finding.level == "warning"
    assert finding.message.startswith("1 of 10 samples (10%) are dropped as too long")
    assert "template.cutoff_policy: truncate_reply" in finding.message
