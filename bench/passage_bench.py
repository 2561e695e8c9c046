"""Passage embedding runtimes side by side: torch (sentence-transformers), the ONNX Runtime
graph (fp32, the query encoder's export) and its dynamic int8 quantisation.

One torch model serves all three (the ONNX encoders look token embeddings up in its table), so
only the transformer layers differ. Throughput: `Embedder.encode_passages` over the exact
embedding texts of the cmrc2018_trial corpus, after a warm-up batch, repeats rotating which
runtime goes first (a shared machine drifts). Quality: cosine of each runtime's vectors to
torch's, and recall@1/@5/MRR@10 of the real pipeline (`ingest_paths` into a fresh knowledge
base with that runtime, then `search` for every answerable question: what `zhiku eval
--retrieval-only` measures), queries embedded the same way in all three (QUERY_RUNTIME=onnx).
"""

from __future__ import annotations

import shutil
import time
import uuid
from typing import Any

import numpy as np

from bench._common import CACHE_DIR, EVAL_DIR, bench_settings, load_note, median, say, table
from bench.ingest_bench import pipeline_texts

RUNTIMES = ("torch", "onnx", "onnx-int8")


def embedders(torch_embedder: Any) -> dict[str, Any]:
    """The three runtimes over one loaded model."""
    import os

    from ingest._embed import Embedder, default_model_dir
    from ingest._onnx import load_passage_encoder

    settings = bench_settings(CACHE_DIR / "home")
    model = torch_embedder.model
    out: dict[str, Any] = {}
    for runtime in RUNTIMES:
        encoder = None
        if runtime != "torch":
            encoder = load_passage_encoder(
                model,
                settings.embedding_model,
                str(default_model_dir(settings)),
                settings.models_dir,
                os.cpu_count() or 1,
                runtime == "onnx-int8",
                say,
            )
        out[runtime] = Embedder(
            model,
            settings.embedding_model,
            settings.embedding_batch_size,
            torch_embedder.query_encoder,
            encoder,
            runtime,
        )
    return out


class _Timed:
    """An embedder whose passage vectors are the ones measured (any other text is embedded)."""

    def __init__(self, embedder: Any, known: dict[str, np.ndarray]) -> None:
        self._embedder = embedder
        self._known = known

    def __getattr__(self, name: str) -> Any:
        return getattr(self._embedder, name)

    def encode_passages(self, texts: list[str], progress: bool = False) -> np.ndarray:
        if all(t in self._known for t in texts):
            return np.stack([self._known[t] for t in texts]) if texts else np.zeros((0, 384))
        return self._embedder.encode_passages(texts, progress)


def run(torch_embedder: Any, repeats: int = 1) -> dict[str, Any]:
    from app._eval import evaluate_retrieval, load_dataset, summarize_retrieval
    from ingest._insert import ingest_paths
    from ingest._store import KnowledgeBase

    folder = EVAL_DIR / "cmrc2018_trial"
    dataset = load_dataset(folder)
    runs = embedders(torch_embedder)
    texts = pipeline_texts(bench_settings(CACHE_DIR / "reference"), dataset.corpus)
    seconds: dict[str, list[float]] = {r: [] for r in RUNTIMES}
    vectors: dict[str, np.ndarray] = {}
    for embedder in runs.values():
        embedder.encode_passages(texts[:32])  # warm-up: first-call allocations, thread pools
    for r in range(repeats):
        order = RUNTIMES[r % 3 :] + RUNTIMES[: r % 3]
        for runtime in order:
            say(f"passages: {runtime}, repeat {r + 1}/{repeats} ({len(texts)} chunks)")
            started = time.perf_counter()
            vectors[runtime] = runs[runtime].encode_passages(texts)
            seconds[runtime].append(time.perf_counter() - started)
    results: dict[str, Any] = {"chunks": len(texts), "repeats": repeats, "runtimes": {}}
    for runtime in RUNTIMES:
        cosines = np.sum(vectors[runtime] * vectors["torch"], axis=1)
        # the index is filled with the vectors just timed (the same texts, so nothing is
        # embedded twice on a busy machine): ingest_paths asks for exactly these texts
        known = dict(zip(texts, vectors[runtime], strict=True))
        home = CACHE_DIR / "runs" / f"passages-{runtime}-{uuid.uuid4().hex[:8]}"
        settings = bench_settings(home, passage_runtime=runtime)
        say(f"passages: {runtime}, indexing and searching cmrc2018_trial")
        try:
            started = time.perf_counter()
            report = ingest_paths(
                settings, [dataset.corpus], "eval", embedder=_Timed(runs[runtime], known)
            )
            ingest_s = time.perf_counter() - started
            if report.exit_code:
                raise RuntimeError(f"ingest failed: {report.totals()}")
            with KnowledgeBase.open(settings, "eval") as kb:
                recorded = kb.embedding_spec()
                rows = list(evaluate_retrieval(settings, dataset, kb, runs[runtime]))
        finally:
            shutil.rmtree(home, ignore_errors=True)
        summary = summarize_retrieval(rows)
        results["runtimes"][runtime] = {
            "seconds": seconds[runtime],
            "chunks_per_s": len(texts) / median(seconds[runtime]),
            "cosine_min": float(cosines.min()),
            "cosine_mean": float(cosines.mean()),
            "index_s": ingest_s,
            "index_model": (recorded.passages or "full precision") if recorded else "",
            **{k: summary[k] for k in ("recall@1", "recall@5", "mrr@10", "answerable")},
        }
    results["load_note"] = load_note()
    return results


