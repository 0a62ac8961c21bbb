"""MKL's own fast kernels on AMD CPUs: torch's float32 products and its CPU attention at twice the rate.

torch's float32 matrix products on CPU, and the blocks of its CPU `scaled_dot_product_attention`, run
on MKL (linked into libtorch). MKL picks its kernels by CPU vendor: on a CPU that is not Intel's it
runs generic code whatever instructions the CPU has (`mkl_serv_cpu_detect()` reads 0). On a 2-core AMD
EPYC with AVX-512 that is ~210 GFLOP/s, where the same sgemm on MKL's AVX-512 path reaches ~490 and
SDPA's forward and backward run 2.1x faster. MKL asks `mkl_serv_intel_cpu_true()` through libtorch's
table of imported functions (its GOT); `enable()` points that entry at a function that returns 1, so
MKL chooses its kernels by the instructions the CPU has, as it does on Intel's. The products stay IEEE
float32 (summed in another order).

MKL settles its choice at its first product and keeps it for the process, so `enable()` must come
before any float32 product: the CLI, training and serving call it first thing. Called later it
changes nothing and says so. It does nothing with `TUNEFORGE_NATIVE=0`, off Linux x86-64, on CPUs
other than AMD's, and on torch builds without MKL in libtorch.
"""

from __future__ import annotations

import ctypes
import logging
import platform
import struct
import sys
from functools import cache
from pathlib import Path

import torch

from tuneforge.native.build import switched_off

log = logging.getLogger(__name__)

_SYMBOL = b"mkl_serv_intel_cpu_true"
_RETURN_ONE = bytes.fromhex("b801000000c3")  # x86-64 machine code: mov eax, 1; ret
_PAGE = 4096
_PROT = {"r": 1, "w": 2, "x": 4}
_SHT_RELA, _SHT_DYNSYM = 4, 11
_R_X86_64_GLOB_DAT, _R_X86_64_JUMP_SLOT = 6, 7


class _DlInfo(ctypes.Structure):
    _fields_ = [("fname", ctypes.c_char_p), ("fbase", ctypes.c_void_p),
                ("sname", ctypes.c_char_p), ("saddr", ctypes.c_void_p)]


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.mmap.restype = ctypes.c_void_p
    libc.dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
    return libc


def _amd_cpu() -> bool:
    try:
        return "AuthenticAMD" in Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False


def import_slots(path: str, symbol: bytes) -> list[int]:
    """Offsets from the load base of the GOT entries through which the shared library at `path` calls
    `symbol` (its GLOB_DAT and JUMP_SLOT relocations), read from the file's section headers."""
    with open(path, "rb") as f:
        header = f.read(64)
        if header[:5] != b"\x7fELF\x02":  # not a 64-bit ELF file
            return []
        (shoff,), (entsize, count) = struct.unpack_from("<Q", header, 0x28), struct.unpack_from("<HH", header, 0x3A)
        f.seek(shoff)
        table = f.read(entsize * count)
        # (type, offset, size, link) of each section header
        sections = [struct.unpack_from("<4xI16xQQI", table, i * entsize) for i in range(count)]

        def read(section: tuple[int, int, int, int]) -> bytes:
            f.seek(section[1])
            return f.read(section[2])

        dynsym_at = next((i for i, s in enumerate(sections) if s[0] == _SHT_DYNSYM), None)
        if dynsym_at is None:
            return []
        symbols, names = read(sections[dynsym_at]), read(sections[sections[dynsym_at][3]])
        wanted = symbol + b"\0"
        index = next((j for j in range(len(symbols) // 24)
                      if names.startswith(wanted, struct.unpack_from("<I", symbols, j * 24)[0])), None)
        if index is None:
            return []
        slots = []
        for section in sections:
            if section[0] == _SHT_RELA and section[3] == dynsym_at:
                relocations = read(section)
                for k in range(len(relocations) // 24):
                    offset, info = struct.unpack_from("<QQ", relocations, k * 24)
                    if info >> 32 == index and info & 0xFFFFFFFF in (_R_X86_64_GLOB_DAT, _R_X86_64_JUMP_SLOT):
                        slots.append(offset)
        return slots


def _page_protection(address: int) -> int | None:
    """The protection of the mapping that holds `address`, from /proc/self/maps."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        span, perms = line.split()[:2]
        start, end = (int(a, 16) for a in span.split("-"))
        if start <= address < end:
            return sum(_PROT.get(c, 0) for c in perms[:3])
    return None


def _function_returning_one(libc: ctypes.CDLL) -> int:
    """The address of a function that returns 1, on a page of its own, kept for the process's life."""
    page = libc.mmap(None, _PAGE, _PROT["r"] | _PROT["w"], 0x22, -1, 0)  # MAP_PRIVATE | MAP_ANONYMOUS
    if page in (None, ctypes.c_void_p(-1).value):
        raise OSError(ctypes.get_errno(), "mmap failed")
    ctypes.memmove(page, _RETURN_ONE, len(_RETURN_ONE))
    if libc.mprotect(page, _PAGE, _PROT["r"] | _PROT["x"]) != 0:
        raise OSError(ctypes.get_errno(), "mprotect failed")
    return page


def _redirect(libc: ctypes.CDLL, slot: int, target: int) -> None:
    page, protection = slot & ~(_PAGE - 1), _page_protection(slot)
    if protection is None:
        raise OSError(f"no mapping holds {slot:#x}")
    if libc.mprotect(page, _PAGE, _PROT["r"] | _PROT["w"]) != 0:
        raise OSError(ctypes.get_errno(), "mprotect failed")
    ctypes.c_void_p.from_address(slot).value = target
    libc.mprotect(page, _PAGE, protection)  # read-only again where the loader had sealed it (RELRO)


def mkl_level() -> int | None:
    """MKL's kernel choice (`mkl_serv_cpu_detect()`: 0 generic code, higher for AVX2, AVX-512, ...);
    asking settles it, as a first product would. None where libtorch carries no MKL."""
    lib = torch_library()
    return int(lib.mkl_serv_cpu_detect()) if lib is not None and hasattr(lib, "mkl_serv_cpu_detect") else None


@cache
def torch_library() -> ctypes.CDLL | None:
    """libtorch's CPU library, where MKL lives (already loaded by `import torch`), or None where there is none."""
    path = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    try:
        return ctypes.CDLL(str(path)) if path.is_file() else None
    except OSError:
        return None


@cache
def enable() -> bool:
    """Let MKL run the kernels this AMD CPU's instructions allow; whether it now does (see the module's doc)."""
    if (switched_off() or sys.platform != "linux" or platform.machine() != "x86_64" or not _amd_cpu()
            or not torch.backends.mkl.is_available() or (torch_lib := torch_library()) is None):
        return False
    try:
        libc = _libc()
        real = ctypes.cast(getattr(torch_lib, _SYMBOL.decode()), ctypes.c_void_p).value
        info = _DlInfo()
        if not real or not libc.dladdr(real, ctypes.byref(info)) or not info.fname:
            return False
        slots = import_slots(info.fname.decode(), _SYMBOL)
        if not slots:
            return False
        stub = _function_returning_one(libc)
        for offset in slots:
            _redirect(libc, info.fbase + offset, stub)
    except (OSError, AttributeError, ValueError, struct.error) as err:
        log.info("MKL keeps its generic kernels on this AMD CPU (%s)", err)
        return False
    level = mkl_level() or 0
    if level == 0:
        log.info("MKL keeps its generic kernels on this AMD CPU: it chose them at a float32 product made "
                 "before tuneforge could let it use its fast ones")
    return level > 0
