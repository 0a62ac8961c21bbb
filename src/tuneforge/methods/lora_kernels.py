"""`lora_kernels.c`, compiled on first use: LoRA's dropout and low-rank products fused, on CPU.

The C source ships with tuneforge. The first call compiles it with the system C compiler (`$CC`,
else `cc`) into the tuneforge cache, once per source, compiler and CPU (it is built for the CPU it
runs on), and loads it with ctypes. It runs on torch's OpenMP threads. Where no compiler works,
or with `TUNEFORGE_NATIVE=0`, `library()` is None and callers use torch operations instead.

Every function takes a mask as (seed, threshold): element e of a row-major (N, in) tensor is kept
when lane e of the SplitMix64 stream at `seed` is ≥ `threshold` (of 65536); threshold 0 keeps all.
Tensors are float32 on the CPU; `fits` says whether a LoRA layer's shapes suit the kernels.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import torch

from tuneforge.models.cache import cache_root

log = logging.getLogger(__name__)

_SOURCE = Path(__file__).with_name("lora_kernels.c")
# Tried in order: OpenMP threads and this CPU's instructions where the compiler offers them.
_FLAG_SETS = (["-O3", "-march=native", "-fopenmp"], ["-O3", "-march=native"], ["-O3"])
_VEC = 8  # floats per vector in the kernels: the LoRA rank must be a multiple


@cache
def library() -> ctypes.CDLL | None:
    if os.environ.get("TUNEFORGE_NATIVE", "1") == "0":
        return None
    try:
        lib = ctypes.CDLL(str(_checked(_built())))
    except OSError as err:
        log.warning("LoRA CPU kernels unavailable (%s): LoRA dropout runs on torch operations, which is slower", err)
        return None
    tensors, sizes, mask = [ctypes.c_void_p] * 3, [ctypes.c_int64] * 3, [ctypes.c_uint64, ctypes.c_uint32]
    lib.masked_copy.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, *mask, ctypes.c_int]
    for fn in (lib.lora_down, lib.lora_down_grad, lib.lora_up_input_grad):
        fn.argtypes = [*tensors, *sizes, *mask]
    for fn in (lib.masked_copy, lib.lora_down, lib.lora_down_grad, lib.lora_up_input_grad):
        fn.restype = None
    return lib


def _built() -> Path:
    """The compiled library in the cache, compiling it first when this source, compiler and CPU lack one."""
    compiler = os.environ.get("CC", "cc")
    key = hashlib.sha256(b"\0".join([_SOURCE.read_bytes(), compiler.encode(), repr(_FLAG_SETS).encode(),
                                     _cpu_signature().encode()])).hexdigest()[:16]
    target = cache_root() / "kernels" / f"lora_kernels-{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    error = ""
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(tmp) / target.name
        for flags in _FLAG_SETS:
            try:
                result = subprocess.run([compiler, *flags, "-shared", "-fPIC", str(_SOURCE), "-o", str(built)],
                                        capture_output=True, text=True, timeout=300)
            except (OSError, subprocess.SubprocessError) as err:
                raise OSError(f"cannot run the C compiler {compiler!r}: {err}") from err
            if result.returncode == 0:
                built.chmod(0o755)
                os.replace(built, target)  # atomic: processes compiling at once each install a whole file
                return target
            error = result.stderr.strip()[-300:]
    raise OSError(f"{compiler} failed: {error}")


def _checked(path: Path) -> Path:
    """`path`, once sure that no other user could have replaced it: loading a library runs its code."""
    if not hasattr(os, "getuid"):
        return path
    for p in (path, path.parent):
        st = p.stat()
        if st.st_uid != os.getuid() or st.st_mode & 0o002:
            raise OSError(f"{p} is owned by another user or writable by everyone; not loading it")
    return path


def _cpu_signature() -> str:
    """What `-march=native` depends on: the CPU model and its instruction-set flags."""
    try:
        info = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        info = []
    wanted = ("model name", "flags", "Features", "CPU part")
    return "\n".join([platform.machine(), platform.processor(), *sorted({ln for ln in info if ln.startswith(wanted)})])


def fits(x: torch.Tensor, lora_a: torch.Tensor) -> bool:
    """Whether the kernels can run a LoRA layer with input `x` and down-projection `lora_a` (r, in)."""
    return (x.device.type == lora_a.device.type == "cpu" and x.dtype == lora_a.dtype == torch.float32
            and lora_a.shape[0] % _VEC == 0 and library() is not None)


def _ptr(t: torch.Tensor) -> int:
    """The address the C code reads: only ever of a contiguous float32 CPU tensor."""
    if not (t.dtype == torch.float32 and t.device.type == "cpu" and t.is_contiguous()):
        raise ValueError(f"the LoRA kernels take contiguous float32 CPU tensors, got {t.dtype} on {t.device}")
    return t.data_ptr()


def masked_copy(src: torch.Tensor, seed: int, threshold: int, out: torch.Tensor | None = None, *,
                accumulate: bool = False) -> torch.Tensor:
    """keep ⊙ src, into `out` (a new tensor by default); `out += keep ⊙ src` with `accumulate`."""
    src = src.contiguous()
    out = torch.empty_like(src) if out is None else out
    if out.numel() != src.numel():
        raise ValueError(f"masked_copy: {out.numel()} output elements for {src.numel()} input elements")
    library().masked_copy(_ptr(src), _ptr(out), src.numel(), seed, threshold, int(accumulate))
    return out


def down(x: torch.Tensor, lora_a: torch.Tensor, seed: int, threshold: int) -> torch.Tensor:
    """(keep ⊙ x) A^T: x (N, in), A (r, in) -> (N, r)."""
    # Contiguous copies are bound to names: a temporary would be freed before the C code reads it.
    x, a_t = x.contiguous(), lora_a.t().contiguous()
    (n, width), r = x.shape, lora_a.shape[0]
    low = torch.empty(n, r)
    library().lora_down(_ptr(x), _ptr(a_t), _ptr(low), n, width, r, seed, threshold)
    return low


def down_grad(grad_low: torch.Tensor, x: torch.Tensor, seed: int, threshold: int) -> torch.Tensor:
    """grad_low^T (keep ⊙ x): grad_low (N, r), x (N, in) -> (r, in), the gradient of A."""
    grad_low, x = grad_low.contiguous(), x.contiguous()
    (n, width), r = x.shape, grad_low.shape[1]
    grad_a = torch.empty(r, width)
    library().lora_down_grad(_ptr(grad_low), _ptr(x), _ptr(grad_a), n, width, r, seed, threshold)
    return grad_a


def add_up_input_grad_(grad_x: torch.Tensor, grad_low: torch.Tensor, lora_a: torch.Tensor, seed: int,
                       threshold: int) -> torch.Tensor:
    """grad_x += keep ⊙ (grad_low A), in place: grad_x (N, in) contiguous, grad_low (N, r), A (r, in)."""
    grad_low, lora_a = grad_low.contiguous(), lora_a.contiguous()
    (n, width), r = grad_x.shape, lora_a.shape[0]
    library().lora_up_input_grad(_ptr(grad_low), _ptr(lora_a), _ptr(grad_x), n, width, r, seed, threshold)
    return grad_x
