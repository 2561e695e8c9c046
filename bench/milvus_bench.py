"""The two stores side by side on one synthetic knowledge base: FAISS + SQLite and Milvus (the
real Milvus core of the `milvus-lite==2.5.1` wheel, on 127.0.0.1, one process on this machine).

The FAISS + SQLite knowledge base is `bench/synth.py`'s (real Chinese text, vectors drawn around
real e5 embeddings); the Milvus one is made from it by the product's `zhiku kb migrate` path
(`ingest.store.migrate.migrate_kb`), so both hold the very same chunks and vectors. Latencies are
single queries, one at a time, after a warm-up, with the same real questions embedded by the
real model, through the product's `app._search.search` (hybrid: dense top-40 + BM25 top-40,
both scores for every candidate, zhiku's convex fusion), plus Milvus's own `hybrid_search` with
RRFRanker, and the dense and keyword parts alone.

    python -m bench.milvus_bench --size 100000 --queries 200 [--uri http://127.0.0.1:19530]

Without --uri the Milvus core is started from .venv/milvus-core (`make milvus`) on a free port
and stopped after. Results go to bench/.cache/milvus-SIZE.json and are printed as Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np

from bench import synth
from bench._common import (
    CACHE_DIR,
    RAW_DIR,
    REPO,
    bench_settings,
    latency_summary,
    load_model,
    say,
)

WARMUP = 20


def start_core(data: Path) -> tuple[subprocess.Popen[bytes], str]:
    lib = REPO / ".venv" / "milvus-core" / "milvus_lite" / "lib"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [str(lib / "milvus"), str(data / "m.db"), f"127.0.0.1:{port}", "ERROR"],
        cwd=data,
        env={**os.environ, "LD_LIBRARY_PATH": str(lib)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(600):
        with socket.socket() as s, suppress(OSError):
            s.connect(("127.0.0.1", port))
            return process, f"http://127.0.0.1:{port}"
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("the Milvus core did not start")


def _latencies(run: Any, queries: list[Any]) -> dict[str, float]:
    for q in queries[:WARMUP]:
        run(q)
    seconds = []
    for q in queries[WARMUP:]:
        t0 = time.perf_counter()
        run(q)
        seconds.append(time.perf_counter() - t0)
    return latency_summary(seconds)


def measure(size: int, n_queries: int, uri: str | None) -> dict[str, Any]:
    from app._search import search
    from ingest._tokenize import keyword_query
    from ingest.store import kb_exists, open_kb
    from ingest.store.migrate import migrate_kb

    embedder = load_model(say)
    material = synth.ensure_base(lambda: embedder)
    synth.ensure_kb(size, material, run_check=False)
    name = synth.kb_name(size)
    faiss_settings = synth.scale_settings()
    server = None
    if uri is None:
        server, uri = start_core(CACHE_DIR / "milvus-core-data")
    try:
        milvus_settings = bench_settings(
            synth.SCALE_HOME, vector_store="milvus", milvus_uri=uri, milvus_index_type="FLAT"
        )
        migration: dict[str, Any] = {"cached": True}
        with_milvus = kb_exists(milvus_settings, name, kind="milvus")
        if with_milvus:
            with open_kb(milvus_settings, name) as kb:
                with_milvus = kb.counts()["chunks"] == size
        if not with_milvus:
            say(f"copying {name} into Milvus (the product's kb migrate)")
            t0 = time.perf_counter()
            report = migrate_kb(faiss_settings, name, "milvus", say)
            seconds = time.perf_counter() - t0
            migration = {
                "cached": False,
                "seconds": seconds,
                "chunks_per_s": report.chunks / seconds,
                "counts_match": report.counts_match,
                "dense_agree": f"{report.dense_agree}/{report.sampled}",
                "keyword_found": f"{report.keyword_found}/{report.sampled}",
                "problems": report.problems,
            }
        rng = np.random.default_rng(7)
        order = rng.permutation(len(material.queries))[: WARMUP + n_queries]
        questions = [material.queries[i] for i in order]
        vectors = [material.query_vectors[i] for i in order]
        out: dict[str, Any] = {"size": size, "queries": n_queries, "migration": migration}
        for label, settings in (("faiss", faiss_settings), ("milvus", milvus_settings)):
            with open_kb(settings, name) as kb:
                say(f"{label}: hybrid search (zhiku's fusion), {n_queries} queries")
                row = {
                    "store": kb.describe(),
                    "hybrid": _latencies(
                        lambda q, kb=kb, s=settings: search(kb, embedder, q, s), questions
                    ),
                    "dense": _latencies(lambda v, kb=kb: kb.dense_search(v, 40), vectors),
                    "keyword": _latencies(
                        lambda q, kb=kb: kb.keyword_search(keyword_query(q), 40), questions
                    ),
                }
                rrf = settings.model_copy(update={"hybrid_fusion": "rrf"})
                say(f"{label}: hybrid search with RRF (the store's hybrid_search)")
                row["hybrid_rrf"] = _latencies(
                    lambda q, kb=kb, s=rrf: search(kb, embedder, q, s), questions
                )
                out[label] = row
        return out
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)


def render(result: dict[str, Any]) -> str:
    lines = [
        f"Synthetic knowledge base of {result['size']:,} chunks, {result['queries']} single "
        "queries after a warm-up (ms: p50 / p95).",
        "",
        "| store | hybrid (zhiku fusion) | hybrid (RRF) | dense top-40 | BM25 top-40 |",
        "|---|---|---|---|---|",
    ]
    for label in ("faiss", "milvus"):
        row = result[label]
        cells = [
            f"{row[k]['p50_ms']:.1f} / {row[k]['p95_ms']:.1f}"
            for k in ("hybrid", "hybrid_rrf", "dense", "keyword")
        ]
        lines.append(f"| {row['store']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--uri", default=None)
    args = parser.parse_args()
    result = measure(args.size, args.queries, args.uri)
    RAW_DIR.mkdir(parents=True, exist_ok=True)
    (RAW_DIR / f"milvus-{args.size}.json").write_text(json.dumps(result, indent=1))
    print(render(result))
    print(json.dumps(result["migration"]))


if __name__ == "__main__":
    main()
