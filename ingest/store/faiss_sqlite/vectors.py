"""The FAISS file as a cache of the stored vectors: loaded once, caught up with every commit
since (from the generation journal), rebuilt when missing or damaged."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ingest._vectors import VectorIndex, index_file_name, latest_index_file
from ingest.store.faiss_sqlite.schema import _write_error

log = logging.getLogger(__name__)


class VectorSync:
    """The FAISS side of `FaissSqliteKB` (a mixin: it uses its connection, lock and folder)."""

    # ----- the vector index ----------------------------------------------------------------

    def vector_index(self) -> VectorIndex:
        """The FAISS index, loaded once and caught up with every commit since (by anyone)."""
        with self._lock:
            self.conn.execute("BEGIN")  # one snapshot for the generation and the rows read
            try:
                self._sync_vectors()
            finally:
                self.conn.execute("COMMIT")
            assert self._vectors is not None
            return self._vectors

    def dense_search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        ids, scores = self.vector_index().search(query, k)
        return [(int(i), float(s)) for i, s in zip(ids, scores, strict=True)]

    def _dimension(self) -> int:
        spec = self.embedding_spec()
        return spec.dimension if spec else 0

    def _sync_vectors(self) -> None:
        generation = int(self._meta("generation") or 0)
        epoch = int(self._meta("epoch") or 1)
        current = self._vectors
        if current is not None and current.epoch == epoch and current.generation == generation:
            return
        on_disk = latest_index_file(self.path, epoch, generation)
        if on_disk is not None and (
            current is None
            or current.epoch != epoch
            or current.generation < _generation_of(on_disk)
        ):
            try:
                current = VectorIndex.read(on_disk)
                self._vectors_problem = None
            except Exception as exc:  # faiss raises RuntimeError with C++ text for bad files
                self._vectors_problem = (
                    f"{on_disk} is unreadable ({str(exc).splitlines()[0][:120]}); it was rebuilt "
                    f"in memory from the database: run `zhiku kb check --repair --kb {self.name}`"
                )
                log.warning(self._vectors_problem)
                current = None
        if (
            current is None
            or current.epoch != epoch
            or current.dimension != (self._dimension() or 1)
        ):
            current = self._rebuild_vectors(epoch, generation)
        elif current.generation < generation:
            self._catch_up(current, generation)
        self._vectors = current

    def _rebuild_vectors(self, epoch: int, generation: int) -> VectorIndex:
        dimension = self._dimension()
        count = self.conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        ids = np.empty(count, dtype=np.int64)
        vectors = np.empty((count, max(dimension, 1)), dtype=np.float32)
        for row, (chunk_id, blob) in enumerate(self.conn.execute("SELECT id, vector FROM chunks")):
            ids[row] = chunk_id
            vectors[row] = np.frombuffer(blob, dtype="<f4")
        if dimension == 0:  # nothing ingested yet: no model recorded
            empty = VectorIndex.empty(1, epoch)
            empty.generation = generation
            return empty
        return VectorIndex.build(dimension, epoch, generation, ids, vectors)

    def _catch_up(self, index: VectorIndex, generation: int) -> None:
        removed = np.array(
            [
                r[0]
                for r in self.conn.execute(
                    "SELECT id FROM removed WHERE gen > ?", (index.generation,)
                )
            ],
            dtype=np.int64,
        )
        index.remove(removed)
        rows = self.conn.execute(
            "SELECT id, vector FROM chunks WHERE gen > ?", (index.generation,)
        ).fetchall()
        if rows:
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            index.remove(ids)  # a chunk is never in the index twice, whatever was caught up before
            index.add(ids, np.stack([np.frombuffer(r[1], dtype="<f4") for r in rows]))
        index.generation = generation

    @property
    def vectors_problem(self) -> str | None:
        return self._vectors_problem

    def save_vectors(self) -> None:
        """Write the caught-up FAISS file and forget tombstones it already reflects."""
        with self._lock:
            index = self.vector_index()
            if index.needs_rebuild():
                self.conn.execute("BEGIN")
                try:
                    index = self._rebuild_vectors(index.epoch, index.generation)
                finally:
                    self.conn.execute("COMMIT")
                self._vectors = index
            try:
                index.write(self.path)
            except (RuntimeError, OSError) as exc:  # faiss reports I/O failures as RuntimeError
                for partial in self.path.glob(".vectors-*.tmp-*"):
                    partial.unlink(missing_ok=True)
                raise _write_error(
                    self.path / index_file_name(index.epoch, index.generation), exc, self.name
                ) from exc
            self.conn.execute("DELETE FROM removed WHERE gen <= ?", (index.generation,))
        for stale in self.path.glob(".vectors-*.tmp-*"):
            stale.unlink(missing_ok=True)


def _generation_of(path: Path) -> int:
    from ingest._vectors import parse_index_file_name

    parsed = parse_index_file_name(path.name)
    return parsed[1] if parsed else -1
