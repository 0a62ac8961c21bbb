"""The offline default model, end to end through the CLI."""

import json
import os
import subprocess
import sys

from typer.testing import CliRunner

from tuneforge.cli import app


def test_chat_answers_paris_offline():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "tuneforge", "chat", "--model", "smollm2-135m-instruct",
                           "--prompt", "What is the capital of France?", "--max-new-tokens", "24"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "Paris" in proc.stdout


def test_doctor_reports_alpaca_and_flags_pad_eos(shared_datasets, tmp_path, default_model):
    out = tmp_path / "doctor.json"
    result = CliRunner().invoke(app, ["doctor", str(shared_datasets / "alpaca_en_demo.json"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["samples"] == report["kept"] == 999
    assert report["stop_trained"] == 999
    assert 0.5 < report["trained_fraction"] < 0.95
    lengths = report["length_percentiles"]
    assert lengths["p50"] < lengths["p95"] <= lengths["max"]
    codes = {f["code"]: f["level"] for f in report["findings"]}
    assert codes["pad_is_eos"] == "info"  # tuneforge masks padding by position
    assert "token lengths" in result.output and "pad_is_eos" in result.output


def test_doctor_fails_on_a_cutoff_shorter_than_the_prompts(shared_datasets, tmp_path, default_model):
    out = tmp_path / "doctor.json"
    result = CliRunner().invoke(app, ["doctor", str(shared_datasets / "alpaca_en_demo.json"), "--cutoff", "40",
                                      "--out", str(out)])
    assert result.exit_code == 1
    report = json.loads(out.read_text())
    assert report["ok"] is False
    assert report["dropped"]["too_long"] > 500
    assert {"level": "error", "code": "cutoff_drops"}.items() <= next(
        f for f in report["findings"] if f["code"] == "cutoff_drops").items()
