"""Resuming a run: a changed config is checked, a damaged checkpoint is skipped, and the run
directory (metrics, TensorBoard, cost, config) describes the run as it was actually trained."""

import json
import logging
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from tuneforge.config import build_config
from tuneforge.errors import TuneforgeError
from tuneforge.train.checkpoint import list_checkpoints
from tuneforge.train.run import run_training
from tuneforge.train.schedule import lr_multiplier

QUICKSTART = Path(__file__).resolve().parents[2] / "src" / "tuneforge" / "quickstart" / "data" / "train.jsonl"


def _cfg(model_dir, run_dir, *, method=None, template=None, **train):
    train = {"output_dir": str(run_dir), "max_steps": 4, "batch_size": 2, "save_every": 2, "learning_rate": 1e-3,
             "warmup_ratio": 0.0, **train}
    return build_config({"model": {"name_or_path": str(model_dir)}, "data": str(QUICKSTART),
                         "template": {"cutoff_len": 64, **(template or {})},
                         "method": {"name": "lora", "r": 4, **(method or {})}, "train": train})


def _manifest(run_dir):
    return json.loads((run_dir / "manifest.json").read_text())


def _steps(run_dir):
    return [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _final_weights(run_dir):
    return load_file(str(run_dir / "final" / "adapter_model.safetensors"))


def test_changed_batch_and_cutoff_are_refused_naming_each_key(tiny_model_dir, tmp_path):
    run = tmp_path / "run"
    run_training(_cfg(tiny_model_dir, run))
    changed = _cfg(tiny_model_dir, run, resume="auto", batch_size=1, template={"cutoff_len": 32})
    with pytest.raises(TuneforgeError) as e:
        run_training(changed)
    assert "train.batch_size: 2 → 1" in str(e.value) and "template.cutoff_len: 64 → 32" in str(e.value)
    with pytest.raises(TuneforgeError, match="train.batch_size: 2 → 1 \\(cannot change, even when allowed"):
        run_training(changed, allow_changes=["train.batch_size", "template.cutoff_len"])
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["batch_size"] == 2  # still the truth


def test_changed_lora_rank_is_refused_clearly(tiny_model_dir, tmp_path):
    run = tmp_path / "run"
    run_training(_cfg(tiny_model_dir, run))
    with pytest.raises(TuneforgeError, match="method.r: 4 → 16 \\(cannot change: the checkpoint's weights"):
        run_training(_cfg(tiny_model_dir, run, resume="auto", method={"r": 16}))


def test_an_allowed_learning_rate_change_applies_from_the_resumed_step_and_is_recorded(tiny_model_dir, tmp_path):
    run = tmp_path / "run"
    run_training(_cfg(tiny_model_dir, run, scheduler="cosine"))
    more = {"resume": "auto", "scheduler": "cosine", "max_steps": 6}
    with pytest.raises(TuneforgeError, match="--allow-config-change train.learning_rate"):
        run_training(_cfg(tiny_model_dir, run, learning_rate=1e-2, **more), allow_changes=["train.max_steps"])
    with pytest.raises(TuneforgeError, match="train.max_steps: 4 → 3 \\(the checkpoint is at step 4"):
        run_training(_cfg(tiny_model_dir, run, **{**more, "max_steps": 3}), allow_changes=["train.max_steps"])

    summary = run_training(_cfg(tiny_model_dir, run, learning_rate=1e-2, **more),
                           allow_changes=["train.learning_rate", "train.max_steps"])
    first = summary.result.history[0]
    assert first["step"] == 5
    assert first["lr"] == pytest.approx(1e-2 * lr_multiplier(4, 6, 0, "cosine"), rel=1e-12)  # the shape, scaled
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["learning_rate"] == 0.01
    resumes = _manifest(run)["resumes"]
    assert resumes[-1]["at_step"] == 4
    assert resumes[-1]["changes"] == {"train.learning_rate": [0.001, 0.01], "train.max_steps": [4, 6]}


def _truncate(path):
    path.write_bytes(path.read_bytes()[:100])


@pytest.mark.parametrize("damage", [
    lambda c: _truncate(c / "trainable.safetensors"),
    lambda c: (c / "optimizer.pt").write_bytes(b"garbage" * 10),
    lambda c: (c / "state.json").write_text('{"step": 6, "best_'),
], ids=["truncated-weights", "garbage-optimizer", "broken-state"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(tiny_model_dir, tmp_path, one_thread, caplog,
                                                                   damage):
    run = tmp_path / "run"
    run_training(_cfg(tiny_model_dir, run, max_steps=6, keep_last=3))
    uninterrupted = _final_weights(run)
    damage(run / "checkpoints" / "step-00000006")
    with caplog.at_level(logging.WARNING, logger="tuneforge.train"):
        summary = run_training(_cfg(tiny_model_dir, run, max_steps=6, keep_last=3, resume="auto"))
    assert "step-00000006 is damaged" in caplog.text
    assert summary.result.history[0]["step"] == 5  # from step 4
    assert (run / "checkpoints" / "corrupt-step-00000006").is_dir()
    assert [p.name for p in list_checkpoints(run)] == ["step-00000002", "step-00000004", "step-00000006"]
    resumed = _final_weights(run)
    assert all((resumed[k] == uninterrupted[k]).all() for k in uninterrupted)


def test_no_valid_checkpoint_is_a_clear_error(tiny_model_dir, tmp_path):
    run = tmp_path / "run"
    run_training(_cfg(tiny_model_dir, run))
    for ckpt in list_checkpoints(run):
        (ckpt / "state.json").write_text("{")
    with pytest.raises(TuneforgeError, match="no valid checkpoint in .*all 2 are damaged"):
        run_training(_cfg(tiny_model_dir, run, resume="auto"))


class Crash(Exception):
    pass


def test_after_a_crash_and_resume_each_step_is_logged_once_and_the_cost_sums_both_segments(
        tiny_model_dir, tmp_path, one_thread):
    reference = tmp_path / "ref"
    run_training(_cfg(tiny_model_dir, reference, max_steps=6))

    run = tmp_path / "run"

    def crash_at_5(record):
        if record["step"] == 5:
            raise Crash

    with pytest.raises(Crash):
        run_training(_cfg(tiny_model_dir, run, max_steps=6), on_log=crash_at_5)
    first_segment = json.loads((run / "checkpoints" / "step-00000004" / "state.json").read_text())
    (run / "checkpoints" / ".tmp-k1ll3d").mkdir()  # as a kill during a checkpoint write leaves it
    assert _steps(run) == [1, 2, 3, 4, 5]

    run_training(_cfg(tiny_model_dir, run, max_steps=6, resume="auto"))
    assert not list((run / "checkpoints").glob(".tmp-*"))
    assert _steps(run) == [1, 2, 3, 4, 5, 6]
    cost, ref_cost = _manifest(run)["cost"], _manifest(reference)["cost"]
    assert cost["trained_tokens"] == ref_cost["trained_tokens"]
    assert cost["seconds"] > first_segment["seconds"] > 0
    assert all((a == b).all() for a, b in zip(_final_weights(run).values(), _final_weights(reference).values()))


def test_tensorboard_holds_each_step_once_after_a_resume(tiny_model_dir, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    run_training(_cfg(tiny_model_dir, run, max_steps=6, save_every=4))  # report written up to step 6
    assert [p.name for p in list_checkpoints(run)] == ["step-00000004"]  # so steps 5 and 6 are replayed
    run_training(_cfg(tiny_model_dir, run, max_steps=6, save_every=4, resume="auto"))
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("loss")] == [1, 2, 3, 4, 5, 6]


def test_resuming_a_finished_run_reports_its_real_final_loss(tiny_model_dir, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    first = run_training(_cfg(tiny_model_dir, run))
    before = _manifest(run)
    shutil.rmtree(run / "final")

    again = run_training(_cfg(tiny_model_dir, run, resume="auto"))
    assert again.result.history == [] and again.final_loss == first.final_loss
    after = _manifest(run)
    assert after["result"]["final_loss"] == before["result"]["final_loss"] == first.final_loss
    assert after["cost"]["trained_tokens"] == before["cost"]["trained_tokens"] > 0
    assert (run / "final" / "adapter_model.safetensors").exists()


def test_the_cli_refuses_a_changed_config_in_one_line_and_takes_allow_config_change(tiny_model_dir, tmp_path,
                                                                                    monkeypatch, capsys):
    from tuneforge.cli import main

    def tuneforge(*args) -> int:
        monkeypatch.setattr(sys, "argv", ["tuneforge", *args])
        with pytest.raises(SystemExit) as e:
            main()
        return e.value.code

    run = tmp_path / "run"
    cfg = tmp_path / "train.yaml"
    cfg.write_text(yaml.safe_dump(_cfg(tiny_model_dir, run).model_dump(mode="json")))
    assert tuneforge("train", str(cfg)) == 0
    resume = ["train", str(cfg), "--resume", "auto", "--set", "train.learning_rate=1e-2"]
    capsys.readouterr()
    assert tuneforge(*resume) == 2
    err = " ".join(capsys.readouterr().err.split())  # one message, folded to the terminal's width
    assert err.startswith("error: cannot resume from") and "Traceback" not in err
    assert "train.learning_rate: 0.001 → 0.01 (allow with --allow-config-change train.learning_rate" in err
    assert tuneforge(*resume, "--allow-config-change", "train.learning_rate") == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"4 steps · final loss {_manifest(run)['result']['final_loss']:.4f}" in out


def test_a_key_added_since_the_checkpoint_is_no_change_at_its_default(tiny_model_dir, tmp_path):
    from tuneforge.train.fingerprint import check_resume, config_changes, fingerprint

    cfg = _cfg(tiny_model_dir, tmp_path / "run")
    new = fingerprint(cfg)
    # a checkpoint written before data.allow_dropping existed, and before datasets had `weight`
    stored = {k: v for k, v in new.items() if k != "data.allow_dropping"}
    stored["data.datasets"] = [{k: v for k, v in d.items() if k != "weight"} for d in new["data.datasets"]]
    assert config_changes(stored, new) == {}
    check_resume(config_changes(stored, new), (), checkpoint="ckpt", step=2)

    other = fingerprint(build_config({**cfg.model_dump(mode="json"),
                                      "data": {**cfg.data.model_dump(mode="json"), "allow_dropping": True}}))
    changes = config_changes(stored, other)
    assert changes == {"data.allow_dropping": (None, True)}
    with pytest.raises(TuneforgeError, match=r"data.allow_dropping: \(unset\) → True \(cannot change"):
        check_resume(changes, (), checkpoint="ckpt", step=2)
    weighted = [{**d, "weight": 2.0} for d in new["data.datasets"]]
    assert config_changes(stored, {**new, "data.datasets": weighted}) == {
        "data.datasets": (stored["data.datasets"], weighted)}
    assert config_changes({**stored, "train.seed": 1}, new) == {"train.seed": (1, 42)}  # real changes remain
