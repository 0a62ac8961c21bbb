"""`tuneforge train` with its output going to a pipe or a file: plain progress lines, not a silent bar."""

import re
from pathlib import Path

from typer.testing import CliRunner

from tuneforge.cli import app

TRAIN = Path(__file__).resolve().parents[2] / "src" / "tuneforge" / "quickstart" / "data" / "train.jsonl"


def test_train_prints_plain_progress_lines_when_output_is_not_a_terminal(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("FORCE_COLOR", raising=False)  # either would make rich treat a pipe as a terminal
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    cfg = tmp_path / "train.yaml"
    cfg.write_text(f"model: {{name_or_path: {tiny_model_dir}}}\ndata: {TRAIN}\ntemplate: {{cutoff_len: 64}}\n"
                   f"method: {{name: lora, r: 4}}\n"
                   f"train: {{output_dir: {tmp_path / 'run'}, max_steps: 20, batch_size: 2}}\n")
    result = CliRunner().invoke(app, ["train", str(cfg)])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("step ")]
    shape = re.compile(r"step (\d+)/20 \(\d+%\) · loss \d+\.\d{4} · lr \S+ · \d+ tok/s · eta \S+$")
    steps = [int(shape.match(line).group(1)) for line in lines]
    assert set(range(2, 21, 2)) <= set(steps) and steps[-1] == 20  # every tenth of the steps, and the last
    assert len(steps) < 20 and lines[-1].startswith("step 20/20 (100%)") and lines[-1].endswith("eta 0s")
    assert "\x1b[" not in result.output  # no terminal control codes in a log file
