"""Float32 matrix products on CPU through oneDNN's brgemm kernels instead of torch's BLAS (MKL).

torch sends a float32 `x @ w.t()` on CPU to MKL's sgemm, which on CPUs it does not tune for (AMD EPYC
among them) runs well below the cores' AVX-512 peak: ~210 GFLOP/s on a 2-core EPYC where oneDNN's
inner product, on the same tensors and still in IEEE float32, reaches ~450-500, and 3× at decoding's
few rows. `linear` and `mm` compute what `F.linear` and `@` compute, through oneDNN where it applies
(float32 CPU tensors, neither needing autograd, row- or column-major), and fall back to torch
elsewhere, and with `TUNEFORGE_NATIVE=0`. Where `mkl_dispatch` has MKL run its fast kernels (on AMD
CPUs, when it comes before the process's first product), they match or beat oneDNN's, without the
copies oneDNN's layouts cost, and this module steps aside. `Linear` is the autograd function for a whole `nn.Linear`,
and `use_onednn_linear` routes a model's plain linear layers through it. Measurements: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import logging
import types
from functools import cache

import torch
from torch import nn

from tuneforge.native import mkl_dispatch
from tuneforge.native.build import switched_off

log = logging.getLogger(__name__)


def _inner_product(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


@cache
def enabled() -> bool:
    """Whether tuneforge's float32 products go through oneDNN here: not with `TUNEFORGE_NATIVE=0`, not
    where MKL runs its fast kernels (`mkl_dispatch`: then torch's own products are as fast or faster,
    without the copies oneDNN's layouts cost), and not where a first small product fails or
    disagrees with torch's."""
    if switched_off() or not torch.backends.mkldnn.is_available() or mkl_dispatch.enable():
        return False
    try:
        x, w = torch.arange(24.0).view(3, 8) / 7, torch.arange(40.0).view(5, 8) / 11  # no draw from torch's RNG
        return bool(torch.allclose(_inner_product(x, w, None), x @ w.t(), rtol=1e-4, atol=1e-5))
    except (AttributeError, RuntimeError) as err:  # no such op in this build, or no kernel for this CPU
        log.info("oneDNN float32 products unavailable (%s): torch's own run instead", err)
        return False


def _strided_ok(t: torch.Tensor) -> bool:
    """oneDNN takes a matrix stored by rows or by columns, not an arbitrary strided view."""
    return t.stride(-1) == 1 or (t.dim() == 2 and t.stride(0) == 1)


def _fits(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None) -> bool:
    """float32 CPU operands oneDNN takes (autograd aside)."""
    return (x.dtype == w.dtype == torch.float32 and x.device.type == w.device.type == "cpu"
            and w.dim() == 2 and x.dim() >= 2 and x.shape[-1] > 0 and _strided_ok(w) and _strided_ok(x)
            and (bias is None or (bias.dtype == torch.float32 and bias.dim() == 1)) and enabled())


def _tracked(*tensors: torch.Tensor | None) -> bool:
    """Whether autograd would record a product of these (then only an autograd function may compute it)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x W^T (+ b), x (..., in), W (out, in): `F.linear` without autograd."""
    if _fits(x, weight, bias) and not _tracked(x, weight, bias):
        return _inner_product(x if x.dim() == 2 or x.is_contiguous() else x.contiguous(), weight, bias)
    return nn.functional.linear(x, weight, bias)


def mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b for matrices a (n, k), b (k, m), without autograd."""
    if a.dim() == 2 and _fits(a, b) and not _tracked(a, b):
        return _inner_product(a, b.t(), None)
    return a @ b


class Linear(torch.autograd.Function):
    """x W^T + b for x (N, in), W (out, in), with each product of the backward pass through `mm`."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x if weight.requires_grad else None, weight)
        ctx.has_bias = bias is not None
        return _inner_product(x, weight, bias)  # the caller checked `_fits`

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # grad (N, out)
        x, weight = ctx.saved_tensors
        grad_x = mm(grad, weight) if ctx.needs_input_grad[0] else None
        grad_w = mm(grad.t(), x) if ctx.needs_input_grad[1] else None
        grad_b = grad.sum(dim=0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b


def _forward(self: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    # Under autocast torch's linear casts to the autocast dtype; this path would stay in float32.
    if torch.is_autocast_enabled(x.device.type) or not _fits(x, self.weight, self.bias):
        return nn.functional.linear(x, self.weight, self.bias)
    flat = x.reshape(-1, x.shape[-1])
    if _tracked(x, self.weight, self.bias):
        out = Linear.apply(flat, self.weight, self.bias)
    else:
        out = _inner_product(flat, self.weight, self.bias)
    return out.view(*x.shape[:-1], self.out_features)


def use_onednn_linear(model: nn.Module) -> int:
    """Route every plain `nn.Linear` of `model` through `_forward` (not subclasses, such as quantized
    layers; the base layers inside peft's LoRA layers too, which `fused_lora` bypasses where it
    applies); returns how many."""
    routed = 0
    for module in model.modules():
        if type(module) is nn.Linear:
            module.forward = types.MethodType(_forward, module)  # type: ignore[method-assign]
            routed += 1
    return routed
