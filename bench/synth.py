"""Synthetic but realistic Chinese knowledge bases of 10k-1M chunks, for the scale benchmark.

Text: real Chinese. The sources are the CMRC 2018 trial passages and the default documents in
`knowledge/`, loaded with the product's own loader. A few thousand real "windows" of 300-450
characters are cut from them (half of them continue into a second, random source so that topics
mix); every synthetic chunk is a variant of one window: sentences dropped, inserted from the same
source or swapped, words swapped with their neighbours, and ~6 % of the words replaced by words
drawn from jieba's dictionary by frequency, so the vocabulary keeps growing with the corpus as
real text does (a plain resample of 160k characters would repeat the same few thousand words).
Synthetic documents hold ten chunks from one source, titled after it.

Vectors: not uniform noise. Every window is embedded for real (e5 passage embeddings) and is the
centre of its variants. A few hundred variants made by the same text generator are embedded for
real too; their differences from their centres give the noise covariance (its shape, which lies
in the subspace real embeddings actually move in), and its scale is set so that the median cosine
between a synthetic vector and its centre equals the median cosine measured between a real
variant and its source window. The report shows both numbers.

Building goes through the store's schema: `KnowledgeBase.open(create=True)` makes the database,
rows go in with the same SQL as `ingest._store.Writer`, keyword tokens come from the product's
`index_text(keyword_text(...))` (in a process pool: jieba is the slow part), and the FAISS index
is built by the product's own `KnowledgeBase.save_vectors()`, which chooses flat or IVF by size.
Blocks of 10,000 chunks are generated deterministically from (seed, block) and committed one
transaction each, with the number of committed blocks in `meta`, so an interrupted build resumes
where it stopped; the 10k corpus is the first block of the 100k one, which is the first tenth of
the 1M one.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import CACHE_DIR, EVAL_DIR, KNOWLEDGE_DIR, bench_settings, say

# Bump when the generator changes: cached material and knowledge bases are then rebuilt.
CACHE_VERSION = "1"
SEED = 20_241_122
BLOCK = 10_000  # chunks generated, tokenised and committed together: the unit of resumption
CHUNKS_PER_DOC = 10
WINDOWS = 2_500  # real chunks embedded as centres
CALIBRATION_VARIANTS = 384  # real variants embedded to measure the spread around a centre
SUBSTITUTE_RATE = 0.06
SWAP_RATE = 0.08
SCALE_HOME = CACHE_DIR / "scale"
BASE_FILE = CACHE_DIR / f"base-v{CACHE_VERSION}.npz"

_SENTENCE = re.compile(r"[^。！？!?\n]+[。！？!?]*")
_HAN = re.compile(r"^[\u4e00-\u9fff]+$")


@dataclass(frozen=True)
class Source:
    title: str
    sentences: tuple[str, ...]


@dataclass(frozen=True)
class Window:
    source: int  # the source it starts in: its title is the chunk's title
    parts: tuple[tuple[int, int], ...]  # (source, sentence) in reading order

    def text(self, sources: Sequence[Source]) -> str:
        return "".join(sources[s].sentences[i] for s, i in self.parts)


def load_sources() -> list[Source]:
    """Real Chinese documents, read by the product's loader (same normalisation)."""
    from ingest._load import load_file

    files = [EVAL_DIR / "cmrc2018_trial" / "corpus.jsonl", *sorted(KNOWLEDGE_DIR.glob("*.txt"))]
    sources = []
    for path in files:
        for doc in load_file(path, 1 << 30).docs:
            text = "\n".join(page.text for page in doc.pages)
            sentences = tuple(
                piece
                for s in _SENTENCE.findall(text)
                for piece in _short_pieces(s.strip())
                if len(piece) >= 2
            )
            if sentences:
                sources.append(Source(doc.title, sentences))
    return sources


