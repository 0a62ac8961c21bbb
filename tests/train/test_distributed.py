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
