"""What this CPU offers onnxruntime's int8 kernels, and which way kinefuse runs an int8 (quantized) model on it.

On x86-64, onnxruntime's CPU library (MLAS) multiplies uint8 activations by int8 weights with instructions
that differ by CPU (``onnxruntime/core/mlas/lib/platform.cpp``, ``MLAS_PLATFORM::MLAS_PLATFORM``):

- AVX2, and AVX-512 without VNNI: ``vpmaddubsw`` adds each pair of u8 x s8 products into a *saturating*
  16-bit integer (255 x 127 x 2 = 64,770 is clamped to 32,767) before widening. onnxruntime's header says so:
  "x64 SSE4.1/AVX2/AVX512(with no VNNI) has overflow problem with quantizied matrix multiplication with
  U8S8" (``include/onnxruntime/core/session/onnxruntime_session_options_config_keys.h``,
  ``kOrtSessionOptionsAvx2PrecisionMode``).
- AVX512-VNNI (with the AVX-512 core set BW/DQ/VL that MLAS requires), AVX-VNNI, or AMX-INT8 + AMX-TILE:
  the products are summed in 32 bits, exactly. MLAS picks AVX-VNNI only where the AVX-512 core set is
  absent (an AVX-512 CPU without AVX512-VNNI overrides it with the saturating AVX-512 kernel).

The int8 paths (docs/pose.md, "int8 models and the CPU"):

- ``fused``: onnxruntime's defaults: Q/DQ pairs fused into QLinearConv, u8 x s8 kernels.
- ``precise``: the same fusions with ``session.x64quantprecision = 1``: int8 weights become uint8 and the
  u8 x u8 kernels sum in 32 bits. Measured bit-identical to ``fused`` on a VNNI CPU.
- ``float``: ``session.disable_quant_qdq = 1``: the Q/DQ nodes run as float operations.

``choose`` picks ``fused`` where the sums are exact, ``precise`` on any other x86-64 CPU (features unknown
included: it is exact everywhere on x86, only slower), and ``float`` elsewhere (ARM and others: the
x64quantprecision switch does nothing there and kinefuse has not measured their int8 kernels).
``KINEFUSE_INT8_PATH`` (auto, fused, precise, float) overrides the choice.

Features come from the CPUID instruction (the bits MLAS reads, with XGETBV for the register state the
operating system enables), run from a few bytes of machine code; where that cannot run, from
``/proc/cpuinfo``'s flags (Linux's names are used throughout).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import platform
from pathlib import Path

ENV = "KINEFUSE_INT8_PATH"
PATHS = ("fused", "precise", "float")
CHOICES = ("auto", *PATHS)
# The flags (Linux /proc/cpuinfo names) that decide MLAS's int8 kernels.
RELEVANT = ("avx2", "avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "amx_tile",
            "amx_int8")  # fmt: skip
_AVX512_CORE = {"avx512f", "avx512dq", "avx512bw", "avx512vl"}
_X86 = {"x86_64", "amd64", "i386", "i686", "x86"}
_CODE_PAGES: list = []


@dataclasses.dataclass(frozen=True)
class CpuFeatures:
    arch: str  # platform.machine(), lower case
    flags: frozenset[str]  # the RELEVANT flags the CPU and the operating system offer
    source: str  # "/proc/cpuinfo", "cpuid" or "unknown" (flags then unknown, not absent)

    @property
    def x86(self) -> bool:
        return self.arch in _X86

    @property
    def exact_int8(self) -> bool | None:
        """Whether onnxruntime's u8 x s8 kernels sum in 32 bits here (no saturation); None when unknown.
        Mirrors MLAS's dispatch: AMX-INT8, else AVX512-VNNI when the AVX-512 core set is there, else
        AVX-VNNI (an AVX-512 CPU without AVX512-VNNI gets the saturating AVX-512 kernel)."""
        if not self.x86 or self.source == "unknown":
            return None
        if self.flags >= {"amx_int8", "amx_tile"}:
            return True
        if self.flags >= _AVX512_CORE:
            return "avx512_vnni" in self.flags
        return "avx_vnni" in self.flags

    def describe(self) -> str:
        """E.g. ``x86_64: avx2 avx512bw ... (no VNNI: u8 x s8 sums saturate at 16 bits) [/proc/cpuinfo]``."""
        if not self.x86:
            return f"{self.arch}: not x86-64 [{self.source}]"
        if self.source == "unknown":
            return f"{self.arch}: int8 features unknown"
        exact = self.exact_int8
        verdict = ("VNNI/AMX: u8 x s8 sums are exact" if exact else
                   "no VNNI: u8 x s8 sums saturate at 16 bits")  # fmt: skip
        present = " ".join(f for f in RELEVANT if f in self.flags) or "no AVX2"
        return f"{self.arch}: {present} ({verdict}) [{self.source}]"


def from_cpuinfo(text: str, arch: str = "x86_64") -> CpuFeatures | None:
    """Features from /proc/cpuinfo's text (the first ``flags`` line); None when it has none."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return CpuFeatures(arch, frozenset(value.split()) & frozenset(RELEVANT), "/proc/cpuinfo")
    return None


@functools.cache
def detect(cpuinfo: str = "/proc/cpuinfo") -> CpuFeatures:
    """This machine's features (cached: the CPU does not change under a running process). On x86-64 CPUID
    comes first: it is what onnxruntime itself reads, and /proc/cpuinfo can describe another CPU (under
    QEMU's user-mode emulation it is the host's); /proc/cpuinfo where CPUID cannot run."""
    arch = platform.machine().lower()
    if arch not in _X86:
        return CpuFeatures(arch, frozenset(), "not x86")
    flags = cpuid_flags()
    if flags is not None:
        return CpuFeatures(arch, flags, "cpuid")
    try:
        found = from_cpuinfo(Path(cpuinfo).read_text(errors="replace"), arch)
    except OSError:
        found = None
    return found or CpuFeatures(arch, frozenset(), "unknown")


