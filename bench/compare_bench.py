"""Side by side: the plain LangChain recipe (`app._eval.plain_langchain_recipe`:
RecursiveCharacterTextSplitter(1000, 200) + LangChain FAISS, dense only) and zhiku's own
pipeline (`ingest_paths` + hybrid `search()`), same embedding model, same corpora, same run."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from bench._common import EVAL_DIR, bench_settings, load_note, say, table
from bench.ingest_bench import RUNS_DIR

DATASETS = ("seed_dev", "cmrc2018_trial")


def zhiku_kb(
    embedder: Any, corpus: Path, keep: dict[str, tuple[Path, float]]
) -> tuple[Path, float]:
    """A knowledge base of `corpus`: the one the ingestion section built, or a fresh one."""
    from ingest._insert import ingest_paths

    if str(corpus) in keep:
        return keep[str(corpus)]
    home = RUNS_DIR / f"compare-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    report = ingest_paths(bench_settings(home), [corpus], "bench", embedder=embedder)
    seconds = time.perf_counter() - started
    if report.exit_code:
        raise RuntimeError(f"ingest of {corpus} failed: {report.totals()}")
    keep[str(corpus)] = (home, seconds)
    return home, seconds


def run(embedder: Any, keep: dict[str, tuple[Path, float]]) -> dict[str, Any]:
    from app._eval import (
        evaluate_retrieval,
        load_dataset,
        plain_langchain_recipe,
        summarize_retrieval,
    )
    from ingest.store import KnowledgeBase

    results = []
    for name in DATASETS:
        dataset = load_dataset(EVAL_DIR / name)
        say(f"side by side on {name}: plain LangChain recipe")
        plain, plain_t = plain_langchain_recipe(dataset, embedder)
        say(f"side by side on {name}: zhiku")
        home, ingest_s = zhiku_kb(embedder, dataset.corpus, keep)
        settings = bench_settings(home)
        kb = KnowledgeBase.open(settings, "bench")
        try:
            chunks = kb.counts()["chunks"]
            summary = summarize_retrieval(list(evaluate_retrieval(settings, dataset, kb, embedder)))
        finally:
            kb.close()
        results.append(
            {
                "dataset": name,
                "answerable": int(summary["answerable"]),
                "plain": {**plain, **plain_t},
                "zhiku": {**summary, "ingest_s": ingest_s, "chunks": chunks},
                "load_note": load_note(),
            }
        )
    return {"datasets": results}


def render(results: dict[str, Any]) -> str:
    rows = []
    for r in results["datasets"]:
        p, z = r["plain"], r["zhiku"]
        rows.append(
            [
                r["dataset"],
                "plain LangChain (1000/200, FAISS dense)",
                p["chunks"],
                p["ingest_s"],
                p["recall@1"],
                p["recall@5"],
                p["mrr@10"],
                p["query_p50_ms"],
            ]
        )
        rows.append(
            [
                r["dataset"],
                "zhiku (400/60, hybrid)",
                z["chunks"],
                z["ingest_s"],
                z["recall@1"],
                z["recall@5"],
                z["mrr@10"],
                z["retrieval_p50_ms"],
            ]
        )
    return "\n\n".join(
        [
            table(
                [
                    "dataset",
                    "recipe",
                    "chunks",
                    "ingest s",
                    "recall@1",
                    "recall@5",
                    "MRR@10",
                    "query p50 ms",
                ],
                rows,
                digits=3,
            ),
            "Same model (multilingual-e5-small), same run. Recall over the answerable questions "
            "(hit = gold document and, where given, a gold span in the chunk). zhiku's ingest "
            "seconds are the median of the ingestion section when it ran on the same corpus file, "
            "else one fresh `ingest_paths`; its query time is the whole hybrid `search()` (query "
            "embedding included), the plain recipe's is `similarity_search` (embedding "
            "included). Machine load: "
            + "; ".join(f"{r['dataset']}: {r['load_note']}" for r in results["datasets"]),
        ]
    )
