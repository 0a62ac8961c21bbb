"""Dropout on the LoRA branch input, with half the CPU cost of `nn.Dropout`.

On CPU, `nn.Dropout` draws one 32-bit number from the Mersenne Twister per element, and with LoRA on
every linear layer of a small model those draws cost about a tenth of a training step (seven masks
per layer, each as large as the layer's input). `FastDropout` cuts four 16-bit lanes out of each
64-bit draw instead, so the mask costs a quarter of the random numbers. The drop probability is
rounded to a multiple of 1/65536 (0.05 becomes 0.050003), and the survivors are scaled by the
inverse of that rounded keep rate, so the expected output still equals the input. The numbers come
from torch's default generator: seeds, and the RNG states that checkpoints save, govern them as they
govern `nn.Dropout`. On other devices, whose generators are fast, it is plain dropout.

Dropout modules hold no weights, so an adapter trained with it saves and loads exactly as peft's.
"""

from __future__ import annotations

import torch
from torch import nn

_LANES = 65536  # 16-bit lanes


class _ScaledMask(torch.autograd.Function):
    """x * keep * scale, saving the one-byte mask (not a float copy) for the backward pass."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return x.mul(keep.to(x.dtype)).mul_(scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (keep,) = ctx.saved_tensors
        return grad.mul(keep.to(grad.dtype)).mul_(ctx.scale), None, None


def keep_mask(shape: torch.Size, p: float) -> torch.Tensor:
    """A uint8 mask, each element 1 with probability 1 - round(p * 65536) / 65536.

    uint8 rather than bool, and multiplied as floats: on CPU torch's element-wise kernels for bool
    operands are several times slower than for uint8 and float ones."""
    n = shape.numel()
    draws = torch.empty((n + 3) // 4, dtype=torch.int64).random_(torch.iinfo(torch.int64).min, None)
    lanes = draws.view(torch.int16)[:n].view(shape)  # each uniform over [-32768, 32767]
    return torch.ge(lanes, round(p * _LANES) - _LANES // 2, out=torch.empty(shape, dtype=torch.uint8))


class FastDropout(nn.Module):
    def __init__(self, p: float):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self.scale = 1 / (1 - round(p * _LANES) / _LANES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if x.device.type != "cpu":
            return nn.functional.dropout(x, self.p, training=True)
        return _ScaledMask.apply(x, self.keep(x), self.scale)

    def keep(self, x: torch.Tensor) -> torch.Tensor:
        """A uint8 keep mask shaped like `x`, for callers that apply it themselves (and scale by `self.scale`)."""
        if x.device.type == "cpu":
            return keep_mask(x.shape, self.p)
        return (torch.rand(x.shape, device=x.device) >= 1 - 1 / self.scale).to(torch.uint8)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def use_fast_dropout(model: nn.Module) -> int:
    """Swap every LoRA branch's `nn.Dropout` (peft's `lora_dropout` dicts) for `FastDropout`.
    Returns how many were swapped."""
    swapped = 0
    for module in model.modules():
        branches = getattr(module, "lora_dropout", None)
        if not isinstance(branches, nn.ModuleDict):
            continue
        for name, dropout in branches.items():
            if type(dropout) is nn.Dropout:
                branches[name] = FastDropout(dropout.p)
                swapped += 1
    return swapped
