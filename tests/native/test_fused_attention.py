"""tuneforge's packed causal attention computes what SDPA computes on each sample alone, values and
gradients, for grouped-query heads laid out as a model's projections lie, and steps aside where it
does not apply."""

import pytest
import torch

from tuneforge.native import library
from tuneforge.native.fused_attention import _sgemm, packed_causal_attention

needs_kernel = pytest.mark.skipif(library() is None or _sgemm() is None,
                                  reason="no C compiler, TUNEFORGE_NATIVE=0, or no sgemm in libtorch")
HEADS, KV_HEADS, WIDTH = 6, 2, 16


def projections(rows: int, length: int, dtype=torch.float64, seed: int = 0):
    """q (B, H, T, D), k and v (B, H_kv, T, D) as views of (B, T, heads x D) projections, as attention gets them."""
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(rows, length, heads * WIDTH, generator=g, dtype=dtype)
               for heads in (HEADS, KV_HEADS, KV_HEADS))
    return [t.view(rows, length, -1, WIDTH).transpose(1, 2) for t in (q, k, v)]


def per_sample_sdpa(q, k, v, segment_lengths, scale):
    """The reference: SDPA on each sample alone, kv heads repeated -> (B, T, H, D)."""
    rows = []
    for b, lengths in enumerate(segment_lengths):
        pieces = zip(*(t[b].split(lengths, dim=1) for t in (q, k, v)))
        rows.append(torch.cat([torch.nn.functional.scaled_dot_product_attention(
            qs, ks.repeat_interleave(HEADS // KV_HEADS, 0), vs.repeat_interleave(HEADS // KV_HEADS, 0),
            is_causal=True, scale=scale) for qs, ks, vs in pieces], dim=1))
    return torch.stack(rows).transpose(1, 2)


@needs_kernel
@pytest.mark.parametrize("segments", [[[200]], [[1, 64, 65, 3, 67]], [[130, 70], [5, 195]]],
                         ids=["one sample", "blocks and edges", "two rows"])
def test_values_and_gradients_equal_sdpa_per_sample(segments):
    length, scale = sum(segments[0]), 0.3
    exact = [t.requires_grad_() for t in projections(len(segments), length)]
    ours = [t.detach().float().requires_grad_() for t in exact]
    want = per_sample_sdpa(*exact, segments, scale)
    got = packed_causal_attention(*ours, segments, scale)
    assert got is not None and got.shape == want.shape and got.is_contiguous()
    torch.testing.assert_close(got.double(), want, rtol=0, atol=2e-6)
    grad = torch.randn(want.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    want.backward(grad)
    got.backward(grad.float())
    for name, mine, theirs in zip("qkv", ours, exact):
        torch.testing.assert_close(mine.grad.double(), theirs.grad, rtol=0, atol=1e-5, msg=f"d{name}")


@needs_kernel
def test_the_thread_count_does_not_change_the_result():
    q, k, v = (t.float().requires_grad_() for t in projections(1, 300))
    results = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 3):
            torch.set_num_threads(n)
            out = packed_causal_attention(q, k, v, [[120, 180]], 0.25)
            out.backward(torch.ones_like(out))
            results.append([out.detach(), *(t.grad.clone() for t in (q, k, v))])
            q.grad = k.grad = v.grad = None
    finally:
        torch.set_num_threads(threads)
    for one, three in zip(*results):
        torch.testing.assert_close(one, three, rtol=1e-6, atol=1e-6)  # (dk, dv: sums in another order)


def test_steps_aside_where_it_does_not_apply():
    q, k, v = projections(1, 10)
    assert packed_causal_attention(q, k, v, [[4, 6]], 0.25) is None  # float64
    q, k, v = (t.float() for t in (q, k, v))
    assert packed_causal_attention(q, k, v, [[4, 5]], 0.25) is None  # the samples do not cover the row
    assert packed_causal_attention(q, k, v, [[4, 6]], 0.25, dropout=0.1) is None
    assert packed_causal_attention(q.contiguous().transpose(-1, -2).contiguous().transpose(-1, -2), k, v,
                                   [[4, 6]], 0.25) is None  # a head's values not contiguous
