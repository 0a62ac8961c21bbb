import json

from typer.testing import CliRunner

from tuneforge.cli import app

runner = CliRunner()


def test_every_command_has_help():
    for args in (["--help"], ["train", "--help"], ["runs", "--help"], ["doctor", "--help"], ["models", "--help"],
                 ["chat", "--help"], ["quickstart", "--help"], ["data", "convert", "--help"],
                 ["data", "show", "--help"], ["data", "curate", "--help"], ["data", "report", "--help"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
        assert "Usage" in result.output


def test_runs_lists_manifests(tmp_path):
    run = tmp_path / "a"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({
        "stage": "sft", "method": "lora", "model": "m", "result": {"steps": 7, "final_loss": 1.25, "best_eval": None},
        "parameters": {"trainable": 1234, "total": 99999}, "cost": {"seconds": 3.5}}))
    result = runner.invoke(app, ["runs", str(tmp_path)])
    assert result.exit_code == 0
    assert "lora" in result.output and "1.2500" in result.output and "1,234" in result.output


def test_train_with_a_bad_key_is_one_clear_error(tmp_path):
    import subprocess
    import sys

    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  learning_rat: 1e-4\n")
    proc = subprocess.run([sys.executable, "-m", "tuneforge", "train", str(cfg)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "unknown key 'train.learning_rat'; did you mean 'learning_rate'?" in proc.stderr
    assert "Traceback" not in proc.stderr
