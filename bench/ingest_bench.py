"""Ingestion: the real `ingest_paths` against a bare `SentenceTransformer.encode` of the very same
embedding texts, then a re-ingest of the unchanged corpus.

The model is loaded once before any timing and passed as `embedder=`, as a long-running app
does; jieba's dictionary is loaded before timing too (about a second, once per process) for the
same reason. The bare run encodes the texts the pipeline embedded, reproduced with the
pipeline's own functions (`discover`, `load_file`, `chunk_document`, `embedding_text`) and checked
against the `embed_hash` of every stored chunk, so both sides do exactly the same model work.
Repeats alternate which side runs first, so slow drift of a shared machine cancels out.

While the pipeline runs, light wrappers time its stages (load, chunk, embed, jieba, SQLite,
FAISS): a call or two of `perf_counter` per chunk, nothing that shows in the totals.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._common import (
    CACHE_DIR,
    EVAL_DIR,
    KNOWLEDGE_DIR,
    bench_settings,
    load_note,
    median,
    say,
    table,
)

RUNS_DIR = CACHE_DIR / "runs"


def corpora() -> list[tuple[str, Path]]:
    return [
        ("knowledge/ (5 files)", KNOWLEDGE_DIR),
        ("cmrc2018_trial corpus.jsonl", EVAL_DIR / "cmrc2018_trial" / "corpus.jsonl"),
    ]


def pipeline_texts(settings: Any, path: Path) -> list[str]:
    """The embedding texts `ingest_paths` produces for `path`, by its own functions."""
    from ingest._chunk import chunk_document
    from ingest._insert import discover, embedding_text
    from ingest._load import load_file

    files, _ = discover([path])
    texts = []
    for file in files:
        loaded = load_file(file, int(settings.max_file_mb * 2**20), settings.max_pdf_pages)
        for doc in loaded.docs:
            for chunk in chunk_document(doc, settings.chunk_size, settings.chunk_overlap):
                texts.append(embedding_text(doc.title, chunk.headings, chunk.text))
    return texts


def stored_hashes(home: Path, kb: str) -> list[str]:
    conn = sqlite3.connect(home / "kbs" / kb / "kb.sqlite")
    try:
        return sorted(r[0] for r in conn.execute("SELECT embed_hash FROM chunks"))
    finally:
        conn.close()


@dataclass
class StageTimer:
    """Seconds spent inside wrapped functions, by stage."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def wrap(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - started

        return timed


@contextmanager
def instrumented(timer: StageTimer) -> Iterator[None]:
    import ingest._embed as embed_mod
    import ingest._insert as insert_mod
    import ingest.store.faiss_sqlite.kb as store_mod
    import ingest.store.faiss_sqlite.write as write_mod

    patches = [
        (insert_mod, "_sha256", "hash files"),
        (insert_mod, "load_file", "load"),
        (insert_mod, "chunk_document", "chunk"),
        (embed_mod.Embedder, "encode_passages", "embed"),
        (store_mod.FaissSqliteKB, "vectors_by_embed_hash", "reuse lookup"),
        (write_mod, "index_text", "jieba (inside put_file)"),
        (write_mod.SqliteWriter, "put_file", "put_file (SQLite, incl. jieba)"),
        (store_mod.FaissSqliteKB, "save_vectors", "FAISS save"),
    ]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    try:
        for owner, name, stage in patches:
            setattr(owner, name, timer.wrap(stage, getattr(owner, name)))
        yield
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


def _pipeline(settings: Any, path: Path, embedder: Any, timer: StageTimer) -> float:
    from ingest._insert import ingest_paths

    started = time.perf_counter()
    with instrumented(timer):
        report = ingest_paths(settings, [path], "bench", embedder=embedder)
    seconds = time.perf_counter() - started
    if report.exit_code:
        raise RuntimeError(f"ingest of {path} failed: {report.totals()}")
    return seconds


def _bare(embedder: Any, texts: list[str]) -> float:
    started = time.perf_counter()
    embedder.model.encode(texts, prompt="passage: ", batch_size=32, normalize_embeddings=True)
    return time.perf_counter() - started


