"""Dropout on the LoRA branch input, at a small fraction of the CPU cost of `nn.Dropout`.

On CPU, `nn.Dropout` draws one 32-bit number from the Mersenne Twister per element and then makes
two more passes over memory (a float mask, the product); with LoRA on every linear layer of a small
model that is a noticeable share of a training step (seven masks per layer, each as large as the
layer's input; benchmarks/RESULTS.md). `FastDropout` instead draws one 64-bit seed from torch's generator per mask and
lets tuneforge's compiled CPU kernels (`tuneforge.native`) expand it into SplitMix64 numbers, cut
four 16-bit lanes out of each, compare them with the drop threshold and apply the result, all in
one pass. The backward pass regenerates the mask from the seed, so nothing mask-sized is stored.

The drop probability is rounded to a multiple of 1/65536 (0.05 becomes 0.050003), and the survivors
are scaled by the inverse of that rounded keep rate, so the expected output still equals the input.
Seeds, and the RNG states that checkpoints save, govern the masks as they govern `nn.Dropout`'s.
Without a C compiler the 16-bit lanes come from torch's generator instead (slower; other masks, the
same distribution). On other devices, whose generators are fast, it is plain dropout.

Dropout modules hold no weights, so an adapter trained with it saves and loads exactly as peft's.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from tuneforge.native import lora_kernels

_LANES = 65536  # 16-bit lanes


@dataclasses.dataclass(frozen=True)
class DropMask:
    """Which elements of a tensor dropout keeps (the 1 / keep-rate scale not included): a stored uint8
    tensor, or the seed from which the compiled kernel regenerates them."""

    keep: torch.Tensor | None = None
    seed: int | None = None
    threshold: int = 0

    @property
    def seeded(self) -> bool:
        return self.seed is not None

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """keep ⊙ x, as a new tensor."""
        if self.seeded:
            return lora_kernels.masked_copy(x, self.seed, self.threshold)
        return x * self.keep.view(x.shape).to(x.dtype)

    def add_applied_(self, out: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """out += keep ⊙ t, in place (`out` contiguous)."""
        if self.seeded:
            return lora_kernels.masked_copy(t, self.seed, self.threshold, out, accumulate=True)
        return out.addcmul_(t, self.keep.view(t.shape).to(t.dtype))

    def detached(self) -> tuple[DropMask, torch.Tensor | None]:
        """This mask without its tensor, and the tensor: autograd functions save the tensor with
        `save_for_backward` (so activation checkpointing can free it) and keep the rest on `ctx`."""
        return dataclasses.replace(self, keep=None), self.keep

    def attached(self, keep: torch.Tensor | None) -> DropMask:
        return dataclasses.replace(self, keep=keep)


class _ScaledMask(torch.autograd.Function):
    """x ⊙ keep * scale."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, mask: DropMask, scale: float) -> torch.Tensor:
        ctx.mask, keep = mask.detached()
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return mask.apply(x).mul_(scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (keep,) = ctx.saved_tensors
        return ctx.mask.attached(keep).apply(grad).mul_(ctx.scale), None, None


def keep_mask(shape: torch.Size, p: float) -> torch.Tensor:
    """A uint8 mask from torch's generator, each element 1 with probability 1 - round(p * 65536) / 65536.

    uint8 rather than bool, and multiplied as floats: on CPU torch's element-wise kernels for bool
    operands are several times slower than for uint8 and float ones."""
    n = shape.numel()
    draws = torch.empty((n + 3) // 4, dtype=torch.int64).random_(torch.iinfo(torch.int64).min, None)
    lanes = draws.view(torch.int16)[:n].view(shape)  # each uniform over [-32768, 32767]
    return torch.ge(lanes, round(p * _LANES) - _LANES // 2, out=torch.empty(shape, dtype=torch.uint8))


class FastDropout(nn.Module):
    def __init__(self, p: float):
        super().__init__()
        if not 0 <= p < 1 or round(p * _LANES) == _LANES:
            raise ValueError(f"dropout probability must be in [0, 1) (at most 1 - 1/65536 here), got {p}")
        self.p = p
        self.scale = 1 / (1 - round(p * _LANES) / _LANES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if x.device.type != "cpu":
            return nn.functional.dropout(x, self.p, training=True)
        return _ScaledMask.apply(x, self.mask(x), self.scale)

    def mask(self, x: torch.Tensor) -> DropMask:
        """A fresh mask for `x`, for callers that apply it themselves (and scale by `self.scale`)."""
        if x.device.type != "cpu":
            return DropMask((torch.rand(x.shape, device=x.device) >= 1 - 1 / self.scale).to(torch.uint8))
        if x.dtype == torch.float32 and lora_kernels.library() is not None:
            seed = int(torch.empty((), dtype=torch.int64).random_())  # from torch's generator: seeded, resumable
            return DropMask(seed=seed, threshold=round(self.p * _LANES))
        return DropMask(keep_mask(x.shape, self.p))

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