def interleaved(torch_embedder: Any, rounds: int = 4, size: int = 96) -> dict[str, Any]:
    """Throughput again in short interleaved samples: each round times every runtime on the
    same `size` texts (a different slice each round), in rotating order, so the load of a
    shared machine falls on all three alike."""
    from app._eval import load_dataset

    dataset = load_dataset(EVAL_DIR / "cmrc2018_trial")
    runs = embedders(torch_embedder)
    texts = pipeline_texts(bench_settings(CACHE_DIR / "reference"), dataset.corpus)
    for embedder in runs.values():
        embedder.encode_passages(texts[:16])
    rates: dict[str, list[float]] = {r: [] for r in RUNTIMES}
    for r in range(rounds):
        sample = texts[(r * size) % len(texts) :][:size]
        for runtime in RUNTIMES[r % 3 :] + RUNTIMES[: r % 3]:
            started = time.perf_counter()
            runs[runtime].encode_passages(sample)
            rates[runtime].append(len(sample) / (time.perf_counter() - started))
        say(f"interleaved round {r + 1}/{rounds}: " + ", ".join(
            f"{k} {v[-1]:.2f}/s" for k, v in rates.items()))  # fmt: skip
    return {"rounds": rounds, "size": size, "rates": rates, "load_note": load_note()}


def render_interleaved(results: dict[str, Any]) -> str:
    base = median(results["rates"]["torch"])
    rows = [
        [runtime, median(rates), median(rates) / base, min(rates), max(rates)]
        for runtime, rates in results["rates"].items()
    ]
    return (
        table(["PASSAGE_RUNTIME", "chunks/s (median)", "× torch", "min", "max"], rows, 3)
        + f"\n\n{results['rounds']} interleaved rounds of {results['size']} texts, order "
        f"rotating. Machine load: {results['load_note']}"
    )


def render(results: dict[str, Any]) -> str:
    base = results["runtimes"]["torch"]
    rows = []
    for runtime, r in results["runtimes"].items():
        rows.append(
            [
                runtime,
                r["chunks_per_s"],
                r["chunks_per_s"] / base["chunks_per_s"],
                r["cosine_min"],
                r["cosine_mean"],
                r["recall@1"],
                r["recall@5"],
                r["mrr@10"],
                r["recall@5"] - base["recall@5"],
                r["index_s"],
                r["index_model"],
            ]
        )
    return "\n\n".join(
        [
            table(
                [
                    "PASSAGE_RUNTIME",
                    "chunks/s (encode_passages)",
                    "× torch",
                    "cosine to torch, min",
                    "mean",
                    "recall@1",
                    "recall@5",
                    "MRR@10",
                    "Δ recall@5",
                    "index s (vectors given)",
                    "index records (passages)",
                ],
                rows,
                digits=4,
            ),
            f"{results['chunks']} embedding texts of the cmrc2018_trial corpus, median of "
            f"{results['repeats']} runs each, runtimes rotating first place; recall over "
            f"{base['answerable']} answerable questions, hybrid search as `zhiku eval "
            "--retrieval-only` does it. Machine load: " + results["load_note"],
        ]
    )


if __name__ == "__main__":
    import json
    import sys

    from bench._common import RAW_DIR, load_model

    if "--interleaved" in sys.argv:
        samples = interleaved(load_model(say))
        (RAW_DIR / "passages-interleaved.json").write_text(json.dumps(samples), encoding="utf-8")
        print(render_interleaved(samples))
        sys.exit(0)
    measured = run(load_model(say), int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    RAW_DIR.mkdir(parents=True, exist_ok=True)
    (RAW_DIR / "passages.json").write_text(json.dumps(measured, indent=1), encoding="utf-8")
    print(render(measured))
