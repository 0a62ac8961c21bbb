"""Run by test_distributed.py under torchrun: trains a tiny model and writes its losses and weights."""

import json
import sys

import torch
from test_loop import _cfg, _data, _run

from tuneforge.models import tiny_llama

out, grad_accum = sys.argv[1], int(sys.argv[2])
torch.set_num_threads(1)
model = tiny_llama(vocab_size=64)
result = _run(model, _data(16), _cfg(batch_size=2, grad_accum=grad_accum, max_steps=3, learning_rate=1e-2), None)
distributed = torch.distributed.is_initialized()
if not distributed or torch.distributed.get_rank() == 0:
    json.dump({"losses": [r["loss"] for r in result.history],
               "weights": {n: p.detach().flatten()[:50].tolist() for n, p in model.named_parameters()}},
              open(out, "w"))
if distributed:  # leave together: a rank exiting while gloo threads still run aborts the other
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
