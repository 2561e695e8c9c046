"""The llama.cpp build the worker runs is portable: no instruction beyond x86-64 AVX2.

A build for the machine it was compiled on (`-march=native`, llama.cpp's `GGML_NATIVE`) dies
with SIGILL on any CPU with fewer instructions, and on Intel VMs whose cpuid reports AMX that the
hypervisor does not grant. The prebuilt `xllamacpp` wheel is built for AVX2 with FMA and F16C;
this test disassembles the library the worker loads and fails if a later wheel brings AVX-512
(zmm or mask registers) or AMX tile instructions in, which this CPU might run and others not.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest

BEYOND_AVX2 = re.compile(r"%zmm\d|%k[1-7]\b|\btile(zero|loadd|loaddt1|stored|release)\b|\btdp\w+")


def _library() -> Path | None:
    spec = importlib.util.find_spec("xllamacpp")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.so"))
    return found[0] if found else None


@pytest.mark.skipif(_library() is None, reason="xllamacpp is not installed")
@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) is missing")
def test_the_llamacpp_library_uses_no_instruction_beyond_avx2() -> None:
    library = _library()
    assert library is not None
    listing = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", str(library)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "vfmadd231ps" in listing and "%ymm" in listing  # it is an AVX2 build, disassembled
    beyond = {m.group(0) for m in BEYOND_AVX2.finditer(listing)}
    assert beyond == set(), f"{library.name} uses instructions beyond AVX2: {sorted(beyond)[:10]}"
