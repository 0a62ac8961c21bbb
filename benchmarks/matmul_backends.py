"""Float32 CPU matrix products on the default model's shapes: torch's own vs oneDNN's.

torch's own is `@` (MKL's sgemm: by default on the kernels MKL chooses, which on AMD CPUs is generic
code; with `--mkl-fast` on the ones tuneforge's CLI, training and serving switch on, `native/mkl_dispatch.py`).
oneDNN's inner product is what tuneforge's linear layers use where MKL stays generic
(`tuneforge.native.onednn_mm`).

For each product of a LoRA training step (forward x W^T, input gradient dY W, weight gradient dY^T x)
and of decoding (few rows), at the layer shapes of smollm2-135m (hidden 576, intermediate 1536,
vocabulary 49152), it prints GFLOP/s of both and their ratio, and the largest difference of each
from a float64 product (both are float32; only the order of the sums differs). Times are the median
of `--repeats` timings over a set of weights larger than the CPU's caches, as in a model.

    python benchmarks/matmul_backends.py [--repeats 5] [--mkl-fast]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from tuneforge.native import mkl_dispatch, onednn_mm
from tuneforge.native.build import switched_off

# (what, rows m, inner k, columns n, layout): the product (m, k) @ (k, n), where "a^T" / "b^T" marks an
# operand that is a transposed view, as in the layers (weights are stored (out, in)).
CASES = (
    ("forward x W^T, MLP up", 2048, 576, 1536, "b^T"),
    ("input grad dY W, MLP up", 2048, 1536, 576, ""),
    ("weight grad dY^T x, MLP up", 1536, 2048, 576, "a^T"),
    ("LM head, 1024 labelled tokens", 1024, 576, 49152, "b^T"),
    ("decode, 32 rows, MLP up", 32, 576, 1536, "b^T"),
    ("decode, 32 rows, LM head", 32, 576, 49152, "b^T"),
    ("decode, 1 row, MLP up", 1, 576, 1536, "b^T"),
)


def operands(m: int, k: int, n: int, layout: str) -> tuple[torch.Tensor, torch.Tensor]:
    a = torch.randn(k, m).t() if "a^T" in layout else torch.randn(m, k)
    b = torch.randn(n, k).t() if "b^T" in layout else torch.randn(k, n)
    return a, b


def onednn(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b by oneDNN's inner product, whatever `onednn_mm`'s routing chooses."""
    return onednn_mm._inner_product(a, b.t(), None)


def timed(product, pairs, repeats: int) -> float:
    product(*pairs[0])
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        for a, b in pairs:
            product(a, b)
        runs.append((time.perf_counter() - t) / len(pairs))
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--mkl-fast", action="store_true",
                        help="torch's products on MKL's fast kernels, as tuneforge's CLI, training and serving set "
                             "them (native/mkl_dispatch.py; on AMD CPUs); by default MKL's choice, which on AMD "
                             "CPUs is its generic code")
    args = parser.parse_args()
    if switched_off() or not torch.backends.mkldnn.is_available():
        raise SystemExit("oneDNN is off (TUNEFORGE_NATIVE=0, or torch built without mkldnn)")
    if args.mkl_fast and not mkl_dispatch.enable():
        raise SystemExit("--mkl-fast: MKL's kernels stay as they are here (not an AMD CPU, or no MKL in libtorch)")
    torch.manual_seed(0)
    print(f"{torch.get_num_threads()} threads, torch {torch.__version__}, MKL kernel level {mkl_dispatch.mkl_level()}")
    print(f"{'product':<32} {'m x k x n':>18} {'torch GFLOP/s':>14} {'oneDNN GFLOP/s':>15} {'ratio':>6} "
          f"{'torch err':>10} {'oneDNN err':>10}")
    out = []
    for name, m, k, n, layout in CASES:
        copies = max(1, int(64e6 // (4 * k * n)))  # > 64 MB of right-hand sides: no cache reuse across calls
        pairs = [operands(m, k, n, layout) for _ in range(copies)]
        flops = 2 * m * k * n
        rates = {name_: flops / timed(product, pairs, args.repeats) / 1e9
                 for name_, product in (("torch", torch.mm), ("onednn", onednn))}
        a, b = pairs[0]
        exact = a.double() @ b.double()
        errors = {name_: float((product(a, b).double() - exact).abs().max())
                  for name_, product in (("torch", torch.mm), ("onednn", onednn))}
        ratio = rates["onednn"] / rates["torch"]
        print(f"{name:<32} {f'{m}x{k}x{n}':>18} {rates['torch']:>14.1f} {rates['onednn']:>15.1f} {ratio:>5.2f}x "
              f"{errors['torch']:>10.1e} {errors['onednn']:>10.1e}")
        out.append({"product": name, "shape": [m, k, n], "torch_gflops": round(rates["torch"], 1),
                    "onednn_gflops": round(rates["onednn"], 1), "ratio": round(ratio, 2)})
    print(json.dumps({"benchmark": "matmul_backends", "cases": out}))


if __name__ == "__main__":
    main()
