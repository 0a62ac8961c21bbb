import pytest
import torch

from tuneforge.native import lora_kernels
from tuneforge.native.fast_dropout import FastDropout

pytestmark = pytest.mark.skipif(lora_kernels.library() is None, reason="no C compiler: the kernels are not built")

GAMMA, M64 = 0x9E3779B97F4A7C15, (1 << 64) - 1


def splitmix64_lanes(seed: int, n: int) -> list[int]:
    """The reference: SplitMix64 (Steele et al. 2014) from `seed`, four 16-bit lanes per number, low bits first."""
    lanes = []
    for d in range((n + 3) // 4):
        z = (seed + (d + 1) * GAMMA) & M64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        z ^= z >> 31
        lanes += [(z >> (16 * k)) & 0xFFFF for k in range(4)]
    return lanes[:n]


def keep_of(shape, seed, threshold):
    return lora_kernels.masked_copy(torch.ones(shape), seed, threshold)


def test_masks_are_splitmix64_lanes_against_the_threshold():
    seed, threshold = 0x1234_5678_9ABC, 20_000
    expected = torch.tensor([float(lane >= threshold) for lane in splitmix64_lanes(seed, 9001)])
    assert torch.equal(keep_of((9001,), seed, threshold), expected)


def test_keep_rate_and_neighbour_independence():
    keep = keep_of((4_000_000,), 7, 32768)
    assert keep.mean().item() == pytest.approx(0.5, abs=1e-3)
    assert (keep[:-1] * keep[1:]).mean().item() == pytest.approx(0.25, abs=2e-3)
    assert keep_of((1000,), 7, 0).min().item() == 1  # threshold 0 keeps everything


def test_masked_copy_accumulates_and_checks_sizes():
    src, out = torch.randn(3001), torch.randn(3001)
    keep = keep_of(src.shape, 11, 9000)
    expected = out + keep * src
    assert torch.allclose(lora_kernels.masked_copy(src, 11, 9000, out, accumulate=True), expected)
    with pytest.raises(ValueError, match="3000 output elements"):
        lora_kernels.masked_copy(src, 11, 9000, torch.empty(3000))
    with pytest.raises(ValueError, match="float32"):
        lora_kernels.masked_copy(src.double(), 11, 9000)


# Row counts and widths off the kernels' blocks (4 rows, 8 columns, 64- and 256-element segments).
SHAPES = [(1, 8), (7, 37), (16, 256), (33, 300), (130, 577)]


@pytest.mark.parametrize("n, width", SHAPES)
@pytest.mark.parametrize("r", [8, 16, 24])
@pytest.mark.parametrize("threshold", [0, 3277])
def test_products_equal_torch_on_the_same_mask(n, width, r, threshold):
    torch.manual_seed(0)
    x, a, grad_low = torch.randn(n, width), torch.randn(r, width), torch.randn(n, r)
    dropped = x * keep_of(x.shape, 99, threshold)
    assert torch.allclose(lora_kernels.down(x, a, 99, threshold), dropped @ a.t(), atol=1e-4)
    assert torch.allclose(lora_kernels.down_grad(grad_low, x, 99, threshold), grad_low.t() @ dropped, atol=1e-4)
    grad_x = torch.randn(n, width)
    expected = grad_x + keep_of(x.shape, 99, threshold) * (grad_low @ a)
    assert torch.allclose(lora_kernels.add_up_input_grad_(grad_x, grad_low, a, 99, threshold), expected, atol=1e-4)


def test_results_do_not_depend_on_the_thread_count():
    torch.manual_seed(0)
    x, a, grad_low = torch.randn(257, 1000), torch.randn(16, 1000), torch.randn(257, 16)
    threads = torch.get_num_threads()
    results = []
    for count in (1, 3):
        torch.set_num_threads(count)
        try:
            results.append([lora_kernels.masked_copy(x, 5, 3277), lora_kernels.down(x, a, 5, 3277),
                            lora_kernels.down_grad(grad_low, x, 5, 3277),
                            lora_kernels.add_up_input_grad_(torch.zeros_like(x), grad_low, a, 5, 3277)])
        finally:
            torch.set_num_threads(threads)
    assert all(torch.equal(one, many) for one, many in zip(*results))


def test_fits_only_float32_cpu_and_ranks_of_eight():
    x = torch.randn(4, 16)
    assert lora_kernels.fits(x, 8) and lora_kernels.fits(x, 24)
    assert not lora_kernels.fits(x, 4)
    assert not lora_kernels.fits(x.double(), 8)


def test_fast_dropout_masks_come_from_seeds_of_torchs_generator():
    d = FastDropout(0.05).train()
    x = torch.randn(64, 32)
    torch.manual_seed(3)
    mask = d.mask(x)
    torch.manual_seed(3)
    assert mask.seeded and mask.threshold == 3277 and d.mask(x).seed == mask.seed
    assert d.mask(x).seed != mask.seed
