"""Normal runs are quiet: tuneforge uses transformers' current APIs (no deprecation warnings of ours), and
libraries' own import noise stays out of the output unless `--verbose`."""

from __future__ import annotations

import json
import logging
import warnings

import pytest
from typer.testing import CliRunner

from tuneforge.cli import NOISY_LOGGERS, app


def deprecations(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, (FutureWarning, DeprecationWarning))
            and "deprecat" in str(w.message).lower()]


def test_training_with_checkpointing_then_serving_warns_of_no_deprecated_api(tiny_model_dir, tmp_path):
    """Gradient checkpointing, a LoRA and a prefix adapter (peft wraps the model each time), and the
    engine's cached decoding: no `past_key_values`, `gradient_checkpointing_enable` or
    `is_gradient_checkpointing` deprecation reaches the user."""
    from tuneforge.config import build_config
    from tuneforge.methods import get_method
    from tuneforge.models import load_model
    from tuneforge.serve.engine import Engine, load_engine
    from tuneforge.serve.sampling import SamplingParams
    from tuneforge.train.run import run_training
    from tuneforge.types import Message

    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"instruction": f"Q{i}?", "output": "A."}) + "\n" for i in range(4)))
    finals = {}
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for name, method in [("lora", {"name": "lora", "r": 4}), ("prefix", {"name": "prefix",
                                                                            "num_virtual_tokens": 2})]:
            cfg = build_config({"model": {"name_or_path": str(tiny_model_dir)}, "data": str(data), "method": method,
                                "train": {"output_dir": str(tmp_path / name), "max_steps": 2, "batch_size": 2,
                                          "gradient_checkpointing": name == "lora"}})
            finals[name] = str(run_training(cfg).final_dir)
        with load_engine(str(tiny_model_dir), finals) as engine:
            for model in finals:
                prompt = engine.encode_chat([Message("user", "Q1?")], model=model)
                engine.complete(prompt, SamplingParams(max_tokens=3), model=model)
        # Evaluation hands the engine the adapted PeftModel itself.
        base, tokenizer = load_model(str(tiny_model_dir))
        with Engine(get_method("lora").load(base, finals["lora"]), tokenizer) as engine:
            engine.complete(prompt, SamplingParams(max_tokens=3))
    assert deprecations(record) == []


@pytest.fixture
def restore_loggers():
    levels = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def test_library_import_noise_is_shown_only_with_verbose(restore_loggers):
    runner = CliRunner()
    assert runner.invoke(app, ["models"]).exit_code == 0
    assert not any(logging.getLogger(n).isEnabledFor(logging.WARNING) for n in NOISY_LOGGERS)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    assert runner.invoke(app, ["--verbose", "models"]).exit_code == 0
    assert all(logging.getLogger(n).isEnabledFor(logging.WARNING) for n in NOISY_LOGGERS)