def _short_pieces(sentence: str, limit: int = 160) -> list[str]:
    """Long "sentences" (tables, lists without full stops) cut at commas, else hard."""
    if len(sentence) <= limit:
        return [sentence]
    pieces, current = [], ""
    for part in re.findall(r"[^，,；;]+[，,；;]*", sentence):
        while len(part) > limit:
            pieces.append(current + part[: limit - len(current)])
            part = part[limit - len(current) :]
            current = ""
        if len(current) + len(part) > limit:
            pieces.append(current)
            current = ""
        current += part
    if current:
        pieces.append(current)
    return [p for p in pieces if p]


def make_windows(sources: Sequence[Source], count: int, rng: np.random.Generator) -> list[Window]:
    """`count` windows of 300-450 characters; sources get windows in proportion to length, and
    half of the windows run on into a random other source."""
    lengths = np.array([sum(len(s) for s in src.sentences) for src in sources], dtype=np.float64)
    windows = []
    for _ in range(count):
        first = int(rng.choice(len(sources), p=lengths / lengths.sum()))
        target = int(rng.integers(300, 451))
        mixed = rng.random() < 0.5
        own_share = int(target * rng.uniform(0.55, 0.8)) if mixed else target
        parts: list[tuple[int, int]] = []
        size = 0
        sentences = sources[first].sentences
        start = int(rng.integers(0, len(sentences)))
        for i in range(start, len(sentences)):
            if size >= own_share:
                break
            parts.append((first, i))
            size += len(sentences[i])
        if size < target:
            other = int(rng.integers(0, len(sources)))
            others = sources[other].sentences
            begin = int(rng.integers(0, len(others)))
            for i in range(begin, len(others)):
                if size >= target:
                    break
                parts.append((other, i))
                size += len(others[i])
        windows.append(Window(first, tuple(parts)))
    return windows


class Vocabulary:
    """jieba's dictionary words of 2-4 Chinese characters, drawn by their corpus frequency."""

    def __init__(self) -> None:
        import jieba

        jieba.initialize()
        items = sorted(
            (w, f) for w, f in jieba.dt.FREQ.items() if f > 0 and 2 <= len(w) <= 4 and _HAN.match(w)
        )
        self.words = [w for w, _ in items]
        weights = np.array([f for _, f in items], dtype=np.float64)
        self.cumulative = np.cumsum(weights / weights.sum())

    def draw(self, rng: np.random.Generator, n: int) -> list[str]:
        picks = np.searchsorted(self.cumulative, rng.random(n), side="right")
        return [self.words[min(int(i), len(self.words) - 1)] for i in picks]


class TextGenerator:
    """Variants of real windows: the text side of a synthetic chunk."""

    def __init__(self, sources: Sequence[Source], windows: Sequence[Window]) -> None:
        import jieba

        self.sources = sources
        self.windows = windows
        self.vocabulary = Vocabulary()
        # words of every sentence, segmented once: variants shuffle and replace words
        self.words = [[jieba.lcut(s) for s in src.sentences] for src in sources]

    def sentence(self, rng: np.random.Generator, source: int, index: int) -> str:
        words = list(self.words[source][index])
        n = len(words)
        if n > 2:
            for k in np.flatnonzero(rng.random(n - 1) < SWAP_RATE):
                words[k], words[k + 1] = words[k + 1], words[k]
            chosen = [
                k for k in np.flatnonzero(rng.random(n) < SUBSTITUTE_RATE) if len(words[k]) > 1
            ]
            for k, word in zip(chosen, self.vocabulary.draw(rng, len(chosen)), strict=True):
                words[k] = word
        return "".join(words)

    def variant(self, rng: np.random.Generator, window: Window) -> str:
        parts = list(window.parts)
        if len(parts) > 2 and rng.random() < 0.3:
            del parts[int(rng.integers(0, len(parts)))]
        if rng.random() < 0.4:
            own = self.sources[window.source].sentences
            parts.insert(
                int(rng.integers(0, len(parts) + 1)),
                (window.source, int(rng.integers(0, len(own)))),
            )
        if len(parts) > 1 and rng.random() < 0.3:
            k = int(rng.integers(0, len(parts) - 1))
            parts[k], parts[k + 1] = parts[k + 1], parts[k]
        target = int(rng.integers(300, 451))
        pieces: list[str] = []
        size = 0
        for source, index in parts:
            piece = self.sentence(rng, source, index)
            pieces.append(piece)
            size += len(piece)
        # too short (a short source): continue with the window's source from the top
        own = self.sources[window.source].sentences
        follow = 0
        while size < 300 and follow < 4 * len(own):
            piece = self.sentence(rng, window.source, follow % len(own))
            pieces.append(piece)
            size += len(piece)
            follow += 1
        return "".join(pieces)[:target]


