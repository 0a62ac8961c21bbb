"""The SwiGLU of Llama-family MLPs, `down(silu(gate(x)) * up(x))`, as one autograd function on CPU.

Eager torch computes `silu(g) * u` in three passes over memory forward (silu, then the product)
and five backward, and keeps `silu(g)` alive for the backward pass besides `g` and `u`. The
compiled kernel (`kernels.c`) does each direction in one pass and keeps only `g` and `u`, so a
training step holds one activation-sized tensor less per layer (measured in benchmarks/RESULTS.md).
Other devices and dtypes, and machines without the kernels, run the module's own forward.
"""

from __future__ import annotations

import types

import torch
from torch import nn

from tuneforge.native.build import library, ptr

# MLP classes whose forward is exactly `down_proj(act_fn(gate_proj(x)) * up_proj(x))`.
_SWIGLU_MLPS = {"LlamaMLP", "MistralMLP", "Qwen2MLP", "Qwen3MLP"}


class _SwiGLU(torch.autograd.Function):
    """silu(g) * u for float32 CPU tensors g, u of one shape."""

    @staticmethod
    def forward(ctx, g: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        g, u = g.contiguous(), u.contiguous()
        h = torch.empty_like(g)
        library().swiglu_forward(ptr(g), ptr(u), ptr(h), g.numel())
        ctx.save_for_backward(g, u)
        return h

    @staticmethod
    def backward(ctx, dh: torch.Tensor):
        g, u = ctx.saved_tensors
        dh = dh.contiguous()
        dg, du = torch.empty_like(g), torch.empty_like(u)
        library().swiglu_backward(ptr(dh), ptr(g), ptr(u), ptr(dg), ptr(du), g.numel())
        return dg, du


def swiglu(g: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """silu(g) * u, through the kernel where it applies."""
    if (g.device.type == u.device.type == "cpu" and g.dtype == u.dtype == torch.float32 and g.shape == u.shape
            and library() is not None):
        return _SwiGLU.apply(g, u)
    return nn.functional.silu(g) * u


def _fused_forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.down_proj(swiglu(self.gate_proj(x), self.up_proj(x)))


def _is_silu(act: nn.Module) -> bool:
    return isinstance(act, nn.SiLU) or type(act).__name__ == "SiLUActivation"


def use_fused_swiglu(model: nn.Module) -> int:
    """Route every Llama-family SwiGLU MLP of `model` through `swiglu`; returns how many."""
    fused = 0
    for module in model.modules():
        if type(module).__name__ in _SWIGLU_MLPS and _is_silu(getattr(module, "act_fn", None)):
            module.forward = types.MethodType(_fused_forward, module)
            fused += 1
    return fused
