"""LoRA's dropout and low-rank products fused, on CPU: wrappers of the compiled `tuneforge.native` kernels.

Every function takes a mask as (seed, threshold): element e of a row-major (N, in) tensor is kept
when lane e of the SplitMix64 stream at `seed` is ≥ `threshold` (of 65536); threshold 0 keeps all.
Tensors are float32 on the CPU; `fits` says whether a LoRA layer's shapes suit the kernels.
"""

from __future__ import annotations

import torch

from tuneforge.native.build import library, ptr

_VEC = 8  # floats per vector in the kernels: the LoRA rank must be a multiple


def fits(x: torch.Tensor, rank: int) -> bool:
    """Whether the kernels can run a LoRA layer of this rank on input `x` (its weights share x's dtype)."""
    return x.device.type == "cpu" and x.dtype == torch.float32 and rank % _VEC == 0 and library() is not None


def masked_copy(src: torch.Tensor, seed: int, threshold: int, out: torch.Tensor | None = None, *,
                accumulate: bool = False) -> torch.Tensor:
    """keep ⊙ src, into `out` (a new tensor by default); `out += keep ⊙ src` with `accumulate`."""
    src = src.contiguous()
    out = torch.empty_like(src) if out is None else out
    if out.numel() != src.numel():
        raise ValueError(f"masked_copy: {out.numel()} output elements for {src.numel()} input elements")
    library().masked_copy(ptr(src), ptr(out), src.numel(), seed, threshold, int(accumulate))
    return out


def down(x: torch.Tensor, lora_a: torch.Tensor, seed: int, threshold: int) -> torch.Tensor:
    """(keep ⊙ x) A^T: x (N, in), A (r, in) -> (N, r)."""
    # Contiguous copies are bound to names: a temporary would be freed before the C code reads it.
    x, a_t = x.contiguous(), lora_a.t().contiguous()
    (n, width), r = x.shape, lora_a.shape[0]
    low = torch.empty(n, r)
    library().lora_down(ptr(x), ptr(a_t), ptr(low), n, width, r, seed, threshold)
    return low


def down_grad(grad_low: torch.Tensor, x: torch.Tensor, seed: int, threshold: int) -> torch.Tensor:
    """grad_low^T (keep ⊙ x): grad_low (N, r), x (N, in) -> (r, in), the gradient of A."""
    grad_low, x = grad_low.contiguous(), x.contiguous()
    (n, width), r = x.shape, grad_low.shape[1]
    grad_a = torch.empty(r, width)
    library().lora_down_grad(ptr(grad_low), ptr(x), ptr(grad_a), n, width, r, seed, threshold)
    return grad_a


def add_up_input_grad_(grad_x: torch.Tensor, grad_low: torch.Tensor, lora_a: torch.Tensor, seed: int,
                       threshold: int) -> torch.Tensor:
    """grad_x += keep ⊙ (grad_low A), in place: grad_x (N, in) contiguous, grad_low (N, r), A (r, in)."""
    grad_low, lora_a = grad_low.contiguous(), lora_a.contiguous()
    (n, width), r = grad_x.shape, lora_a.shape[0]
    library().lora_up_input_grad(ptr(grad_low), ptr(lora_a), ptr(grad_x), n, width, r, seed, threshold)
    return grad_x
