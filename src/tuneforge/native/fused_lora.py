"""A LoRA linear layer as one autograd function: the same numbers as peft's, fewer passes over memory.

peft computes `base(x) + lora_B(lora_A(dropout(x))) * scaling` as five autograd nodes, each writing
a fresh activation-sized tensor (the dropped input, the LoRA output, its scaled copy, the sum) that
the backward pass reads again. `_LoraLinear` instead adds the LoRA product into the base output
inside the matrix multiply (`addmm`'s accumulate), folds the scaling and dropout's 1 / keep-rate into
that multiply's `alpha`, and keeps only the layer input (shared with its other readers) for the
backward pass. On CPU in float32 the dropped input is never written at all: the compiled kernels of
`lora_kernels` draw the dropout mask from its seed inside the three products that read it, forward
and backward (elsewhere the dropped input is built with torch, and again in backward from the
stored one-byte mask). Measurements: benchmarks/RESULTS.md.

The parameters are peft's own, so adapters save, load and merge exactly as before. Only the plain
case is fused: one active vanilla LoRA adapter (no DoRA) on a frozen `nn.Linear`, not merged, all in
the input's dtype (autocast to another dtype excluded); every other case runs peft's forward unchanged.
"""

from __future__ import annotations

import types

import torch
from torch import nn

from tuneforge.native import lora_kernels
from tuneforge.native.fast_dropout import DropMask, FastDropout
from tuneforge.native.onednn_mm import linear, mm


class _LoraLinear(torch.autograd.Function):
    """x W^T + b + alpha * (keep ⊙ x) A^T B^T, for x (N, in), W (out, in), A (r, in), B (out, r);
    mask is a `DropMask` or None (no dropout). W and b are frozen."""

    @staticmethod
    def forward(ctx, x, weight, bias, lora_a, lora_b, mask: DropMask | None, alpha: float):
        low = _down(x, lora_a, mask)  # (N, r)
        out = linear(x, weight, bias)
        out.addmm_(low, lora_b.t(), alpha=alpha)
        ctx.mask, keep = (None, None) if mask is None else mask.detached()
        ctx.save_for_backward(x, keep, lora_a, lora_b, low, weight)
        ctx.alpha = alpha
        return out

    @staticmethod
    def backward(ctx, grad):  # grad (N, out)
        x, keep, lora_a, lora_b, low, weight = ctx.saved_tensors
        mask = None if ctx.mask is None else ctx.mask.attached(keep)
        grad_low = mm(grad, lora_b).mul_(ctx.alpha)  # (N, r)
        grad_b = mm(grad.t(), low).mul_(ctx.alpha) if ctx.needs_input_grad[4] else None
        grad_a = _down_grad(grad_low, x, mask) if ctx.needs_input_grad[3] else None
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = _add_up_input_grad_(mm(grad, weight), grad_low, lora_a, mask)
        return grad_x, None, None, grad_a, grad_b, None, None


# The three products that touch the dropped input. With a seeded mask on CPU the compiled kernels
# draw the mask inside the product; otherwise torch builds the dropped input (again in backward).

def _kernels_apply(x: torch.Tensor, rank: int, mask: DropMask | None) -> bool:
    return mask is not None and mask.seeded and lora_kernels.fits(x, rank)


def _down(x, lora_a, mask):
    """(keep ⊙ x) A^T, (N, r)."""
    if _kernels_apply(x, lora_a.shape[0], mask):
        return lora_kernels.down(x, lora_a, mask.seed, mask.threshold)
    return linear(x if mask is None else mask.apply(x), lora_a)


def _down_grad(grad_low, x, mask):
    """grad_low^T (keep ⊙ x), the gradient of A, (r, in)."""
    if _kernels_apply(x, grad_low.shape[1], mask):
        return lora_kernels.down_grad(grad_low, x, mask.seed, mask.threshold)
    return mm(grad_low.t(), x if mask is None else mask.apply(x))


def _add_up_input_grad_(grad_x, grad_low, lora_a, mask):
    """grad_x += keep ⊙ (grad_low A), in place."""
    if _kernels_apply(grad_x, lora_a.shape[0], mask):
        return lora_kernels.add_up_input_grad_(grad_x, grad_low, lora_a, mask.seed, mask.threshold)
    if mask is None:
        return grad_x.addmm_(grad_low, lora_a)
    return mask.add_applied_(grad_x, grad_low @ lora_a)


def _fused_forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """peft's `lora.Linear.forward`, through `_LoraLinear` where that computes the same thing."""
    adapter = _plain_adapter(self, x) if not args and not kwargs else None
    if adapter is None:
        return type(self).forward(self, x, *args, **kwargs)
    dropout = self.lora_dropout[adapter]
    mask, keep_scale = None, 1.0
    if isinstance(dropout, FastDropout) and dropout.training and dropout.p > 0:
        mask, keep_scale = dropout.mask(x), dropout.scale
    base = self.base_layer
    flat = x.reshape(-1, x.shape[-1])
    out = _LoraLinear.apply(flat, base.weight, base.bias, self.lora_A[adapter].weight, self.lora_B[adapter].weight,
                            mask, self.scaling[adapter] * keep_scale)
    return out.view(*x.shape[:-1], out.shape[-1])


def _plain_adapter(layer, x: torch.Tensor) -> str | None:
    """The one active vanilla adapter when the fused path applies, else None."""
    if layer.disable_adapters or layer.merged or len(layer.active_adapters) != 1:
        return None
    device = x.device.type
    if torch.is_autocast_enabled(device) and torch.get_autocast_dtype(device) != x.dtype:
        return None  # autocast would cast inside forward, not in backward
    adapter = layer.active_adapters[0]
    if adapter not in layer.lora_A or adapter in layer.lora_variant:
        return None
    base = layer.base_layer
    dropout = layer.lora_dropout[adapter]
    if type(base) is not nn.Linear or base.weight.requires_grad or (base.bias is not None and base.bias.requires_grad):
        return None
    if not (isinstance(dropout, (FastDropout, nn.Identity))
            or (isinstance(dropout, nn.Dropout) and not dropout.training)):
        return None
    weights = (base.weight, layer.lora_A[adapter].weight, layer.lora_B[adapter].weight)
    # DeepSpeed ZeRO-3 gathers a module's weights in hooks around its own forward, which this path skips.
    if any(hasattr(w, "ds_id") or w.dtype != x.dtype or w.device != x.device for w in weights):
        return None
    return adapter


def use_fused_lora(model: nn.Module) -> int:
    """Route every peft `lora.Linear` of `model` through `_fused_forward`; returns how many."""
    from peft.tuners.lora.layer import Linear

    fused = 0
    for module in model.modules():
        if type(module) is Linear:
            module.forward = types.MethodType(_fused_forward, module)
            fused += 1
    return fused
