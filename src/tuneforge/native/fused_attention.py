"""Causal attention over the samples packed in rows, forward and backward, in tuneforge's C kernels.

Training on packed rows attends within each sample (`lm_loss._segment_attention`). torch's CPU flash
attention does it one sample at a time, after copying each sample's slices and repeating the kv heads
of grouped-query attention, and its blocks of 256 x 512 scores compute much above the causal
diagonal. `kernels.c` instead takes the row's projections where they lie (any row and head strides),
reads a kv head for its whole group of query heads, and works in blocks of 64 queries against their
keys up to the diagonal: the scores fit in the core's cache, the softmax is exact in one pass, and
no block above the diagonal is computed. Its products are MKL's `sgemm` from libtorch (on AMD CPUs on
its fast kernels, `mkl_dispatch`). Backward recomputes the scores from the log-sum-exp the forward
saves, as flash attention does, so no T x T tensor is ever stored.

`packed_causal_attention` steps aside (returns None) where it does not apply: other devices or dtypes,
attention dropout, no C compiler, no sgemm in libtorch, or `TUNEFORGE_NATIVE=0`.
Measurements: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import ctypes
from functools import cache

import torch

from tuneforge.native.build import library, loaded
from tuneforge.native.mkl_dispatch import torch_library


@cache
def _sgemm() -> int | None:
    """The address of libtorch's Fortran `sgemm_` (MKL's), or None where this torch has none."""
    lib = torch_library()
    return ctypes.cast(lib.sgemm_, ctypes.c_void_p).value if lib is not None and hasattr(lib, "sgemm_") else None


def _fits(*tensors: torch.Tensor) -> bool:
    return all(t.device.type == "cpu" and t.dtype == torch.float32 and t.stride(-1) == 1 for t in tensors)


def _address(t: torch.Tensor) -> int:
    """The C code reads float32 CPU heads of contiguous floats (`_fits`), or a contiguous int64 list."""
    assert t.device.type == "cpu" and (t.stride(-1) == 1 if t.dtype == torch.float32 else
                                       t.dtype == torch.int64 and t.is_contiguous())
    return t.data_ptr()


def _layout(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> list[int]:
    """Heads and strides as the C code takes them: (B, H, T, D) tensors, one batch row at a time."""
    return [q.shape[1], k.shape[1], q.shape[3], q.stride(2), q.stride(1), k.stride(2), k.stride(1), v.stride(2),
            v.stride(1)]


class _PackedCausalAttention(torch.autograd.Function):
    """query (B, H, T, D), key / value (B, H_kv, T, D), starts: one int64 tensor of sample offsets per row
    (0, ..., T) -> (B, T, H, D)."""

    @staticmethod
    def forward(ctx, query, key, value, starts: list[torch.Tensor], scale: float):
        batch, heads, length, width = query.shape
        out = torch.empty(batch, length, heads, width)
        lse = torch.empty(batch, heads, length)
        threads = torch.get_num_threads()
        for b, offsets in enumerate(starts):
            code = loaded().attention_forward(
                _sgemm(), _address(query[b]), _address(key[b]), _address(value[b]), _address(out[b]),
                _address(lse[b]), _address(offsets), len(offsets) - 1, length, *_layout(query, key, value), scale,
                threads)
            if code:
                raise MemoryError("attention: no memory for the scores of a block")
        ctx.save_for_backward(query, key, value, out, lse)
        ctx.starts, ctx.scale = starts, scale
        return out

    @staticmethod
    def backward(ctx, grad_out):
        query, key, value, out, lse = ctx.saved_tensors
        batch, heads, length, width = query.shape
        grad_out = grad_out.contiguous()
        threads = torch.get_num_threads()
        grad_q = torch.empty(batch, length, heads, width)
        grad_k = torch.empty(batch, length, key.shape[1], width)
        grad_v = torch.empty_like(grad_k)
        for b, offsets in enumerate(ctx.starts):
            parts_k = torch.zeros(threads, length, key.shape[1], width)  # one per thread, summed below
            parts_v = torch.zeros_like(parts_k)
            code = loaded().attention_backward(
                _sgemm(), _address(query[b]), _address(key[b]), _address(value[b]), _address(out[b]),
                _address(grad_out[b]), _address(lse[b]), _address(grad_q[b]), _address(parts_k),
                _address(parts_v), _address(offsets), len(offsets) - 1, length, *_layout(query, key, value),
                ctx.scale, threads)
            if code:
                raise MemoryError("attention backward: no memory for the scores of a block")
            torch.sum(parts_k, 0, out=grad_k[b])
            torch.sum(parts_v, 0, out=grad_v[b])
        return grad_q.transpose(1, 2), grad_k.transpose(1, 2), grad_v.transpose(1, 2), None, None


def packed_causal_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                            segment_lengths: list[list[int]], scale: float, dropout: float = 0.0
                            ) -> torch.Tensor | None:
    """Each row's samples (`segment_lengths`, covering the row) attending causally within themselves:
    (B, H, T, D) queries, (B, H_kv, T, D) keys and values -> (B, T, H, D); None where it does not apply."""
    if (dropout or not _fits(query, key, value) or query.shape[1] % key.shape[1] or library() is None
            or _sgemm() is None or any(sum(lengths) != query.shape[2] for lengths in segment_lengths)):
        return None
    starts = [torch.tensor([0, *lengths], dtype=torch.int64).cumsum(0) for lengths in segment_lengths]
    return _PackedCausalAttention.apply(query, key, value, starts, scale)
