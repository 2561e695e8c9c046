"""The two stores side by side on one synthetic knowledge base: FAISS + SQLite and Milvus (the
real Milvus core of the `milvus-lite==2.5.1` wheel, on 127.0.0.1, one process on this machine).

Both knowledge bases are written through the product's own writers with the very same chunks:
real-looking Chinese text from `bench/synth.py`'s generator, and random unit vectors (nothing is
embedded: building 100k real-looking vectors needs ~2,900 real embeddings first, more than a busy
2-core machine gives in an afternoon; latency does not depend on what vectors mean). Latencies are
single queries, one at a time, after a warm-up, with the same real questions embedded by the
real model, through the product's `app.answer.search.search` (hybrid: dense top-40 + BM25 top-40,
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


DOCS_PER_FILE = 100  # a synthetic file holds this many documents (as a JSONL file does)


def synthetic_files(size: int, dimension: int) -> list[tuple[str, list[tuple[Any, list[Any]]]]]:
    """`size` chunks of real-looking Chinese text (`bench/synth.py`'s generator), ten to a
    document, with random unit vectors clustered around the generator's windows: the vectors
    carry no meaning (nothing is embedded), which latency does not need."""
    from ingest._chunk import Chunk
    from ingest._load import LoadedDoc, Page
    from ingest.store import PreparedChunk

    sources = synth.load_sources()
    rng = np.random.default_rng([synth.SEED, 9])
    windows = synth.make_windows(sources, synth.WINDOWS, rng)
    generator = synth.TextGenerator(sources, windows)
    centres = synth._normalize(rng.standard_normal((len(windows), dimension), dtype=np.float32))
    files = []
    per_doc = synth.CHUNKS_PER_DOC
    for f in range(size // (DOCS_PER_FILE * per_doc)):
        docs = []
        for d in range(DOCS_PER_FILE):
            doc_id = f"syn-{f * DOCS_PER_FILE + d:07d}"
            chosen = rng.integers(0, len(windows), size=per_doc)
            texts = [generator.variant(rng, windows[int(w)]) for w in chosen]
            page = "\n".join(texts)
            noise = rng.standard_normal((per_doc, dimension), dtype=np.float32)
            vectors = synth._normalize(centres[chosen] + 0.35 * noise / np.sqrt(dimension) * 8)
            title = sources[windows[int(chosen[0])].source].title
            prepared, start = [], 0
            for n, text in enumerate(texts):
                chunk = Chunk(
                    f"{doc_id}-{n}", doc_id, n, None, 0, start, start + len(text), text, (), "text"
                )
                prepared.append(PreparedChunk(chunk, f"{doc_id}-{n}", vectors[n]))
                start += len(text) + 1
            doc = LoadedDoc(
                doc_id,
                title,
                f"/synthetic/{doc_id}",
                "txt",
                doc_id,
                len(page),
                (Page(None, page),),
                "plain",
            )
            docs.append((doc, prepared))
        files.append((f"/synthetic/file-{f:05d}.jsonl", docs))
    return files


def build(settings: Any, name: str, files: list[Any], spec: Any, size: int) -> float | None:
    """The knowledge base written through the product's writer; seconds, None when cached."""
    from ingest.store import open_kb

    with open_kb(settings, name, create=True) as kb:
        if kb.counts()["chunks"] == size:
            return None
        t0 = time.perf_counter()
        with kb.writer(spec) as writer:
            for origin, docs in files:
                writer.put_file(origin, origin, len(docs), docs)
        return time.perf_counter() - t0


def measure(size: int, n_queries: int, uri: str | None) -> dict[str, Any]:
    from app.answer.search import search
    from ingest._tokenize import keyword_query
    from ingest.store import open_kb

    embedder = load_model(say)
    spec = embedder.spec
    name = f"milvus-bench-{size}"
    home = CACHE_DIR / "milvus-bench"
    faiss_settings = bench_settings(home)
    server = None
    if uri is None:
        server, uri = start_core(CACHE_DIR / "milvus-core-data")
    try:
        milvus_settings = bench_settings(
            home, vector_store="milvus", milvus_uri=uri, milvus_index_type="FLAT"
        )
        say(f"generating {size:,} synthetic chunks")
        files = synthetic_files(size, spec.dimension)
        out: dict[str, Any] = {"size": size, "queries": n_queries}
        for label, settings in (("faiss", faiss_settings), ("milvus", milvus_settings)):
            say(f"{label}: writing {size:,} chunks through the store's writer")
            out[f"{label}_write_s"] = build(settings, name, files, spec, size)
        del files
        questions, _ = synth._read_questions()
        rng = np.random.default_rng(7)
        order = rng.permutation(len(questions))[: WARMUP + n_queries]
        chosen = [questions[i] for i in order]
        vectors = [embedder.encode_queries([q])[0] for q in chosen]
        for label, settings in (("faiss", faiss_settings), ("milvus", milvus_settings)):
            with open_kb(settings, name) as kb:
                say(f"{label}: hybrid search (zhiku's fusion), {n_queries} queries")
                row = {
                    "store": kb.describe(),
                    "hybrid": _latencies(
                        lambda q, kb=kb, s=settings: search(kb, embedder, q, s), chosen
                    ),
                    "dense": _latencies(lambda v, kb=kb: kb.dense_search(v, 40), vectors),
                    "keyword": _latencies(
                        lambda q, kb=kb: kb.keyword_search(keyword_query(q), 40), chosen
                    ),
                }
                rrf = settings.model_copy(update={"hybrid_fusion": "rrf"})
                say(f"{label}: hybrid search with RRF (the store's hybrid_search)")
                row["hybrid_rrf"] = _latencies(
                    lambda q, kb=kb, s=rrf: search(kb, embedder, q, s), chosen
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
    print(json.dumps({k: v for k, v in result.items() if k.endswith("_write_s")}))


if __name__ == "__main__":
    main()
