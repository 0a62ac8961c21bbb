"""Building and loading tuneforge's CPU kernels (`kernels.c`): compiled on first use, loaded with ctypes.

The C source ships with tuneforge. The first call to `library()` compiles it with the system C
compiler (`$CC`, else `cc`) into `$TUNEFORGE_CACHE/kernels`, once per source, compiler and CPU (it
is built for the CPU it runs on). Its loops run on torch's OpenMP threads. Where no compiler works,
or with `TUNEFORGE_NATIVE=0`, `library()` is None and callers use torch operations instead.
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

from tuneforge.paths import cache_root, file_sha256

log = logging.getLogger(__name__)

_SOURCE = Path(__file__).with_name("kernels.c")
# Tried in order: OpenMP threads and this CPU's instructions where the compiler offers them.
_FLAG_SETS = (["-O3", "-march=native", "-fopenmp"], ["-O3", "-march=native"], ["-O3"])


def switched_off() -> bool:
    """`TUNEFORGE_NATIVE=0`: every native path (the compiled kernels, oneDNN's products) steps aside."""
    return os.environ.get("TUNEFORGE_NATIVE", "1") == "0"


@cache
def library() -> ctypes.CDLL | None:
    if switched_off():
        return None
    try:
        lib = ctypes.CDLL(str(_checked(_built())))
    except OSError as err:
        log.warning("tuneforge's CPU kernels unavailable (%s): LoRA dropout, SwiGLU, RMSNorm and RoPE run on torch "
                    "operations, which is slower", err)
        return None
    pointer, size, mask = ctypes.c_void_p, ctypes.c_int64, [ctypes.c_uint64, ctypes.c_uint32]
    signatures = {
        "masked_copy": [pointer, pointer, size, *mask, ctypes.c_int],
        "lora_down": [pointer] * 3 + [size] * 3 + mask,
        "lora_down_grad": [pointer] * 3 + [size] * 3 + mask,
        "lora_up_input_grad": [pointer] * 3 + [size] * 3 + mask,
        "swiglu_forward": [pointer] * 3 + [size],
        "swiglu_backward": [pointer] * 5 + [size],
        "rmsnorm_forward": [pointer] * 4 + [size] * 2 + [ctypes.c_float],
        "rmsnorm_backward": [pointer] * 7 + [size] * 2,
        "rope": [pointer, pointer, size, pointer] * 2 + [pointer] * 2 + [size] * 4 + [ctypes.c_int],
    }
    for name, argtypes in signatures.items():
        getattr(lib, name).argtypes, getattr(lib, name).restype = argtypes, None
    # the packed causal attention (0, or -1 when out of memory)
    sample_layout: list[type] = [pointer, size, *[size] * 10, ctypes.c_float, ctypes.c_int]  # starts, count, T, ...
    lib.attention_forward.argtypes = [*[pointer] * 6, *sample_layout]
    lib.attention_backward.argtypes = [*[pointer] * 10, *sample_layout]
    lib.attention_forward.restype = lib.attention_backward.restype = ctypes.c_int
    return lib


def loaded() -> ctypes.CDLL:
    """`library()`, for callers that have checked that it loaded."""
    lib = library()
    if lib is None:
        raise RuntimeError("tuneforge's CPU kernels are not loaded")
    return lib


def _built() -> Path:
    """The compiled library in the cache, compiling it first when this source, compiler and CPU lack one."""
    compiler = os.environ.get("CC", "cc")
    key = hashlib.sha256(b"\0".join([_SOURCE.read_bytes(), compiler.encode(), repr(_FLAG_SETS).encode(),
                                     _cpu_signature().encode()])).hexdigest()[:16]
    target = cache_root() / "kernels" / f"kernels-{key}.so"
    if target.exists():
        if _digest_matches(target):
            return target
        if _digest_file(target).exists():  # (a library cached before digests were recorded has none)
            log.warning("%s does not match the SHA-256 recorded when it was built; building it again", target)
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
                digest = _digest_file(target)
                digest_tmp = Path(tmp) / digest.name
                digest_tmp.write_text(file_sha256(built))
                digest_tmp.chmod(0o644)
                # Atomic: processes compiling at once each install a whole file; the digest goes in
                # first, so a library in place always has its own digest beside it (the builds of one
                # source on one machine are identical, so a racing process's digest matches too).
                os.replace(digest_tmp, digest)
                os.replace(built, target)
                return target
            error = result.stderr.strip()[-300:]
    raise OSError(f"{compiler} failed: {error}")


def _digest_file(library: Path) -> Path:
    return library.with_name(library.name + ".sha256")


def _digest_matches(library: Path) -> bool:
    """The library is byte for byte what was built: a truncated or altered file is not loaded."""
    digest = _digest_file(library)
    try:
        return digest.read_text().strip() == file_sha256(library)
    except OSError:
        return False


def _checked(path: Path) -> Path:
    """`path`, once sure that no other user could have replaced it (nor its recorded digest): loading a
    library runs its code. Group-writable counts as writable by others."""
    if not hasattr(os, "getuid"):
        return path
    for p in (path, _digest_file(path), path.parent):
        st = p.stat()
        if st.st_uid != os.getuid() or st.st_mode & 0o022:
            raise OSError(f"{p} is owned by another user or writable by its group or everyone; not loading it")
    if not _digest_matches(path):
        raise OSError(f"{path} does not match the SHA-256 recorded when it was built; not loading it")
    return path


def _cpu_signature() -> str:
    """What `-march=native` depends on: the CPU model and its instruction-set flags."""
    try:
        info = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        info = []
    wanted = ("model name", "flags", "Features", "CPU part")
    return "\n".join([platform.machine(), platform.processor(), *sorted({ln for ln in info if ln.startswith(wanted)})])


def ptr(t: torch.Tensor) -> int:
    """The address the C code reads: only ever of a contiguous float32 CPU tensor."""
    if not (t.dtype == torch.float32 and t.device.type == "cpu" and t.is_contiguous()):
        raise ValueError(f"the CPU kernels take contiguous float32 CPU tensors, got {t.dtype} on {t.device}")
    return t.data_ptr()
