"""What this CPU can run: its instruction-set flags, and whether this process may use AMX.

AMX's tile state is enabled by Linux per process, and only on request
(`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`): code that uses a tile instruction
without asking dies with SIGILL although cpuid reports AMX (seen here: a native llama.cpp
build at `tilezero`), and a hypervisor or kernel without AMX support refuses the request.
Making that request is the test.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform

# The flags that decide which kernels are fastest (or can run at all) for the embedding and LLM
# runtimes: AVX2/FMA/F16C (the portable build's floor), AVX-512, the integer dot products
# (VNNI, used by int8 matrix multiplies) and AMX.
RELEVANT_FLAGS = (
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
)
_SYS_ARCH_PRCTL = 158  # x86-64
_ARCH_REQ_XCOMP_PERM = 0x1023
_XFEATURE_XTILEDATA = 18


@functools.cache
def cpu_info() -> tuple[str, frozenset[str]]:
    """The CPU's model name and flags as Linux reports them (empty elsewhere)."""
    name, flags = platform.processor(), frozenset[str]()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("model name") and ":" in line:
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and ":" in line:
                    flags = frozenset(line.split(":", 1)[1].split())
                if flags and name:
                    break
    except OSError:
        pass
    return name, flags


def cpu_flags() -> frozenset[str]:
    return cpu_info()[1]


@functools.cache
def amx_granted() -> bool:
    """Whether this process may use AMX tiles: reported by cpuid and granted by the kernel on
    request (the request is made here, so the grant holds for this process from now on)."""
    if "amx_tile" not in cpu_flags() or platform.machine() not in ("x86_64", "AMD64"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        result = libc.syscall(_SYS_ARCH_PRCTL, _ARCH_REQ_XCOMP_PERM, _XFEATURE_XTILEDATA)
    except (OSError, AttributeError):
        return False
    return result == 0


def cpu_signature() -> dict[str, object]:
    """What a measurement on this CPU depends on: another CPU (or a VM granting other
    instructions, or another number of cores) measures again."""
    name, flags = cpu_info()
    return {
        "model": name,
        "flags": [f for f in RELEVANT_FLAGS if f in flags],
        "amx_granted": amx_granted(),
        "cpus": os.cpu_count() or 1,
    }
