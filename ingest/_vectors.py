"""The FAISS side of a knowledge base: vectors by chunk id, saved with `faiss.write_index`.

SQLite holds every vector too and is the source of truth; this index is a fast copy that can
always be rebuilt or caught up from it. Small collections use exact search; past
`IVF_THRESHOLD` vectors an inverted-file index keeps 1M-vector searches in milliseconds with
memory close to the raw float32 vectors (HNSW would add ~10% for its graph and cannot delete).
"""

from __future__ import annotations

import math
import os
import re
import threading
from pathlib import Path

import faiss
import numpy as np

IVF_THRESHOLD = 200_000
# Measured on 1M synthetic vectors (bench/retrieval.py): nprobe 48 of 4096 lists keeps
# recall@10 against exact search above 0.95.
IVF_NPROBE_FRACTION = 1 / 85
_FILE = re.compile(r"^vectors-(\d+)-(\d+)\.faiss$")


def index_file_name(epoch: int, generation: int) -> str:
    return f"vectors-{epoch}-{generation}.faiss"


def parse_index_file_name(name: str) -> tuple[int, int] | None:
    match = _FILE.match(name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _ivf_lists(n: int) -> int:
    return max(64, 2 ** round(math.log2(4 * math.sqrt(n))))


class VectorIndex:
    """A FAISS index of unit vectors keyed by chunk id, with the store generation it reflects."""

    def __init__(self, index: faiss.Index, epoch: int, generation: int) -> None:
        self.index = index
        self.epoch = epoch
        self.generation = generation
        self._lock = threading.RLock()

    @classmethod
    def empty(cls, dimension: int, epoch: int) -> VectorIndex:
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dimension)), epoch, 0)

    @classmethod
    def build(
        cls,
        dimension: int,
        epoch: int,
        generation: int,
        ids: np.ndarray,
        vectors: np.ndarray,
        ivf_threshold: int = IVF_THRESHOLD,
    ) -> VectorIndex:
        n = len(ids)
        if n < ivf_threshold:
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        else:
            nlist = _ivf_lists(n)
            quantizer = faiss.IndexFlatIP(dimension)
            index = faiss.IndexIVFFlat(quantizer, dimension, nlist, faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(0)
            sample = vectors[rng.choice(n, size=min(n, 40 * nlist), replace=False)]
            index.train(np.ascontiguousarray(sample))
            index.nprobe = max(8, round(nlist * IVF_NPROBE_FRACTION))
        built = cls(index, epoch, generation)
        if n:
            built.add(ids, vectors)
        return built

    @property
    def kind(self) -> str:
        return "ivf" if isinstance(self.index, faiss.IndexIVF) else "flat"

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    @property
    def dimension(self) -> int:
        return int(self.index.d)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        with self._lock:
            self.index.add_with_ids(
                np.ascontiguousarray(vectors, dtype=np.float32),
                np.ascontiguousarray(ids, dtype=np.int64),
            )

    def remove(self, ids: np.ndarray) -> int:
        if len(ids) == 0:
            return 0
        with self._lock:
            return int(
                self.index.remove_ids(faiss.IDSelectorBatch(np.asarray(ids, dtype=np.int64)))
            )

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (ids, cosine scores) for one unit query vector; absent slots are dropped."""
        with self._lock:
            if self.size == 0:
                return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
            # One query is one thread's work (FAISS parallelises over queries), but entering an
            # OpenMP region with two threads waits for both at the join: on a busy 2-core machine
            # a descheduled helper made a 10k flat search take 24 ms instead of 1.5 ms
            # (bench/). The thread count is per calling thread in OpenMP, so set and restore.
            threads = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)
            try:
                scores, ids = self.index.search(
                    np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32),
                    min(k, self.size),
                )
            finally:
                faiss.omp_set_num_threads(threads)
        keep = ids[0] >= 0
        return ids[0][keep], scores[0][keep]

    def ids(self) -> np.ndarray:
        with self._lock:
            if isinstance(self.index, faiss.IndexIDMap2):
                return faiss.vector_to_array(self.index.id_map).astype(np.int64)
            lists = self.index.invlists
            parts = [
                faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
                for i in range(self.index.nlist)
                if lists.list_size(i)
            ]
            return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    def needs_rebuild(self, ivf_threshold: int = IVF_THRESHOLD) -> bool:
        """Flat past the threshold, or an IVF index that has outgrown its training fourfold."""
        if self.kind == "flat":
            return self.size >= ivf_threshold
        # nlist was chosen as ~4*sqrt(n) at build time, so n_built ~ (nlist/4)^2
        return self.size > 4 * (self.index.nlist / 4) ** 2

    def write(self, directory: Path) -> Path:
        """Write atomically (temp file, fsync, rename) and remove older index files."""
        final = directory / index_file_name(self.epoch, self.generation)
        temp = directory / f".{final.name}.tmp-{os.getpid()}"
        with self._lock:
            faiss.write_index(self.index, str(temp))
        with open(temp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, final)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        for other in directory.glob("vectors-*.faiss"):
            if other.name != final.name:
                other.unlink(missing_ok=True)
        return final

    @classmethod
    def read(cls, path: Path) -> VectorIndex:
        parsed = parse_index_file_name(path.name)
        if parsed is None:
            raise ValueError(f"{path.name} is not an index file name")
        index = faiss.read_index(str(path))
        if isinstance(index, faiss.IndexIVF):
            index.nprobe = max(8, round(index.nlist * IVF_NPROBE_FRACTION))
        return cls(index, *parsed)


def latest_index_file(directory: Path, epoch: int, max_generation: int) -> Path | None:
    """The newest index file of this epoch that is not ahead of the database."""
    best: tuple[int, Path] | None = None
    for path in directory.glob("vectors-*.faiss"):
        parsed = parse_index_file_name(path.name)
        fits = parsed is not None and parsed[0] == epoch and parsed[1] <= max_generation
        if fits and (best is None or parsed[1] > best[0]):  # type: ignore[index]
            best = (parsed[1], path)  # type: ignore[index]
    return best[1] if best else None
