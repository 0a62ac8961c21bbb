"""Rotary position embeddings of Llama-family attention, `x * cos + rotate_half(x) * sin` for the query
and the key, as one autograd function on CPU.

Eager torch builds `rotate_half(x)` with two slices, a negation and a concatenation, then multiplies
and adds: six passes over each of q and k forward, and backward about as many, with zero-filled
buffers for the slices' gradients. The compiled kernel (`kernels.c`) rotates each direction in one
pass, in the memory layouts eager torch would use (the projections' (tokens, heads) layout).
Measurements: benchmarks/RESULTS.md.

transformers calls RoPE as a module-level function from the attention's forward. Where the
`kernels` package is installed, transformers gives each attention module a private copy of that
function (`_kernel_funcs`, its hook for swapping in other kernels), and `use_fused_rope` reroutes
that copy; without it the attention runs unchanged. Other devices, dtypes and layouts take the
eager formula, the one transformers' function computes.
"""

from __future__ import annotations

import ctypes
import sys
import types

import torch
from torch import nn

from tuneforge.native.build import library, loaded
from tuneforge.native.kernel_hub import own_forwards_stay

# Attention classes whose `apply_rotary_pos_emb` is exactly `(x * cos) + (rotate_half(x) * sin)` for q and k.
_ROPE_ATTENTIONS = {"LlamaAttention", "MistralAttention", "Qwen2Attention", "Qwen3Attention"}
_FUNCTION = "apply_rotary_pos_emb"


def _rows_ptr(t: torch.Tensor) -> int:
    """The address of a float32 CPU tensor whose last dimension is contiguous (the kernel takes the
    other strides as arguments)."""
    if not (t.dtype == torch.float32 and t.device.type == "cpu" and t.stride(-1) == 1):
        raise ValueError(f"rope takes float32 CPU tensors with contiguous rows, got {t.dtype} on {t.device}")
    return t.data_ptr()


def _rotate(q, k, cos, sin, q_out, k_out, transpose: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """q_out, k_out = RoPE(q), RoPE(k) (or its transpose, for gradients), in one call of the kernel:
    q, q_out (B, H, T, D), k, k_out (B, H_kv, T, D), rows contiguous; cos, sin (B or 1, T, D) contiguous."""
    bs, _, t, d = q.shape

    def strides(x, out):  # batch, head and position strides of the input, then of the output
        return (ctypes.c_int64 * 6)(*x.stride()[:3], *out.stride()[:3])

    q_strides, k_strides = strides(q, q_out), strides(k, k_out)  # bound: C reads them during the call
    loaded().rope(_rows_ptr(q), _rows_ptr(q_out), q.shape[1], q_strides, _rows_ptr(k), _rows_ptr(k_out), k.shape[1],
                   k_strides, _rows_ptr(cos), _rows_ptr(sin), t * d if cos.shape[0] > 1 else 0, bs, t, d,
                   int(transpose))
    return q_out, k_out


def _rows(x: torch.Tensor) -> torch.Tensor:
    return x if x.stride(-1) == 1 else x.contiguous()


class _Rope(torch.autograd.Function):
    """RoPE of q (B, H, T, D) and k (B, H_kv, T, D) with cos, sin (B or 1, T, D). Outputs and gradients
    take their inputs' memory layouts, as eager torch's element-wise results do."""

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
        q, k, cos, sin = _rows(q), _rows(k), cos.contiguous(), sin.contiguous()
        ctx.save_for_backward(cos, sin)
        q_out, k_out = _rotate(q, k, cos, sin, torch.empty_like(q), torch.empty_like(k), transpose=False)
        ctx.layouts = [(o.shape, o.stride()) for o in (q_out, k_out)]
        return q_out, k_out

    @staticmethod
    def backward(ctx, dq: torch.Tensor | None, dk: torch.Tensor | None):
        cos, sin = ctx.saved_tensors
        (q_shape, _), (k_shape, _) = ctx.layouts
        # A query or key that reached the loss through nothing has no gradient: zeros rotate to zeros.
        dq = _rows(dq) if dq is not None else torch.zeros(q_shape)
        dk = _rows(dk) if dk is not None else torch.zeros(k_shape)
        q_grad, k_grad = (torch.empty_strided(shape, stride) for shape, stride in ctx.layouts)
        return (*_rotate(dq, dk, cos, sin, q_grad, k_grad, transpose=True), None, None)


def _applies(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, unsqueeze_dim: int) -> bool:
    if unsqueeze_dim != 1 or q.dim() != 4 or k.dim() != 4 or cos.dim() != 3 or sin.shape != cos.shape:
        return False
    bs, _, t, d = q.shape
    tensors = (q, k, cos, sin)
    return (all(x.device.type == "cpu" and x.dtype == torch.float32 for x in tensors)
            and k.shape[0] == bs and k.shape[2:] == (t, d) and d % 2 == 0 and cos.shape[0] in (1, bs)
            and cos.shape[1:] == (t, d) and not (cos.requires_grad or sin.requires_grad) and library() is not None)


def _eager(q, k, cos, sin, unsqueeze_dim: int = 1):
    """transformers' formula (its function itself would route the call back here)."""
    from transformers.models.llama.modeling_llama import rotate_half

    cos, sin = cos.unsqueeze(unsqueeze_dim), sin.unsqueeze(unsqueeze_dim)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


def apply_rotary_pos_emb(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                         unsqueeze_dim: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers' `apply_rotary_pos_emb` of Llama-family models, through the kernel where it applies."""
    if _applies(q, k, cos, sin, unsqueeze_dim):
        return _Rope.apply(q, k, cos, sin)
    return _eager(q, k, cos, sin, unsqueeze_dim)


def _fused_forward(self, q, k, cos, sin, unsqueeze_dim: int = 1):
    return apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim)


def _own_rope(attention: nn.Module) -> nn.Module | None:
    """The attention module's private copy of its modeling file's `apply_rotary_pos_emb`, found by the
    name transformers' `kernels` hook files it under (the function's name, else its kernel layer name)."""
    shared = getattr(sys.modules.get(type(attention).__module__), _FUNCTION, None)
    name = getattr(shared, "__name__", None) or getattr(shared, "kernel_layer_name", None)
    own = getattr(attention, "_kernel_funcs", {}).get(name)
    return own if isinstance(own, nn.Module) else None


def use_fused_rope(model: nn.Module) -> int:
    """Route the RoPE of every Llama-family attention module of `model` through `apply_rotary_pos_emb`
    (where transformers gives the module its own copy of the function); returns how many (none where
    transformers' kernel hub routes them, see `kernel_hub`)."""
    if not own_forwards_stay(model):
        return 0
    fused = 0
    for module in model.modules():
        if type(module).__name__ in _ROPE_ATTENTIONS and (own := _own_rope(module)) is not None:
            own.forward = types.MethodType(_fused_forward, own)
            fused += 1
    return fused
