"""The RMSNorm of Llama-family models, `w * x * rsqrt(mean(x²) + eps)`, as one autograd function on CPU.

Eager torch runs it as six element-wise operations forward (pow, mean, add, rsqrt and two products)
and about twice as many backward, each a pass over memory and a parallel region of its own, and keeps
the normalised `x * rsqrt(...)` alive for the weight's gradient. The compiled kernel (`kernels.c`)
does each direction in one pass and keeps only `x` and one number per row, so a training step holds
one activation-sized tensor less per norm (two per layer). Other devices and dtypes, and machines
without the kernels, run the module's own forward. Measurements: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import types

import torch
from torch import nn

from tuneforge.native.build import library, loaded, ptr
from tuneforge.native.kernel_hub import own_forwards_stay

# Norm classes whose forward is exactly `weight * (x * rsqrt(x.pow(2).mean(-1) + variance_epsilon))` in
# float32 (Gemma's `1 + weight` is not among them).
_RMS_NORMS = {"LlamaRMSNorm", "MistralRMSNorm", "Qwen2RMSNorm", "Qwen3RMSNorm"}
_BLOCK_ROWS = 64  # NORM_ROWS in kernels.c: the rows of one partial sum of the weight's gradient


class _RMSNorm(torch.autograd.Function):
    """w ⊙ x r over the last dimension, r = 1 / sqrt(mean(x²) + eps), for float32 CPU tensors."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        x, weight = x.contiguous(), weight.contiguous()
        c = x.shape[-1]
        n = x.numel() // c
        y, r = torch.empty_like(x), torch.empty(n)
        loaded().rmsnorm_forward(ptr(x), ptr(weight), ptr(y), ptr(r), n, c, eps)
        ctx.save_for_backward(x, weight, r)
        return y

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x, weight, r = ctx.saved_tensors
        dy = dy.contiguous()
        c = x.shape[-1]
        n = x.numel() // c
        dx = torch.empty_like(x)
        dw = part = None
        if ctx.needs_input_grad[1]:
            dw, part = torch.empty_like(weight), torch.empty((n + _BLOCK_ROWS - 1) // _BLOCK_ROWS, c)
        loaded().rmsnorm_backward(ptr(dy), ptr(x), ptr(weight), ptr(r), ptr(dx), None if dw is None else ptr(dw),
                                   None if part is None else ptr(part), n, c)
        return dx, dw, None


def _fused_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
    """The norm's own forward, through `_RMSNorm` where that computes the same thing."""
    x, weight = hidden_states, self.weight
    if (x.device.type == weight.device.type == "cpu" and x.dtype == weight.dtype == torch.float32
            and weight.shape == x.shape[-1:] and x.numel() > 0 and library() is not None):
        return _RMSNorm.apply(x, weight, float(self.variance_epsilon))
    return type(self).forward(self, hidden_states)


def use_fused_rms_norm(model: nn.Module) -> int:
    """Route every Llama-family RMSNorm of `model` through `_RMSNorm`; returns how many (none where
    transformers' kernel hub routes them, see `kernel_hub`)."""
    if not own_forwards_stay(model):
        return 0
    fused = 0
    for module in model.modules():
        if type(module).__name__ in _RMS_NORMS and isinstance(getattr(module, "variance_epsilon", None), (int, float)):
            module.forward = types.MethodType(_fused_forward, module)
            fused += 1
    return fused
