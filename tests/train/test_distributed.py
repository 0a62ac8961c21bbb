"""Two processes (DDP over gloo, CPU) reach the same losses and weights as one process with the same
global batch: the loss is normalised by the labelled tokens of the whole step across processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def _launch(tmp_path, nproc, grad_accum):
    out = tmp_path / f"n{nproc}.json"
    env = {**os.environ, "PYTHONPATH": str(HERE), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           str(HERE / "ddp_worker.py"), str(out), str(grad_accum)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_two_process_ddp_equals_one_process(tmp_path):
    one = _launch(tmp_path, nproc=1, grad_accum=2)
    two = _launch(tmp_path, nproc=2, grad_accum=1)
    assert two["losses"] == pytest.approx(one["losses"], rel=1e-5)
    for name, values in one["weights"].items():
        assert two["weights"][name] == pytest.approx(values, abs=1e-5), name


@pytest.mark.parametrize("path", sorted((HERE.parents[1] / "examples" / "accelerate").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_accelerate_configs_load(path):
    from accelerate.commands.config.config_args import load_config_from_file

    cfg = load_config_from_file(str(path))
    assert cfg.num_processes >= 2 and cfg.distributed_type.value in path.read_text()


def test_accelerate_launch_of_the_cli_writes_one_run_directory(tmp_path, tiny_model_dir, shared_datasets):
    """The documented path: `accelerate launch --config_file examples/accelerate/ddp-cpu.yaml -m tuneforge
    train`. One process writes metrics, manifest and artefact; the other neither writes nor reports."""
    config = tmp_path / "run.yaml"
    out = tmp_path / "run"
    config.write_text(
        f"model: {{name_or_path: {tiny_model_dir}, dtype: float32}}\n"
        f"data: {shared_datasets / 'identity.json'}\n"
        "template: {cutoff_len: 128}\nmethod: {name: lora, r: 4}\n"
        f"train: {{output_dir: {out}, max_steps: 2, batch_size: 2, log_every: 1}}\n")
    launcher = HERE.parents[1] / "examples" / "accelerate" / "ddp-cpu.yaml"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(launcher),
                           "-m", "tuneforge", "train", str(config)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("done in") == 1
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2]
    assert (out / "final" / "adapter_model.safetensors").is_file() and (out / "manifest.json").is_file()
