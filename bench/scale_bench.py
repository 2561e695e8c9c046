"""Retrieval at scale: the product's `search()` on synthetic knowledge bases of 10k-1M chunks.

Each size runs in its own process (`python -m bench.scale_bench --size N --out FILE`), so the
memory figures are not polluted by earlier sizes: RSS is read after the embedding model is loaded
and again after the knowledge base and its FAISS index are, and the difference is what the index
costs in memory. Latencies are single queries, one at a time, after a warm-up, with real
questions (CMRC 2018 trial and seed_dev) embedded by the real model:

* hybrid: `app.answer.search.search` as the product calls it (embed the query, FAISS top-40, and
  FTS5 BM25 top-40 in a thread alongside the embedding, exact cosines and BM25 for the other
  side's candidates, fusion, row fetch);
* dense: `KnowledgeBase.dense_search` with a precomputed query vector;
* keyword: `keyword_query` + `KnowledgeBase.keyword_search`, and `keyword_scores` for the 40
  dense candidates, as `search()` does them.

Recall@10 of the product's index is measured against an exact `IndexFlatIP` over the very
vectors stored in the knowledge base, on every question of both sets.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from bench import synth
from bench._common import (
    CACHE_DIR,
    dir_bytes,
    fmt,
    latency_summary,
    load_model,
    load_note,
    median,
    mib,
    rss_bytes,
    say,
    table,
)

WARMUP = 20
GT_K = 40


def _ground_truth(size: int, query_vectors: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """Exact top-40 ids of every query, over the stored vectors; cached per size."""
    key = f"{synth.CACHE_VERSION}-{size}-{len(query_vectors)}"
    path = CACHE_DIR / f"exact-{key}.npz"
    if path.is_file():
        with np.load(path) as data:
            return data["ids"], json.loads(str(data["meta"]))
    say(f"exact search reference over {size:,} stored vectors")
    ids, vectors = synth.all_vectors(size)
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    _, rows = flat.search(query_vectors, GT_K)
    exact = ids[rows]
    # what exact search costs per single query at this size (the flat index's latency), on one
    # thread as `VectorIndex.search` runs single queries
    latencies = _single_query_latencies(flat, query_vectors[:100], GT_K)
    meta = {"exact_single_query_p50_ms": 1000 * median(latencies)}
    del flat, vectors
    np.savez(path, ids=exact, meta=np.array(json.dumps(meta)))
    return exact, meta


def _single_query_latencies(index: faiss.Index, queries: np.ndarray, k: int) -> list[float]:
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        latencies = []
        for q in queries:
            started = time.perf_counter()
            index.search(q.reshape(1, -1), k)
            latencies.append(time.perf_counter() - started)
    finally:
        faiss.omp_set_num_threads(threads)
    return latencies


def _recall(found: np.ndarray, exact: np.ndarray, k: int) -> float:
    hits = [
        len(set(f[:k].tolist()) & set(e[:k].tolist())) for f, e in zip(found, exact, strict=True)
    ]
    return float(np.mean(hits)) / k


def _index_facts(index: faiss.Index) -> dict[str, Any]:
    if isinstance(index, faiss.IndexIVF):
        return {"kind": "ivf", "nlist": int(index.nlist), "nprobe": int(index.nprobe)}
    return {"kind": "flat", "nlist": None, "nprobe": None}


def measure(size: int, n_queries: int, run_check: bool = True) -> dict[str, Any]:
    from app.answer.search import search
    from ingest._tokenize import keyword_query
    from ingest._vectors import index_file_name
    from ingest.store import KnowledgeBase

    embedder = load_model(say)
    material = synth.ensure_base(lambda: embedder)
    build = synth.ensure_kb(size, material, run_check=run_check)
    settings = synth.scale_settings()
    gc.collect()
    rss_model = rss_bytes()
    started = time.perf_counter()
    kb = KnowledgeBase.open(settings, synth.kb_name(size))
    vector_index = kb.vector_index()
    load_s = time.perf_counter() - started
    gc.collect()
    rss_loaded = rss_bytes()
    index_file = kb.path / index_file_name(kb.epoch, kb.generation)
    dimension = vector_index.dimension
    raw_bytes = size * dimension * 4
    facts = _index_facts(vector_index.index)

    rng = np.random.default_rng(7)
    order = rng.permutation(len(material.queries))
    warm, chosen = order[:WARMUP], order[WARMUP : WARMUP + n_queries]
    for i in warm:
        search(kb, embedder, material.queries[i], settings)

    say(f"{size:,}: hybrid search, {len(chosen)} queries")
    hybrid, parts = [], {"embed_s": [], "dense_s": [], "keyword_s": [], "rest_s": []}
    for i in chosen:
        t0 = time.perf_counter()
        hits = search(kb, embedder, material.queries[i], settings)
        hybrid.append(time.perf_counter() - t0)
        if hits:
            t = hits[0].timings
            for name in ("embed_s", "dense_s", "keyword_s"):
                parts[name].append(t[name])
            # the keyword search runs alongside the embedding: only its wait adds to the total
            waited = t.get("keyword_wait_s", t["keyword_s"])
            parts["rest_s"].append(t["total_s"] - t["embed_s"] - t["dense_s"] - waited)

    say(f"{size:,}: dense and keyword parts alone")
    dense, keyword, scores, candidates = [], [], [], []
    for i in chosen:
        vector = material.query_vectors[i]
        t0 = time.perf_counter()
        found = kb.dense_search(vector, settings.dense_candidates)
        dense.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        expression = keyword_query(material.queries[i])
        ranked = kb.keyword_search(expression, settings.keyword_candidates)
        keyword.append(time.perf_counter() - t0)
        candidates.append(len(ranked))
        others = [c for c, _ in found if c not in dict(ranked)]
        t0 = time.perf_counter()
        kb.keyword_scores(expression, others)
        scores.append(time.perf_counter() - t0)

    say(f"{size:,}: recall against exact search")
    exact, exact_meta = _ground_truth(size, material.query_vectors)
    _, found_ids = vector_index.index.search(material.query_vectors, GT_K)
    result = {
        "size": size,
        "build": build,
        "load_note": load_note(),
        "index": facts,
        "open_and_load_s": load_s,
        "rss_after_model_bytes": rss_model,
        "rss_after_load_bytes": rss_loaded,
        "rss_delta_bytes": rss_loaded - rss_model,
        "index_file_bytes": index_file.stat().st_size,
        "raw_vector_bytes": raw_bytes,
        "kb_disk_bytes": dir_bytes(kb.path),
        "hybrid": latency_summary(hybrid),
        "hybrid_parts_p50_ms": {k: 1000 * median(v) for k, v in parts.items()},
        "dense": latency_summary(dense),
        "keyword_search": latency_summary(keyword),
        "keyword_scores": latency_summary(scores),
        "keyword_candidates_median": median(candidates),
        "recall@10": _recall(found_ids, exact, 10),
        "recall@40": _recall(found_ids, exact, 40),
        "recall_queries": len(exact),
        "exact_single_query_p50_ms": exact_meta["exact_single_query_p50_ms"],
        "material": material.stats,
    }
    kb.close()
    return result


def sweep(size: int, nlists: list[int], nprobes: list[int]) -> list[dict[str, Any]]:
    """IVF tuning: recall@10 and single-query latency per (nlist, nprobe), built like the
    product's `VectorIndex.build` (same training sample rule)."""
    embedder = load_model(say)
    material = synth.ensure_base(lambda: embedder)
    synth.ensure_kb(size, material, run_check=False)
    exact, meta = _ground_truth(size, material.query_vectors)
    ids, vectors = synth.all_vectors(size)
    queries = material.query_vectors
    rows: list[dict[str, Any]] = [
        {"nlist": 0, "nprobe": 0, "recall@10": 1.0, "p50_ms": meta["exact_single_query_p50_ms"]}
    ]
    for nlist in nlists:
        say(f"sweep {size:,}: training IVF{nlist}")
        t0 = time.perf_counter()
        quantizer = faiss.IndexFlatIP(vectors.shape[1])
        index = faiss.IndexIVFFlat(quantizer, vectors.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
        sample = vectors[
            np.random.default_rng(0).choice(size, min(size, 40 * nlist), replace=False)
        ]
        index.train(np.ascontiguousarray(sample))
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        index.add_with_ids(vectors, ids)
        add_s = time.perf_counter() - t0
        sizes = np.array([index.invlists.list_size(i) for i in range(nlist)])
        for nprobe in nprobes:
            if nprobe > nlist:
                continue
            index.nprobe = nprobe
            _, found = index.search(queries, 10)
            latencies = _single_query_latencies(index, queries[:200], 40)
            rows.append(
                {
                    "nlist": nlist,
                    "nprobe": nprobe,
                    "recall@10": _recall(found, exact, 10),
                    "p50_ms": 1000 * median(latencies),
                    "train_s": train_s,
                    "add_s": add_s,
                    "largest_list": int(sizes.max()),
                    "empty_lists": int((sizes == 0).sum()),
                }
            )
            say(
                f"  nlist {nlist} nprobe {nprobe}: recall@10 {rows[-1]['recall@10']:.3f}, "
                f"p50 {rows[-1]['p50_ms']:.2f} ms"
            )
        del index, quantizer
        gc.collect()
    return rows


# ----- report ------------------------------------------------------------------------------------


def render(results: list[dict[str, Any]]) -> str:
    from ingest._vectors import IVF_NPROBE_FRACTION, IVF_THRESHOLD

    if not results:
        return ""
    out = []
    m = results[0]["material"]
    out.append(
        "Synthetic corpora (bench/synth.py): variants of "
        f"{m['windows']:,} real windows cut from {m['sources']} real documents "
        f"({m['source_chars']:,} characters: CMRC 2018 trial + knowledge/); vectors = real e5 "
        "passage embedding of the window + noise with the covariance of real variant residuals. "
        f"Median cosine of a variant to its window: real e5 {m['real_variant_cosine_median']:.3f}, "
        f"synthetic {m['synthetic_variant_cosine_median']:.3f}. Median cosine between a real "
        f"window and its nearest other window: {m['centre_nearest_neighbour_cosine_median']:.3f}. "
        f"Queries: real questions embedded with the query prompt. Product settings: "
        f"`IVF_THRESHOLD` {IVF_THRESHOLD:,}, `IVF_NPROBE_FRACTION` {IVF_NPROBE_FRACTION:.4g}."
    )
    rows = []
    for r in results:
        rows.append(
            [
                f"{r['size']:,}",
                r["index"]["kind"]
                + (f" {r['index']['nlist']}/{r['index']['nprobe']}" if r["index"]["nlist"] else ""),
                r["hybrid"]["p50_ms"],
                r["hybrid"]["p95_ms"],
                r["hybrid_parts_p50_ms"]["embed_s"],
                r["dense"]["p50_ms"],
                r["dense"]["p95_ms"],
                r["keyword_search"]["p50_ms"],
                r["keyword_search"]["p95_ms"],
                r["keyword_scores"]["p50_ms"],
                r["hybrid_parts_p50_ms"]["rest_s"],
                r["exact_single_query_p50_ms"],
                r["recall@10"],
                r["recall@40"],
            ]
        )
    out.append(
        table(
            [
                "chunks",
                "index (nlist/nprobe)",
                "hybrid p50 ms",
                "hybrid p95 ms",
                "↳ embed p50",
                "dense p50 ms",
                "dense p95 ms",
                "keyword p50 ms",
                "keyword p95 ms",
                "keyword_scores p50 ms",
                "↳ fusion+fetch p50",
                "exact flat p50 ms",
                "recall@10 vs exact",
                "recall@40",
            ],
            rows,
            digits=3,
        ).replace("| 0.", "| 0.")
    )
    out.append(
        f"Latency over {results[0]['hybrid']['n']} questions per size after {WARMUP} warm-up "
        "queries, one at a time; `↳` columns are the p50 of each step inside the hybrid call "
        '(`Hit.timings`); "exact flat" is an exact IndexFlatIP over the same vectors, single '
        "query; recall over all "
        f"{results[0]['recall_queries']:,} questions."
    )
    rows = []
    for r in results:
        rows.append(
            [
                f"{r['size']:,}",
                mib(r["raw_vector_bytes"]),
                mib(r["index_file_bytes"]),
                r["index_file_bytes"] / r["raw_vector_bytes"],
                mib(r["rss_delta_bytes"]),
                r["rss_delta_bytes"] / r["raw_vector_bytes"],
                mib(r["rss_after_model_bytes"]),
                mib(r["rss_after_load_bytes"]),
                r["open_and_load_s"],
                mib(r["kb_disk_bytes"]),
            ]
        )
    out.append(
        table(
            [
                "chunks",
                "raw float32 (n·384·4)",
                "FAISS serialized",
                "serialized / raw",
                "RSS delta on load",
                "RSS delta / raw",
                "RSS with model",
                "RSS after load",
                "open + load s",
                "KB on disk",
            ],
            rows,
        )
    )
    rows = []
    for r in results:
        b = r["build"]
        rows.append(
            [
                f"{r['size']:,}",
                b.get("rows_seconds"),
                b.get("index_seconds"),
                b.get("check"),
                b.get("check_seconds"),
                b.get("built_at"),
            ]
        )
    out.append(
        "Cache build (once; `rows s` = generate + tokenise + insert, `index s` = the product's "
        "`save_vectors()`):\n\n"
        + table(["chunks", "rows s", "index s", "KnowledgeBase.check()", "check s", "built"], rows)
    )
    notes = "; ".join(f"{r['size']:,}: {r['load_note']}" for r in results)
    out.append(f"Machine load during the measurements: {notes}.")
    return "\n\n".join(out)


def render_sweep(size: int, rows: list[dict[str, Any]]) -> str:
    body = table(
        ["nlist", "nprobe", "recall@10", "single-query p50 ms", "train s", "add s", "largest list"],
        [
            [
                r["nlist"] or "exact",
                r["nprobe"] or "–",
                r["recall@10"],
                r["p50_ms"],
                r.get("train_s"),
                r.get("add_s"),
                r.get("largest_list"),
            ]
            for r in rows
        ],
        digits=3,
    )
    return f"IVF sweep at {size:,} chunks (tuning input for `ingest/_vectors.py`):\n\n{body}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--no-check", action="store_true")
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--nlists", default="1024,2048,4096,8192")
    parser.add_argument("--nprobes", default="8,16,24,32,48,64,96,128,192,256")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.build_only:
        embedder = load_model(say)
        material = synth.ensure_base(lambda: embedder)
        data: Any = synth.ensure_kb(args.size, material, run_check=not args.no_check)
    elif args.sweep:
        data = sweep(
            args.size,
            [int(x) for x in args.nlists.split(",")],
            [int(x) for x in args.nprobes.split(",")],
        )
    else:
        if synth.built_info(args.size) is None:
            # building loads vectors and indexes in this process: measure memory in a clean one
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.scale_bench",
                    "--size",
                    str(args.size),
                    "--build-only",
                    "--out",
                    os.devnull,
                ]
                + (["--no-check"] if args.no_check else []),
                check=True,
            )
        data = measure(args.size, args.queries, run_check=not args.no_check)
    args.out.write_text(json.dumps(data, indent=1, default=float), encoding="utf-8")


if __name__ == "__main__":
    main()


__all__ = ["fmt", "measure", "render", "render_sweep", "sweep"]