def requested() -> str:
    """``$KINEFUSE_INT8_PATH``, checked (``auto`` when unset or empty)."""
    value = os.environ.get(ENV, "").strip().lower() or "auto"
    if value not in CHOICES:
        raise ValueError(f"{ENV}={value!r}: expected one of {', '.join(CHOICES)}")
    return value


def choose(features: CpuFeatures, path: str | None = None) -> tuple[str, str]:
    """The int8 path for these features and why. ``path`` (auto, fused, precise, float; default
    ``$KINEFUSE_INT8_PATH``, else auto) forces one unless it is auto."""
    if path is None:
        path, why = requested(), f"{ENV}={requested()}"
    else:
        why = f"asked for {path}"
        if path not in CHOICES:
            raise ValueError(f"int8 path {path!r}: expected one of {', '.join(CHOICES)}")
    if path != "auto":
        return path, why
    exact = features.exact_int8
    if exact:
        return "fused", "the CPU sums u8 x s8 products exactly (VNNI/AMX)"
    if exact is False:
        return "precise", "no VNNI: the fused u8 x s8 kernels would saturate; u8 x u8 kernels are exact"
    if features.x86:
        return "precise", "x86-64 with unknown int8 features: u8 x u8 kernels are exact on every x86-64 CPU"
    return "float", f"{features.arch}: int8 kernels not measured by kinefuse; Q/DQ run in float"


# CPUID through a few bytes of machine code (x86-64 System V calling convention: Linux, macOS, BSD).
# cpuid(leaf=edi, subleaf=esi, out=rdx): stores eax, ebx, ecx, edx at out[0..3].
_CPUID_CODE = bytes.fromhex(
    "53"  # push rbx (callee-saved, cpuid overwrites it)
    "89f8"  # mov eax, edi
    "89f1"  # mov ecx, esi
    "4989d0"  # mov r8, rdx
    "0fa2"  # cpuid
    "418900"  # mov [r8], eax
    "41895804"  # mov [r8+4], ebx
    "41894808"  # mov [r8+8], ecx
    "4189500c"  # mov [r8+12], edx
    "5b"  # pop rbx
    "c3"  # ret
)
# xgetbv(index=edi) -> edx:eax as one 64-bit value (only valid where CPUID.1:ECX.OSXSAVE is set)
_XGETBV_CODE = bytes.fromhex(
    "89f9"  # mov ecx, edi
    "0f01d0"  # xgetbv
    "48c1e220"  # shl rdx, 32
    "4809d0"  # or rax, rdx
    "c3"  # ret
)


def _bit(value: int, bit: int) -> bool:
    return bool(value >> bit & 1)


def cpuid_flags() -> frozenset[str] | None:
    """The RELEVANT flags read with CPUID and XGETBV as MLAS reads them (None where that cannot run: not
    x86-64, not a System V platform, or no executable memory)."""
    if platform.machine().lower() not in {"x86_64", "amd64"} or os.name != "posix":
        return None
    try:
        cpuid, xgetbv = _machine_code()
    except (OSError, ValueError, AttributeError):
        return None
    return flags_from_registers(cpuid, xgetbv)


def flags_from_registers(cpuid, xgetbv) -> frozenset[str]:
    """Decode ``cpuid(leaf, subleaf) -> (eax, ebx, ecx, edx)`` and ``xgetbv(0)`` into Linux flag names
    (Intel SDM vol. 2A, CPUID; the operating system must enable the register state, XCR0)."""
    max_leaf = cpuid(0, 0)[0]
    _, _, ecx1, _ = cpuid(1, 0)
    if max_leaf < 7 or not (_bit(ecx1, 27) and _bit(ecx1, 28)):  # OSXSAVE and AVX
        return frozenset()
    xcr0 = xgetbv(0)
    if xcr0 & 0x6 != 0x6:  # SSE and AVX state
        return frozenset()
    eax7, ebx7, ecx7, edx7 = cpuid(7, 0)
    eax7_1 = cpuid(7, 1)[0] if eax7 >= 1 else 0
    found = set()
    if _bit(ebx7, 5):
        found.add("avx2")
    if _bit(eax7_1, 4):
        found.add("avx_vnni")
    if xcr0 & 0xE0 == 0xE0:  # opmask, ZMM_Hi256, Hi16_ZMM state
        names = {16: "avx512f", 17: "avx512dq", 30: "avx512bw", 31: "avx512vl"}
        found |= {name for bit, name in names.items() if _bit(ebx7, bit)}
        if _bit(ecx7, 11):
            found.add("avx512_vnni")
    if xcr0 & 0x60000 == 0x60000:  # XTILECFG and XTILEDATA state
        found |= {name for bit, name in {24: "amx_tile", 25: "amx_int8"}.items() if _bit(edx7, bit)}
    return frozenset(found)


def _machine_code():
    import ctypes
    import mmap

    size = mmap.PAGESIZE
    memory = mmap.mmap(-1, size, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    memory.write(_CPUID_CODE + _XGETBV_CODE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(memory))
    raw_cpuid = ctypes.CFUNCTYPE(None, ctypes.c_uint32, ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint32))(
        base
    )
    raw_xgetbv = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_uint32)(base + len(_CPUID_CODE))
    _CODE_PAGES.append(memory)  # the functions point into it: keep it mapped

    def cpuid(leaf: int, subleaf: int) -> tuple[int, int, int, int]:
        out = (ctypes.c_uint32 * 4)()
        raw_cpuid(leaf, subleaf, out)
        return tuple(out)

    return cpuid, raw_xgetbv