# ----- base material: windows, centre vectors, noise, queries ------------------------------------


@dataclass
class Material:
    sources: list[Source]
    windows: list[Window]
    centres: np.ndarray  # (windows, dim) e5 passage embeddings
    noise: np.ndarray  # (m, dim): noise = z @ noise, z ~ N(0, I_m)
    scale: float
    queries: list[str]
    query_sets: list[str]
    query_vectors: np.ndarray
    spec: dict[str, Any]  # EmbeddingSpec fields of the model that made the vectors
    stats: dict[str, float]

    @property
    def dimension(self) -> int:
        return int(self.centres.shape[1])


def _normalize(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _read_questions() -> tuple[list[str], list[str]]:
    texts, sets = [], []
    for name in ("cmrc2018_trial", "seed_dev"):
        for line in (EVAL_DIR / name / "questions.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                texts.append(json.loads(line)["question"])
                sets.append(name)
    return texts, sets


def _embedding_texts(material_sources: Sequence[Source], windows: Sequence[Window]) -> list[str]:
    from ingest._insert import embedding_text

    return [
        embedding_text(material_sources[w.source].title, (), w.text(material_sources))
        for w in windows
    ]


def _calibrate(
    centres: np.ndarray, residuals: np.ndarray, real_cosines: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, float, float]:
    """Noise basis and the scale at which synthetic vectors sit as far from their centres (median
    cosine) as real variants do."""
    basis = (residuals / np.sqrt(len(residuals))).astype(np.float32)  # covariance = residuals' own
    sample = centres[rng.integers(0, len(centres), 4000)]
    z = rng.standard_normal((len(sample), len(basis))).astype(np.float32)
    wanted = float(np.median(real_cosines))

    def median_cosine(scale: float) -> float:
        vectors = _normalize(sample + scale * (z @ basis))
        return float(np.median(np.sum(vectors * sample, axis=1)))

    low, high = 0.0, 8.0
    for _ in range(40):
        mid = (low + high) / 2
        if median_cosine(mid) > wanted:
            low = mid
        else:
            high = mid
    scale = (low + high) / 2
    return basis, scale, median_cosine(scale)


def ensure_base(embedder_factory: Callable[[], Any]) -> Material:
    """The base material, built once (about 2,900 real embeddings) and cached."""
    sources = load_sources()
    rng = np.random.default_rng([SEED, 0])
    windows = make_windows(sources, WINDOWS, rng)
    queries, query_sets = _read_questions()
    key = hashlib.sha256(
        json.dumps([CACHE_VERSION, [w.parts for w in windows], queries]).encode()
    ).hexdigest()[:16]
    if BASE_FILE.is_file():
        with np.load(BASE_FILE, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta["key"] == key:
                return Material(
                    sources,
                    windows,
                    data["centres"],
                    data["noise"],
                    float(meta["scale"]),
                    queries,
                    query_sets,
                    data["query_vectors"],
                    meta["spec"],
                    meta["stats"],
                )
    embedder = embedder_factory()
    texts = _embedding_texts(sources, windows)
    say(f"embedding {len(texts)} real windows as centres (once; cached in {BASE_FILE})")
    started = time.perf_counter()
    centres = embedder.encode_passages(texts, progress=True)
    say(f"  {len(texts) / (time.perf_counter() - started):.1f} passages/s")
    generator = TextGenerator(sources, windows)
    calibration = rng.choice(len(windows), size=CALIBRATION_VARIANTS, replace=False)
    from ingest._insert import embedding_text

    variant_texts = [
        embedding_text(sources[windows[i].source].title, (), generator.variant(rng, windows[i]))
        for i in calibration
    ]
    say(f"embedding {len(variant_texts)} real variants to measure the spread around a centre")
    variants = embedder.encode_passages(variant_texts, progress=True)
    real_cosines = np.sum(variants * centres[calibration], axis=1)
    residuals = variants - centres[calibration]
    noise, scale, synthetic_median = _calibrate(centres, residuals, real_cosines, rng)
    say(f"embedding {len(queries)} real questions")
    query_vectors = embedder.encode_queries(queries)
    # nearest other centre: how close real chunks of this corpus are to each other
    sims = centres @ centres.T
    np.fill_diagonal(sims, -1)
    stats = {
        "real_variant_cosine_median": float(np.median(real_cosines)),
        "real_variant_cosine_p10": float(np.percentile(real_cosines, 10)),
        "synthetic_variant_cosine_median": synthetic_median,
        "noise_scale": scale,
        "centre_nearest_neighbour_cosine_median": float(np.median(sims.max(axis=1))),
        "query_top1_cosine_median_real_centres": float(
            np.median((query_vectors @ centres.T).max(axis=1))
        ),
        "windows": len(windows),
        "sources": len(sources),
        "source_chars": sum(len(s) for src in sources for s in src.sentences),
        "embed_seconds": time.perf_counter() - started,
    }
    spec = dict(embedder.spec.__dict__)
    meta = {"key": key, "scale": scale, "spec": spec, "stats": stats}
    BASE_FILE.parent.mkdir(parents=True, exist_ok=True)
    temp = BASE_FILE.with_name(BASE_FILE.name + ".tmp.npz")
    np.savez(
        temp,
        centres=centres,
        noise=noise,
        query_vectors=query_vectors,
        meta=np.array(json.dumps(meta)),
    )
    os.replace(temp, BASE_FILE)
    return Material(
        sources, windows, centres, noise, scale, queries, query_sets, query_vectors, spec, stats
    )


# ----- blocks ------------------------------------------------------------------------------------


@dataclass
class Block:
    index: int
    doc_ids: list[str]
    titles: list[str]
    texts: list[list[str]]  # per document, its chunks' texts
    centres: np.ndarray  # window of every chunk, in chunk order

    def keyword_texts(self) -> list[str]:
        from ingest.store import keyword_text

        return [
            keyword_text(title, (), text)
            for title, texts in zip(self.titles, self.texts, strict=True)
            for text in texts
        ]


def block_vectors(material: Material, block: int, centres: np.ndarray) -> np.ndarray:
    """Vectors of one block: centre plus noise of the measured shape and size, unit length."""
    rng = np.random.default_rng([SEED, 2, block])
    z = rng.standard_normal((len(centres), len(material.noise)), dtype=np.float32)
    return _normalize(material.centres[centres] + material.scale * (z @ material.noise))


def generate_block(material: Material, generator: TextGenerator, block: int) -> Block:
    rng = np.random.default_rng([SEED, 1, block])
    by_source: dict[int, list[int]] = {}
    for i, w in enumerate(material.windows):
        by_source.setdefault(w.source, []).append(i)
    sources = sorted(by_source)
    weights = np.array([len(by_source[s]) for s in sources], dtype=np.float64)
    docs = BLOCK // CHUNKS_PER_DOC
    doc_ids, titles, texts, centres = [], [], [], []
    for d in range(docs):
        source = sources[int(rng.choice(len(sources), p=weights / weights.sum()))]
        chosen = rng.choice(by_source[source], size=CHUNKS_PER_DOC)
        doc_ids.append(f"syn-{block * docs + d:07d}")
        titles.append(material.sources[source].title)
        texts.append([generator.variant(rng, material.windows[int(w)]) for w in chosen])
        centres.extend(int(w) for w in chosen)
    return Block(block, doc_ids, titles, texts, np.array(centres, dtype=np.int64))


def _tokenize_many(texts: list[str]) -> list[str]:
    from ingest._tokenize import index_text

    return [index_text(t) for t in texts]


def _init_worker() -> None:
    from ingest._tokenize import tokens

    tokens("预热")  # load jieba's dictionary once per worker


# ----- knowledge bases ---------------------------------------------------------------------------


def kb_name(size: int) -> str:
    return f"syn-v{CACHE_VERSION}-{size}"


def kb_dir(size: int) -> Path:
    return SCALE_HOME / "kbs" / kb_name(size)


def scale_settings() -> Any:
    return bench_settings(SCALE_HOME)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _insert_block(
    conn: sqlite3.Connection,
    material: Material,
    block: Block,
    token_texts: list[str],
    vectors: np.ndarray,
) -> None:
    """One block in one transaction, with the same SQL as `ingest._store.Writer`."""
    from ingest._insert import _hash_text, embedding_text

    now = _now()
    first_id = block.index * BLOCK + 1
    chunk_rows = []
    fts_rows = []
    doc_rows = []
    page_rows = []
    source_rows = []
    position = 0
    for doc_id, title, texts in zip(block.doc_ids, block.titles, block.texts, strict=True):
        page = "\n".join(texts)
        raw = page.encode("utf-8")
        sha = hashlib.sha256(raw).hexdigest()
        origin = f"/synthetic/{doc_id}.txt"
        doc_rows.append(
            (doc_id, title, origin, origin, "txt", sha, len(raw), 1, len(texts), now, now)
        )
        page_rows.append((doc_id, 0, None, page))
        source_rows.append((origin, sha, len(raw), now))
        offset = 0
        for ordinal, text in enumerate(texts):
            chunk_id = first_id + position
            key = hashlib.sha256(f"{doc_id}\0{ordinal}\0{text}".encode()).hexdigest()[:32]
            chunk_rows.append(
                (
                    chunk_id,
                    key,
                    doc_id,
                    ordinal,
                    None,
                    0,
                    offset,
                    offset + len(text),
                    text,
                    "[]",
                    "text",
                    _hash_text(embedding_text(title, (), text)),
                    np.ascontiguousarray(vectors[position], dtype="<f4").tobytes(),
                    1,
                )
            )
            fts_rows.append((chunk_id, token_texts[position]))
            offset += len(text) + 1
            position += 1
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(
            "INSERT INTO documents(doc_id, title, source, origin, doc_type, sha256, size, pages, "
            "chunks, ingested_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            doc_rows,
        )
        conn.executemany(
            "INSERT INTO pages(doc_id, seq, number, text) VALUES (?, ?, ?, ?)", page_rows
        )
        conn.executemany(
            "INSERT INTO chunks(id, chunk_key, doc_id, ordinal, page, page_seq, start, end, text, "
            "headings, kind, embed_hash, vector, gen) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            chunk_rows,
        )
        conn.executemany("INSERT INTO chunks_fts(rowid, tokens) VALUES (?, ?)", fts_rows)
        conn.executemany(
            "INSERT OR REPLACE INTO sources(source, sha256, size, ingested_at) VALUES (?, ?, ?, ?)",
            source_rows,
        )
        conn.execute(
            "INSERT INTO meta(key, value) VALUES ('bench_blocks', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (str(block.index + 1),),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def _set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta(key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def built_info(size: int) -> dict[str, Any] | None:
    """What the cached knowledge base recorded about its build, or None if not complete."""
    db = kb_dir(size) / "kb.sqlite"
    if not db.is_file():
        return None
    conn = sqlite3.connect(db)
    try:
        raw = _meta(conn, "bench_build")
    except sqlite3.DatabaseError:
        return None
    finally:
        conn.close()
    return json.loads(raw) if raw else None


def ensure_kb(size: int, material: Material, run_check: bool = True) -> dict[str, Any]:
    """The synthetic knowledge base of `size` chunks: cached, resumed, or built."""
    from ingest.store import KnowledgeBase

    if size % BLOCK:
        raise ValueError(f"sizes are multiples of {BLOCK}")
    info = built_info(size)
    if info is not None and info.get("base") == BASE_FILE.name:
        return info
    settings = scale_settings()
    name = kb_name(size)
    path = kb_dir(size)
    db = path / "kb.sqlite"
    if db.is_file():
        conn = sqlite3.connect(db)
        try:
            ok = _meta(conn, "bench_base") == BASE_FILE.name
        except sqlite3.DatabaseError:
            ok = False
        finally:
            conn.close()
        if not ok:
            shutil.rmtree(path)
    KnowledgeBase.open(settings, name, create=True).close()  # the product's schema
    conn = sqlite3.connect(db, isolation_level=None, timeout=60)
    # a cache: a power cut mid-build means a rebuild, so skip the per-commit fsync
    conn.execute("PRAGMA synchronous=OFF")
    _set_meta(conn, "bench_base", BASE_FILE.name)
    _set_meta(conn, "embedding", json.dumps(material.spec, ensure_ascii=False))
    _set_meta(conn, "generation", "1")
    done = int(_meta(conn, "bench_blocks") or 0)
    blocks = size // BLOCK
    started = time.perf_counter()
    if done < blocks:
        say(f"building {name}: blocks {done}..{blocks - 1} of {BLOCK:,} chunks ({path})")
        _fill(conn, material, range(done, blocks), size)
    conn.close()
    build_s = time.perf_counter() - started
    kb = KnowledgeBase.open(settings, name)
    try:
        t0 = time.perf_counter()
        if not list(path.glob("vectors-*.faiss")):
            say(f"building the FAISS index of {name} (the product's save_vectors)")
            kb.save_vectors()
        index_s = time.perf_counter() - t0
        problems: list[str] | None = None
        check_s = None
        if run_check:
            say(f"KnowledgeBase.check() on {name}")
            t0 = time.perf_counter()
            problems = kb.check()
            check_s = time.perf_counter() - t0
            if problems:
                raise RuntimeError(f"{name} fails KnowledgeBase.check(): {problems}")
        info = {
            "base": BASE_FILE.name,
            "size": size,
            "rows_seconds": build_s if done < blocks else None,
            "index_seconds": index_s,
            "index_kind": kb.vector_index().kind,
            "check": "ok" if problems == [] else "not run",
            "check_seconds": check_s,
            "built_at": _now(),
        }
        with kb._lock:
            _set_meta(kb.conn, "bench_build", json.dumps(info))
    finally:
        kb.close()
    return info


def _fill(conn: sqlite3.Connection, material: Material, blocks: range, size: int) -> None:
    from tqdm import tqdm

    generator = TextGenerator(material.sources, material.windows)
    workers = max(1, os.cpu_count() or 1)
    ctx = multiprocessing.get_context("spawn")  # no fork after torch/OpenMP were initialised
    with (
        ctx.Pool(workers, initializer=_init_worker) as pool,
        tqdm(
            total=len(blocks) * BLOCK,
            initial=0,
            unit="chunk",
            desc=f"{size:,} chunks",
            smoothing=0.05,
        ) as bar,
    ):
        pending: tuple[Block, Any] | None = None
        for b in blocks:
            block = generate_block(material, generator, b)
            texts = block.keyword_texts()
            step = max(1, len(texts) // (4 * workers))
            job = pool.map_async(
                _tokenize_many, [texts[i : i + step] for i in range(0, len(texts), step)]
            )
            if pending is not None:
                _commit(conn, material, *pending)
                bar.update(BLOCK)
            pending = (block, job)
        if pending is not None:
            _commit(conn, material, *pending)
            bar.update(BLOCK)


def _commit(conn: sqlite3.Connection, material: Material, block: Block, job: Any) -> None:
    token_texts = [t for part in job.get() for t in part]
    vectors = block_vectors(material, block.index, block.centres)
    _insert_block(conn, material, block, token_texts, vectors)


def all_vectors(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) exactly as stored, for the exact-search reference."""
    db = kb_dir(size) / "kb.sqlite"
    conn = sqlite3.connect(db)
    try:
        ids = np.empty(size, dtype=np.int64)
        vectors = np.empty((size, 0), dtype=np.float32)
        first = True
        for row, (chunk_id, blob) in enumerate(
            conn.execute("SELECT id, vector FROM chunks ORDER BY id")
        ):
            v = np.frombuffer(blob, dtype="<f4")
            if first:
                vectors = np.empty((size, len(v)), dtype=np.float32)
                first = False
            ids[row] = chunk_id
            vectors[row] = v
    finally:
        conn.close()
    return ids, vectors
