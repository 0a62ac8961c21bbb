from dataclasses import dataclass

import pytest
import torch

from tuneforge.config import TrainConfig
from tuneforge.constants import IGNORE
from tuneforge.lm_loss import CausalLMLoss
from tuneforge.models import tiny_llama
from tuneforge.train.batching import epoch_batches
from tuneforge.train.checkpoint import list_checkpoints
from tuneforge.train.loop import train_loop


@dataclass
class Ex:
    input_ids: list[int]
    labels: list[int]


def _data(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        length = int(torch.randint(6, 24, (1,), generator=g))
        ids = torch.randint(3, 64, (length,), generator=g).tolist()
        out.append(Ex(ids, [IGNORE] * 3 + ids[3:]))
    return out


def _run(model, data, cfg, run_dir, **kw):
    def batches_of(epoch):
        return epoch_batches(data, batch_size=cfg.batch_size, packing=cfg.packing, block_size=64, pad_id=0,
                             seed=cfg.seed, epoch=epoch)

    return train_loop(model, CausalLMLoss(model, whole_forward=False), batches_of, cfg, run_dir=run_dir, **kw)


def _cfg(**kw):
    base = dict(learning_rate=1e-2, warmup_ratio=0.0, scheduler="constant", packing=False, seed=0,
                max_grad_norm=None)
    base.update(kw)
    return TrainConfig(**base)


def test_loss_decreases(tmp_path):
    model = tiny_llama(vocab_size=64)
    result = _run(model, _data(), _cfg(batch_size=4, epochs=6), tmp_path)
    losses = [r["loss"] for r in result.history]
    assert len(losses) == 24
    assert losses[-1] < losses[0] * 0.8


def _grads_after_one_step(batch_size, grad_accum):
    model = tiny_llama(vocab_size=64)
    data = _data(4)  # one step covers all data, whatever the batch order
    cfg = _cfg(batch_size=batch_size, grad_accum=grad_accum, max_steps=1, learning_rate=1.0,
               scheduler="constant")
    grads = {}  # the accumulated gradient, as the optimizer sees it
    for n, p in model.named_parameters():
        p.register_post_accumulate_grad_hook(lambda p, n=n: grads.__setitem__(n, p.grad.detach().clone()))
    _run(model, data, cfg, None)
    return grads


def test_accumulation_4x1_equals_1x4():
    g_accum = _grads_after_one_step(batch_size=1, grad_accum=4)
    g_dense = _grads_after_one_step(batch_size=4, grad_accum=1)
    assert g_accum.keys() == g_dense.keys()
    for name in g_dense:
        assert torch.allclose(g_accum[name], g_dense[name], atol=1e-6), name


_KILLED_RUN = """
import os, signal, sys
import torch
from tuneforge.native import mkl_dispatch
mkl_dispatch.enable()  # the kernels the test process runs on (tests/conftest.py), as training chooses them
torch.set_num_threads(1)
sys.path.insert(0, {tests!r})
from test_loop import _cfg, _data, _run
from tuneforge.models import tiny_llama
def on_log(r):
    if r["step"] == 5:
        os.kill(os.getpid(), signal.SIGKILL)
_run(tiny_llama(vocab_size=64), _data(), _cfg(batch_size=2, grad_accum=2, max_steps=9, save_every=2,
           scheduler="cosine", warmup_ratio=0.2), __import__("pathlib").Path({run!r}), on_log=on_log)
"""


def test_sigkill_and_resume_ends_with_the_same_weights(tmp_path, one_thread):
    import subprocess
    import sys
    from pathlib import Path

    cfg = dict(batch_size=2, grad_accum=2, max_steps=9, save_every=2, scheduler="cosine", warmup_ratio=0.2)
    reference = tiny_llama(vocab_size=64)
    _run(reference, _data(), _cfg(**cfg), tmp_path / "ref")

    run = tmp_path / "killed"
    code = _KILLED_RUN.format(tests=str(Path(__file__).parent), run=str(run))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    assert [p.name for p in list_checkpoints(run)] == ["step-00000002", "step-00000004"]

    resumed = tiny_llama(vocab_size=64)
    result = _run(resumed, _data(), _cfg(**cfg, resume="auto"), run)
    assert result.history[0]["step"] == 5
    for (name, a), (_, b) in zip(reference.named_parameters(), resumed.named_parameters()):
        assert torch.allclose(a, b, atol=1e-6), name


def test_keep_last_and_nan_loss_stops(tmp_path):
    model = tiny_llama(vocab_size=64)
    _run(model, _data(), _cfg(batch_size=2, max_steps=6, save_every=1, keep_last=2), tmp_path)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000005", "step-00000006"]
    with torch.no_grad():
        model.model.embed_tokens.weight.fill_(float("nan"))
    from tuneforge.errors import TuneforgeError
    with pytest.raises(TuneforgeError, match="loss is nan"):
        _run(model, _data(), _cfg(batch_size=2, max_steps=2), tmp_path / "b")


def test_ctrl_c_writes_a_checkpoint_and_stops(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    code = _KILLED_RUN.format(tests=str(Path(__file__).parent), run=str(tmp_path)).replace(
        "signal.SIGKILL", "signal.SIGINT").replace("save_every=2", "save_every=None")
    code += "\nprint('interrupted' if _r.interrupted else 'finished')"
    code = code.replace("\n_run(", "\n_r = _run(")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "interrupted"
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000005"]


def test_each_epoch_is_batched_once(tmp_path):
    """Packing an epoch is not free (a bin-packing pass over every sample): the step count and the first
    epoch share one build of epoch 0."""
    model = tiny_llama(vocab_size=64)
    data, cfg, built = _data(), _cfg(batch_size=4, epochs=3, packing=True), []

    def batches_of(epoch):
        built.append(epoch)
        return epoch_batches(data, batch_size=cfg.batch_size, packing=True, block_size=64, pad_id=0,
                             seed=cfg.seed, epoch=epoch)

    train_loop(model, CausalLMLoss(model, whole_forward=False), batches_of, cfg, run_dir=tmp_path)
    assert built == [0, 1, 2]