def run(embedder: Any, repeats: int, keep: dict[str, tuple[Path, float]]) -> dict[str, Any]:
    """Measure every corpus; `keep` receives (home, median seconds) of a finished knowledge base
    per corpus path, for the side-by-side section."""
    from ingest._insert import _hash_text, ingest_paths
    from ingest._tokenize import tokens

    t0 = time.perf_counter()
    tokens("预热")
    jieba_init_s = time.perf_counter() - t0
    results: dict[str, Any] = {"jieba_init_s": jieba_init_s, "corpora": []}
    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    for label, path in corpora():
        reference = bench_settings(RUNS_DIR / "reference")
        texts = pipeline_texts(reference, path)
        chars = sum(len(t) for t in texts)
        pipeline_s, bare_s, reingest_s, ratios = [], [], [], []
        stages: list[dict[str, float]] = []
        same = True
        last_home: Path | None = None
        for r in range(repeats):
            home = RUNS_DIR / f"ingest-{uuid.uuid4().hex[:8]}"
            settings = bench_settings(home)
            timer = StageTimer()

            say(f"ingest {label}: repeat {r + 1}/{repeats} ({len(texts)} chunks)")
            if r % 2 == 0:
                p = _pipeline(settings, path, embedder, timer)
                b = _bare(embedder, texts)
            else:
                b = _bare(embedder, texts)
                p = _pipeline(settings, path, embedder, timer)
            pipeline_s.append(p)
            bare_s.append(b)
            ratios.append(p / b)
            stages.append(dict(timer.seconds))
            same = same and stored_hashes(home, "bench") == sorted(_hash_text(t) for t in texts)
            started = time.perf_counter()
            again = ingest_paths(settings, [path], "bench", embedder=embedder)
            reingest_s.append(time.perf_counter() - started)
            if again.embedded_chunks or again.totals()["added"] or again.totals()["updated"]:
                raise RuntimeError(f"re-ingest of unchanged {path} did work: {again.totals()}")
            if last_home is not None:
                shutil.rmtree(last_home, ignore_errors=True)
            last_home = home
        assert last_home is not None
        keep[str(path)] = (last_home, median(pipeline_s))
        stage_medians = {k: median([s.get(k, 0.0) for s in stages]) for k in stages[0]}
        results["corpora"].append(
            {
                "label": label,
                "path": str(path),
                "chunks": len(texts),
                "chars": chars,
                "pipeline_s": pipeline_s,
                "bare_s": bare_s,
                "reingest_s": reingest_s,
                "ratios": ratios,
                "same_chunks": same,
                "stages": stage_medians,
                "prompt": embedder.spec.passage_prompt,
                "load_note": load_note(),
            }
        )
    return results


def render(results: dict[str, Any]) -> str:
    rows = []
    for c in results["corpora"]:
        p, b, re_ = median(c["pipeline_s"]), median(c["bare_s"]), median(c["reingest_s"])
        rows.append(
            [
                c["label"],
                c["chunks"],
                p,
                c["chunks"] / p,
                b,
                c["chunks"] / b,
                median(c["ratios"]),
                p / b,
                re_,
                p / re_,
                len(c["pipeline_s"]),
                c["same_chunks"],
            ]
        )
    out = [
        table(
            [
                "corpus",
                "chunks",
                "ingest_paths s",
                "chunks/s",
                "bare encode s",
                "chunks/s",
                "pipeline/bare (median of runs)",
                "ratio of medians",
                "re-ingest s",
                "speed-up",
                "runs",
                "same chunks",
            ],
            rows,
            digits=3,
        ),
        'Bare = `SentenceTransformer.encode(texts, prompt="passage: ", batch_size=32, '
        'normalize_embeddings=True)` over the exact embedding texts of the pipeline ("same '
        'chunks": their hashes equal the stored `embed_hash` of every chunk). Medians of the '
        f"runs; jieba's dictionary (loaded before timing) takes {results['jieba_init_s']:.2f} s "
        "once per process. Re-ingest = `ingest_paths` again on the unchanged corpus.",
    ]
    stage_names = list(results["corpora"][0]["stages"])
    rows = []
    for c in results["corpora"]:
        total = median(c["pipeline_s"])
        accounted = sum(v for k, v in c["stages"].items() if k not in ("jieba (inside put_file)",))
        rows.append(
            [c["label"], total]
            + [c["stages"].get(k, 0.0) for k in stage_names]
            + [total - accounted]
        )
    out.append(
        "Where the pipeline's time goes (median seconds per stage; put_file includes its jieba "
        "time):\n\n" + table(["corpus", "total", *stage_names, "other"], rows, digits=3)
    )
    out.append(
        "Machine load: " + "; ".join(f"{c['label']}: {c['load_note']}" for c in results["corpora"])
    )
    return "\n\n".join(out)
