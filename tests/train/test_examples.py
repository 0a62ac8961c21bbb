"""Every example config loads, and runs for a few steps on a tiny model with the real data."""

import json
from pathlib import Path

import pytest

from tuneforge.config import load_config
from tuneforge.train.run import run_training

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples" / "train").glob("*.yaml"))


def test_there_is_an_example_per_stage_and_method_family():
    names = {p.stem for p in EXAMPLES}
    assert {"sft-lora", "sft-full", "sft-freeze", "sft-adapter", "sft-prefix", "pt", "multi-task", "dpo"} <= names


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_trains_a_few_steps(example, tiny_model_dir, shared_datasets, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # paths in an example are relative to its file, whatever the current directory
    cfg = load_config(example, [f"model.name_or_path={tiny_model_dir}", f"train.output_dir={tmp_path}",
                                "train.max_steps=2", "train.batch_size=2", "train.grad_accum=1",
                                "template.cutoff_len=256", "train.gradient_checkpointing=false",
                                "data.allow_dropping=true"])  # the short cutoff drops long samples on purpose
    summary = run_training(cfg)
    assert summary.result.state.step == 2
    assert all(r["loss"] == r["loss"] for r in summary.result.history)  # finite, not NaN
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["stage"] == cfg.train.stage and manifest["method"] == cfg.method.name
    assert any((tmp_path / "final").glob("*.safetensors"))
    assert (tmp_path / "report.html").exists() and (tmp_path / "metrics.jsonl").exists()


@pytest.mark.parametrize("name", ["sft-lora", "sft-full", "dpo", "sft-prefix"])
def test_bf16_mixed_precision_trains(name, tiny_model_dir, shared_datasets, tmp_path, monkeypatch):
    """Autocast, as GPU runs use it by default, here on the CPU: every path must accept bf16 activations."""
    monkeypatch.chdir(tmp_path)
    cfg = load_config(ROOT / "examples" / "train" / f"{name}.yaml",
                      [f"model.name_or_path={tiny_model_dir}", f"train.output_dir={tmp_path}", "train.max_steps=2",
                       "train.batch_size=2", "train.grad_accum=1", "template.cutoff_len=256",
                       "train.gradient_checkpointing=false", "train.mixed_precision=bf16",
                       "data.allow_dropping=true"])  # the short cutoff drops long samples on purpose
    history = run_training(cfg).result.history
    assert len(history) == 2 and all(r["loss"] == r["loss"] and r["grad_norm"] > 0 for r in history)


def test_precisions_change_between_runs_in_one_process(tiny_model_dir, shared_datasets, tmp_path, monkeypatch):
    """accelerate keeps one process-wide state and refuses a second mixed precision in it; a notebook
    that trains in fp32, then in bf16, then in fp32 again must not have to restart."""
    monkeypatch.chdir(tmp_path)
    for i, precision in enumerate(["no", "bf16", "no"]):
        cfg = load_config(ROOT / "examples" / "train" / "sft-lora.yaml",
                          [f"model.name_or_path={tiny_model_dir}", f"train.output_dir={tmp_path / str(i)}",
                           "train.max_steps=1", "train.batch_size=2", "train.grad_accum=1", "template.cutoff_len=128",
                           "train.gradient_checkpointing=false", f"train.mixed_precision={precision}",
                           "data.allow_dropping=true"])
        assert run_training(cfg).result.state.step == 1
