"""Which llama.cpp runs the embedded model, and how its worker process is started.

Two runtimes speak the same worker protocol (`app/_worker.py`):
- **node-llama-cpp** (`app/llm_node/worker.mjs`, installed from npm by `make install`): llama.cpp
  built with one CPU library per instruction level (AVX2, AVX-512, VNNI, AMX, ...), the best one
  this CPU supports loaded when the worker starts. It needs Node.js >= 20 on Linux x86-64.
- **xllamacpp** (the PyPI wheel, always installed): one build for AVX2/FMA/F16C.
`LLAMACPP_RUNTIME=auto` puts node-llama-cpp first wherever it is installed, the wheel after it:
on a CPU with AVX-512 or AVX-VNNI its library for that CPU evaluates prompts 2.2x as fast as the
wheel, and on an AVX2-only CPU its AVX2 library, slower than the wheel at reading prompts
(0.94x), answers sooner with its speculative decoding and the shorter prompts (first visible
sentence on seed_dev 4.28-4.45 s against the wheel's 4.66-4.76 s; bench/results.md, section
10e). A runtime whose worker cannot start or fails its self-check (a CPU that lacks what its
library needs) hands over to the next (`app/_llm_llamacpp.py`).
Only node-llama-cpp runs on a CPU without AVX2 (its SSE4.2 and baseline x86-64 libraries).
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Literal

from ingest.settings import Settings

Runtime = Literal["node-llama-cpp", "xllamacpp"]

NODE_PACKAGE = Path(__file__).resolve().parent / "llm_node"
NODE_WORKER = NODE_PACKAGE / "worker.mjs"
NODE_MIN_MAJOR = 20
PYTHON_WORKER_MODULE = "app._worker"


@functools.cache
def node_command() -> str | None:
    """The `node` that can run the node-llama-cpp worker, or None (no Node.js >= 20, packages
    not installed, or a platform its prebuilt libraries do not cover)."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return None
    node = shutil.which("node")
    if node is None or not (NODE_PACKAGE / "node_modules" / "node-llama-cpp").is_dir():
        return None
    try:
        version = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
        major = int(version.lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    return node if major >= NODE_MIN_MAJOR else None


def runtime_version(runtime: Runtime) -> str:
    """The installed version of `runtime` ("" when it is not installed)."""
    if runtime == "xllamacpp":
        try:
            return importlib.metadata.version("xllamacpp")
        except importlib.metadata.PackageNotFoundError:
            return ""
    manifest = NODE_PACKAGE / "node_modules" / "node-llama-cpp" / "package.json"
    try:
        return str(json.loads(manifest.read_text(encoding="utf-8"))["version"])
    except (OSError, ValueError, KeyError):
        return ""


def runtime_installed(runtime: Runtime) -> bool:
    if runtime == "xllamacpp":
        return importlib.util.find_spec("xllamacpp") is not None
    return node_command() is not None


def runtimes_for(settings: Settings) -> tuple[Runtime, ...]:
    """The runtimes to try, best first: the one `LLAMACPP_RUNTIME` names, or for `auto` every
    installed one, node-llama-cpp first."""
    if settings.llamacpp_runtime != "auto":
        return (settings.llamacpp_runtime,)
    order: tuple[Runtime, ...] = ("node-llama-cpp", "xllamacpp")
    return tuple(r for r in order if runtime_installed(r))


def is_worker(cmdline: list[str]) -> bool:
    """Whether a process with this command line is an embedded-model worker, of either runtime."""
    return PYTHON_WORKER_MODULE in cmdline or any(a.endswith(NODE_WORKER.name) for a in cmdline)


def worker_command(runtime: Runtime) -> list[str]:
    """The command that starts `runtime`'s worker (its options follow)."""
    if runtime == "node-llama-cpp":
        node = node_command()
        if node is None:
            raise FileNotFoundError(
                f"Node.js >= {NODE_MIN_MAJOR} with {NODE_PACKAGE / 'node_modules'} (make install)"
            )
        return [node, str(NODE_WORKER)]
    return [sys.executable, "-m", PYTHON_WORKER_MODULE]
