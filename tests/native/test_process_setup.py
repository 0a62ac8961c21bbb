"""What the CLI, training and serving set up for their process. MKL runs its fast kernels on AMD CPUs when
`mkl_dispatch.enable()` comes before the first product: they call it; later it changes nothing and
says so; the products stay right. CPU training serves large tensors from malloc's heap (`heap`).
Each case runs in a fresh interpreter, since both settings hold for the whole process."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from tuneforge.native import mkl_dispatch
from tuneforge.native.build import switched_off

AMD = Path("/proc/cpuinfo").is_file() and "AuthenticAMD" in Path("/proc/cpuinfo").read_text(errors="replace")
needs_amd_mkl = pytest.mark.skipif(
    not (AMD and torch.backends.mkl.is_available() and sys.platform == "linux") or switched_off(),
    reason="MKL's vendor check only matters on AMD CPUs with MKL in libtorch (and TUNEFORGE_NATIVE not 0)")

# A float32 product checked against float64: the fast kernels still compute IEEE float32 products.
CHECK = """
a = torch.randn(300, 700, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
b = torch.randn(700, 500, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
err = ((a.float() @ b.float()).double() - a @ b).abs().max().item()
"""


def in_fresh_python(*parts: str, **env: str) -> list[str]:
    """Run the parts of a script, one after the other, in a new interpreter; the words it prints."""
    code = "\n".join(textwrap.dedent(part) for part in parts)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, **env}, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.split()


@needs_amd_mkl
def test_enable_before_the_first_product_switches_mkl_to_its_fast_kernels():
    enabled, level, err = in_fresh_python("""
        import torch
        from tuneforge.native import mkl_dispatch
        enabled = mkl_dispatch.enable()""", CHECK, """
        print(enabled, mkl_dispatch.mkl_level(), err)""")
    assert enabled == "True" and int(level) > 0
    assert float(err) < 1e-3  # sums of 700 products of N(0, 1) values, in float32


@needs_amd_mkl
def test_a_late_enable_changes_nothing_and_says_so():
    enabled, level, err = in_fresh_python("""
        import torch""", CHECK, """
        from tuneforge.native import mkl_dispatch
        print(mkl_dispatch.enable(), mkl_dispatch.mkl_level(), err)""")
    assert (enabled, level) == ("False", "0") and float(err) < 1e-3


@needs_amd_mkl
def test_the_native_switch_keeps_mkls_generic_kernels():
    assert in_fresh_python("""
        from tuneforge.native import mkl_dispatch
        print(mkl_dispatch.enable(), mkl_dispatch.mkl_level())""", TUNEFORGE_NATIVE="0") == ["False", "0"]


@needs_amd_mkl
@pytest.mark.parametrize("entry", ["training", "serving"])
def test_training_and_serving_enable_it_first(entry, tiny_model_dir, tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}\n')
    run = {"training": f"""
        from tuneforge.config import build_config
        from tuneforge.train.run import run_training
        run_training(build_config({{"model": {{"name_or_path": {str(tiny_model_dir)!r}}},
                                    "data": {{"datasets": [{{"path": {str(data)!r}}}]}},
                                    "method": {{"name": "lora", "r": 2}},
                                    "train": {{"output_dir": {str(tmp_path / "run")!r}, "max_steps": 1}}}}))""",
           "serving": f"""
        from tuneforge.serve.engine import load_engine
        load_engine({str(tiny_model_dir)!r})"""}[entry]
    level = in_fresh_python(run, """
        from tuneforge.native import mkl_dispatch
        print(mkl_dispatch.mkl_level())""", HF_HUB_OFFLINE="1")[-1]
    assert int(level) > 0


def test_import_slots_finds_the_entry_only_where_there_is_one(tmp_path):
    library = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    if sys.platform != "linux" or not library.is_file():
        pytest.skip("a Linux torch build")
    has_mkl = torch.backends.mkl.is_available()
    assert bool(mkl_dispatch.import_slots(str(library), b"mkl_serv_intel_cpu_true")) == has_mkl
    assert mkl_dispatch.import_slots(str(library), b"no_such_function_anywhere") == []
    text = tmp_path / "not-elf.so"
    text.write_text("not a shared library")
    assert mkl_dispatch.import_slots(str(text), b"mkl_serv_intel_cpu_true") == []


MAPPED_BYTES = """
import ctypes, torch
class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                      "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
big = torch.ones(4096, 1024)  # 16 MB
print(libc.mallinfo2().hblkhd)  # bytes in allocations mmap serves on their own
"""


@pytest.mark.skipif(sys.platform != "linux" or switched_off(), reason="glibc's malloc (and TUNEFORGE_NATIVE not 0)")
@pytest.mark.parametrize("training", [False, True])
def test_cpu_training_serves_large_tensors_from_the_heap(training, tiny_model_dir, tmp_path):
    """A 16 MB tensor gets pages of its own from mmap by default; once CPU training has started, the heap
    serves it, and the next step reuses its pages."""
    data = tmp_path / "data.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}\n')
    train = f"""
        from tuneforge.config import build_config
        from tuneforge.train.run import run_training
        run_training(build_config({{"model": {{"name_or_path": {str(tiny_model_dir)!r}}},
                                    "data": {{"datasets": [{{"path": {str(data)!r}}}]}},
                                    "method": {{"name": "lora", "r": 2}},
                                    "train": {{"output_dir": {str(tmp_path / "run")!r}, "max_steps": 1}}}}))"""
    mapped = int(in_fresh_python(train if training else "", MAPPED_BYTES, HF_HUB_OFFLINE="1")[-1])
    assert (mapped < 16 * 2**20) if training else (mapped >= 16 * 2**20)
