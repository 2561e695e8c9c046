"""Shared pieces of the benchmarks: paths, settings, timing statistics, machine facts, Markdown.

These machines are shared and noisy, so every number that matters is a median of several runs or
a ratio of measurements taken side by side in the same run; tail figures (p95) are given for
latency only, where there are hundreds of samples.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
MODELS_DIR = REPO / ".zhiku" / "models"
# Everything the benchmarks cache (synthetic corpora, their knowledge bases, query vectors) lives
# here: `.zhiku/` is git-ignored, and the folder can be deleted at any time to start cold.
CACHE_DIR = REPO / ".zhiku" / "bench-cache"
EVAL_DIR = Path(os.environ.get("ZHIKU_EVAL_DIR", REPO.parent / "shared" / "eval"))
KNOWLEDGE_DIR = REPO / "knowledge"
RESULTS_MD = REPO / "bench" / "results.md"
RAW_DIR = REPO / "bench" / ".cache"  # git-ignored: raw JSON of the last run, profiles


def bench_settings(home: Path, **overrides: Any) -> Any:
    """Product settings that ignore the developer's `.env`, with models from the repository."""
    from ingest.settings import Settings

    values: dict[str, Any] = {
        "zhiku_home": home,
        "zhiku_models_dir": MODELS_DIR,
        "llm_backend": "none",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def load_model(message: Callable[[str], None] = print) -> Any:
    """The product's embedder, loaded once per process (before any timing starts)."""
    from ingest._embed import load_embedder

    started = time.perf_counter()
    embedder = load_embedder(bench_settings(CACHE_DIR / "home"), message)
    message(f"embedding model loaded in {time.perf_counter() - started:.1f} s")
    return embedder


# ----- statistics ---------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def pct(values: Sequence[float], q: float) -> float:
    """Percentile q in [0, 100], linear interpolation; NaN for no samples."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else float("nan")


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(seconds),
        "p50_ms": 1000 * pct(seconds, 50),
        "p95_ms": 1000 * pct(seconds, 95),
        "mean_ms": 1000 * float(np.mean(seconds)) if len(seconds) else float("nan"),
    }


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def rss_bytes() -> int:
    return int(psutil.Process().memory_info().rss)


def dir_bytes(path: Path) -> int:
    if not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# ----- machine --------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, str]:
    import sqlite3

    import faiss
    import sentence_transformers
    import torch

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": f"{psutil.cpu_count(logical=False)} physical / {os.cpu_count()} logical",
        "ram": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "torch": f"{torch.__version__} ({torch.get_num_threads()} threads)",
        "faiss": f"{faiss.__version__} ({faiss.omp_get_max_threads()} OpenMP threads)",
        "sentence-transformers": sentence_transformers.__version__,
        "sqlite": sqlite3.sqlite_version,
        "load average at start": " / ".join(f"{x:.2f}" for x in load),
    }


def load_note() -> str:
    """Other processes compete for the two cores; say how busy the machine was."""
    if not hasattr(os, "getloadavg"):
        return ""
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min) / {five:.2f} (5 min)"


# ----- Markdown -------------------------------------------------------------------------------


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:  # NaN
            return "–"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    return str(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], digits: int = 2) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(fmt(v, digits) for v in row) + " |")
    return "\n".join(lines)


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def say(message: str) -> None:
    """Progress for the person watching; the report itself is printed at the end."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
