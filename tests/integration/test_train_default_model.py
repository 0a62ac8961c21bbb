"""A few real training steps on the default model (SmolLM2-135M-Instruct) and the reference datasets."""

import pytest

from tuneforge.config import build_config
from tuneforge.train.run import run_training


def test_lora_on_identity_lowers_the_loss(shared_datasets, tmp_path):
    cfg = build_config({
        "data": {"datasets": [{"path": str(shared_datasets / "identity.json")}],
                 "placeholders": {"name": "Forge", "author": "the tuneforge team"}},
        "template": {"cutoff_len": 256},
        "method": {"name": "lora", "r": 16, "alpha": 32},
        "train": {"output_dir": str(tmp_path), "max_steps": 6, "batch_size": 1, "learning_rate": 2e-3,
                  "warmup_ratio": 0.0, "scheduler": "constant"},
    })
    losses = [r["loss"] for r in run_training(cfg).result.history]
    assert len(losses) == 6
    assert sum(losses[-2:]) / 2 < losses[0] * 0.85, losses


def test_one_dpo_step_on_dpo_en_demo(shared_datasets, tmp_path):
    cfg = build_config({
        "data": {"datasets": [{"path": str(shared_datasets / "dpo_en_demo.json")}],
                 "allow_dropping": True},  # a short cutoff, for speed, drops most pairs on purpose
        "template": {"cutoff_len": 256},
        "method": {"name": "lora", "r": 8},
        "train": {"stage": "dpo", "output_dir": str(tmp_path), "max_steps": 1, "batch_size": 1,
                  "learning_rate": 1e-4},
    })
    record = run_training(cfg).result.history[0]
    assert record["loss"] == pytest.approx(0.6931, abs=1e-3)  # LoRA starts at the reference
    assert record["reward_margin"] == pytest.approx(0.0, abs=1e-4)
    assert (tmp_path / "final" / "adapter_config.json").exists()
