"""A knowledge base in Milvus: reads and searches.

Milvus has no multi-row transactions, so visibility is decided by the catalog: every write
stores a document's chunks and pages under a fresh version id first, then upserts the
document's catalog row naming that version (one row: the commit), then deletes the old
version's rows. A chunk is visible only while its document's row names its version, so a reader
sees the old or the new version of a document, never both or a part, whatever crashed where;
rows of a version nobody names are left-overs that `kb check --repair` removes.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from ingest._chunk import Chunk
from ingest._embed import EmbeddingSpec
from ingest.load import Page, PageLayout
from ingest.settings import Settings
from ingest.store.base import (
    ChunkRecord,
    DocumentRecord,
    KnowledgeBase,
    PreparedChunk,
    StoreError,
    now,
    parse_layout,
    validate_kb_name,
)
from ingest.store.milvus.lease import Lease
from ingest.store.milvus.schema import (
    CATALOG_SUFFIX,
    PAGE_PARTS,
    PAGE_ROWS,
    PREFIX,
    catalog_name,
    catalog_schema,
    check_index_type,
    connect,
    in_list,
    literal,
    query_all,
    row_key,
    slices,
    unreachable,
)
from ingest.store.milvus.search import MilvusSearch

SCHEMA_VERSION = 1
# how long a row being upserted may be missing from Strong queries: measured on the Milvus core,
# one upsert every 0.2 s, 55 gaps of 12 ms median and 36 ms at most
UPSERT_GAP_S = 0.1
UPSERT_GAP_CHECKS = 2  # a loaded machine stretches the gap
ACTIVE_TTL_S = 2.0  # how long a reader trusts its copy of the active-collection row
MAX_TOPK = 16_384  # Milvus's limit on a search's k
EXCLUDED_QUERY = 16_384  # Milvus's limit on a query's rows: more exclusions are paged through

CHUNK_FIELDS = [
    "id",
    "doc_id",
    "version",
    "chunk_key",
    "ordinal",
    "page",
    "page_seq",
    "start",
    "end",
    "text",
    "headings",
    "kind",
    "title",
    "source",
    "doc_type",
]
DOC_FIELDS = tuple(DocumentRecord.__dataclass_fields__)


def _record(row: dict[str, Any]) -> ChunkRecord:
    return ChunkRecord(
        id=int(row["id"]),
        chunk_key=row["chunk_key"],
        doc_id=row["doc_id"],
        ordinal=int(row["ordinal"]),
        page=None if row["page"] < 0 else int(row["page"]),
        page_seq=int(row["page_seq"]),
        start=int(row["start"]),
        end=int(row["end"]),
        text=row["text"],
        headings=tuple(json.loads(row["headings"])),
        kind=row["kind"],
        title=row["title"],
        source=row["source"],
        doc_type=row["doc_type"],
    )


def catalog_row(kind: str, key: str, body: str, **fields: Any) -> dict[str, Any]:
    row = {
        "key": key,
        "kind": kind,
        "doc_id": "",
        "version": "",
        "origin": "",
        "sha256": "",
        "seq": 0,
        "number": -1,
        "body": body,
        "_v": [0.0, 0.0],
    }
    row.update(fields)
    return row


class MilvusKB(MilvusSearch, KnowledgeBase):
    """One knowledge base in a Milvus database. Thread-safe; share one instance per process;
    any number of processes on any number of machines may open it at once."""

    store = "milvus"

    def __init__(self, settings: Settings, name: str, client: Any) -> None:
        self.settings = settings
        self.name = name
        self.client = client
        self.catalog = catalog_name(name)
        self.read_only = False
        self._lock = threading.RLock()
        self._active: dict[str, Any] | None = None
        self._active_at = 0.0
        self._loaded: set[str] = set()

    # ----- opening -------------------------------------------------------------------------

    @classmethod
    def open(cls, settings: Settings, name: str | None = None, create: bool = False) -> MilvusKB:
        name = validate_kb_name(settings.default_kb if name is None else name)
        client = connect(settings)
        catalog = catalog_name(name)
        try:
            exists = client.has_collection(catalog)
            if not exists:
                if not create:
                    raise StoreError(
                        f"knowledge base {name!r} does not exist yet in Milvus at "
                        f"{settings.milvus_uri}: create it with `zhiku ingest PATH --kb {name}`",
                        f"知识库 {name!r} 还不存在：请先在“知识库”页面上传文件，"
                        f"或运行 `zhiku ingest PATH --kb {name}`",
                    )
                check_index_type(client, settings)
                _create_catalog(client, catalog, name)
            kb = cls(settings, name, client)
            kb._ensure_loaded(catalog)
            info = kb._meta("kb")
            if info is None:  # created by a process that died before writing its first row
                kb._write_meta("kb", _kb_info(name))
                info = kb._meta("kb")
            if info is None or info.get("schema_version") != SCHEMA_VERSION:
                version = info.get("schema_version") if info else None
                raise StoreError(
                    f"Milvus collection {catalog} has zhiku schema version {version}, this "
                    f"zhiku reads {SCHEMA_VERSION}: ingest the files into a new knowledge base"
                )
        except StoreError:
            client.close()
            raise
        except Exception as exc:
            client.close()
            raise unreachable(settings, exc) from exc
        return kb

    def close(self) -> None:
        self.client.close()

    def identity(self) -> str:
        info = self._meta("kb")
        if info is None:
            raise StoreError(f"knowledge base {self.name!r} was deleted")
        return str(info["created"])

    def describe(self) -> str:
        return f"milvus ({self.settings.milvus_uri}, db {self.settings.milvus_db})"

    def _ensure_loaded(self, collection: str) -> None:
        if collection in self._loaded:
            return
        state = self.client.get_load_state(collection).get("state")
        if str(state).split(".")[-1].rstrip(">") != "Loaded" and "Loaded" not in str(state):
            self.client.load_collection(collection)
        self._loaded.add(collection)

    # ----- the catalog ---------------------------------------------------------------------

    def _catalog_query(
        self, filter: str, fields: list[str], limit: int | None = None
    ) -> list[dict[str, Any]]:
        extra = {} if limit is None else {"limit": limit}
        return self.client.query(
            self.catalog, filter=filter, output_fields=fields, consistency_level="Strong", **extra
        )

    def _meta(self, key: str) -> dict[str, Any] | None:
        rows = self._catalog_query(f"key == {literal('meta:' + key)}", ["body"])
        return json.loads(rows[0]["body"]) if rows else None

    def _write_meta(self, key: str, value: dict[str, Any]) -> None:
        self.client.upsert(
            self.catalog,
            [catalog_row("meta", f"meta:{key}", json.dumps(value, ensure_ascii=False))],
        )

    def active(self, fresh: bool = False) -> dict[str, Any]:
        """The chunk collection in use, its epoch and the model that filled it."""
        with self._lock:
            if fresh or self._active is None or time.monotonic() - self._active_at > ACTIVE_TTL_S:
                found = self._meta("active")
                if found is None and self._active is not None and self._active["chunks"]:
                    # a reindex's commit upserts this row, and a query made between the
                    # upsert's delete and its insert finds none (see `lease.py`); a knowledge
                    # base never loses its chunk collection but by being dropped
                    found = self._active
                self._active = found or {"chunks": None, "epoch": 0, "embedding": None}
                self._active_at = time.monotonic()
            return self._active

    def _chunks(self) -> str | None:
        collection = self.active()["chunks"]
        if collection is not None:
            self._ensure_loaded(collection)
        return collection

    def embedding_spec(self) -> EmbeddingSpec | None:
        raw = self.active()["embedding"]
        return EmbeddingSpec(**raw) if raw else None

    # ----- documents -----------------------------------------------------------------------

    def _doc_rows(self, filter: str) -> list[dict[str, Any]]:
        return self._catalog_query(f'kind == "doc" and ({filter})', ["version", "body"])

    @staticmethod
    def _doc_record(row: dict[str, Any]) -> DocumentRecord:
        body = json.loads(row["body"])
        return DocumentRecord(**{k: body[k] for k in DOC_FIELDS})

    def documents(self) -> list[DocumentRecord]:
        rows = query_all(self.client, self.catalog, 'kind == "doc"', ["body"])
        docs = [self._doc_record(r) for r in rows]
        return sorted(docs, key=lambda d: (d.ingested_at, d.title))

    def document(self, doc_id: str) -> DocumentRecord | None:
        rows = self._doc_rows(f"doc_id == {literal(doc_id)}")
        return self._doc_record(rows[0]) if rows else None

    def documents_by_id(self, doc_ids: Sequence[str]) -> dict[str, DocumentRecord]:
        out: dict[str, DocumentRecord] = {}
        for part in slices(list(dict.fromkeys(doc_ids))):
            for row in self._doc_rows(in_list("doc_id", part)):
                record = self._doc_record(row)
                out[record.doc_id] = record
        return out

    def documents_with_sha256(self, sha256: str) -> list[DocumentRecord]:
        return [self._doc_record(r) for r in self._doc_rows(f"sha256 == {literal(sha256)}")]

    def committed_versions(self, doc_ids: Iterable[str]) -> dict[str, str]:
        """doc id → the version its catalog row names (absent: no such document)."""
        wanted = list(dict.fromkeys(doc_ids))
        out: dict[str, str] = {}
        for part in slices(wanted):
            for row in self._catalog_query(
                f'kind == "doc" and {in_list("doc_id", part)}', ["doc_id", "version"]
            ):
                out[row["doc_id"]] = row["version"]
        return out

    def source_sha256(self, origin: str) -> str | None:
        rows = self._catalog_query(f"key == {literal(row_key('source', origin))}", ["sha256"])
        return rows[0]["sha256"] if rows else None

    def source_records(self) -> list[tuple[str, str, int]]:
        rows = query_all(
            self.client, self.catalog, 'kind == "source"', ["origin", "sha256", "body"]
        )
        return sorted((r["origin"], r["sha256"], json.loads(r["body"])["size"]) for r in rows)

    def origins(self) -> list[str]:
        return [origin for origin, _, _ in self.source_records()]

    def doc_ids_of_origin(self, origin: str) -> list[str]:
        rows = self._catalog_query(f'kind == "doc" and origin == {literal(origin)}', ["doc_id"])
        return [r["doc_id"] for r in rows]

    def counts(self) -> dict[str, int]:
        docs = self.documents()
        return {"documents": len(docs), "chunks": sum(d.chunks for d in docs)}

    # ----- chunks --------------------------------------------------------------------------

    def _visible(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self._visible_or_changed(rows)[0]

    def _visible_or_changed(self, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
        """The rows of committed versions, and whether a document of `rows` was committed anew
        after they were read (none of its rows has the version its catalog row names now)."""
        versions = self.committed_versions(r["doc_id"] for r in rows)
        unseen = {r["doc_id"] for r in rows} - set(versions)
        for _ in range(UPSERT_GAP_CHECKS):
            if not unseen:
                break
            # a document being updated is briefly missing from a query made between its
            # row's upsert's delete and insert (see `lease.py`): ask again for those
            time.sleep(UPSERT_GAP_S)
            versions.update(self.committed_versions(unseen))
            unseen -= set(versions)
        visible = [r for r in rows if versions.get(r["doc_id"]) == r["version"]]
        changed = {r["doc_id"] for r in rows if r["doc_id"] in versions} - {
            r["doc_id"] for r in visible
        }
        return visible, bool(changed)

    def _on_chunks(self, call: Any) -> Any:
        """`call(collection)` on the active chunk collection; once more on a fresh copy of the
        active row if it fails: another process's reindex may have dropped the old one."""
        from pymilvus.exceptions import MilvusException

        try:
            return call(self._chunks())
        except MilvusException:
            previous = self.active()["chunks"]
            if self.active(fresh=True)["chunks"] == previous:
                raise
            return call(self._chunks())

    def _query_chunks(self, filter: str, fields: list[str]) -> list[dict[str, Any]]:
        def run(collection: str | None) -> list[dict[str, Any]]:
            if collection is None:
                return []
            return self.client.query(
                collection,
                filter=filter,
                output_fields=fields,
                consistency_level=self.settings.milvus_consistency,
            )

        return self._on_chunks(run)

    def chunks(self, ids: Iterable[int]) -> dict[int, ChunkRecord]:
        wanted = list(dict.fromkeys(int(i) for i in ids))
        rows: list[dict[str, Any]] = []
        for part in slices(wanted):
            rows += self._query_chunks(in_list("id", part), CHUNK_FIELDS)
        return {int(r["id"]): _record(r) for r in self._visible(rows)}

    def document_chunks(self, doc_id: str) -> list[ChunkRecord]:
        version = self.committed_versions([doc_id]).get(doc_id)
        if version is None:
            return []
        rows = self._query_chunks(
            f"doc_id == {literal(doc_id)} and version == {literal(version)}", CHUNK_FIELDS
        )
        return sorted((_record(r) for r in rows), key=lambda c: c.ordinal)

    def prepared_chunks(self, doc_id: str) -> list[PreparedChunk]:
        version = self.committed_versions([doc_id]).get(doc_id)
        if version is None:
            return []
        rows = self._query_chunks(
            f"doc_id == {literal(doc_id)} and version == {literal(version)}",
            [*CHUNK_FIELDS, "embed_hash", "dense"],
        )
        rows.sort(key=lambda r: r["ordinal"])
        return [
            PreparedChunk(
                Chunk(
                    r["chunk_key"],
                    r["doc_id"],
                    int(r["ordinal"]),
                    None if r["page"] < 0 else int(r["page"]),
                    int(r["page_seq"]),
                    int(r["start"]),
                    int(r["end"]),
                    r["text"],
                    tuple(json.loads(r["headings"])),
                    r["kind"],
                ),
                r["embed_hash"],
                np.asarray(r["dense"], dtype=np.float32),
            )
            for r in rows
        ]

    def pages(self, doc_id: str, version: str | None = None) -> list[Page]:
        """A document's pages, in order, each with its OCR line boxes if it has them."""
        if version is None:
            version = self.committed_versions([doc_id]).get(doc_id)
            if version is None:
                return []
        rows = query_all(
            self.client,
            self.catalog,
            f"{PAGE_ROWS} and doc_id == {literal(doc_id)} and version == {literal(version)}",
            ["kind", "seq", "number", "body"],
        )
        parts: dict[tuple[str, int], list[tuple[int, str]]] = {}
        numbers: dict[int, int | None] = {}
        for row in rows:
            seq, part = divmod(int(row["seq"]), PAGE_PARTS)
            parts.setdefault((row["kind"], seq), []).append((part, row["body"]))
            numbers[seq] = None if row["number"] < 0 else int(row["number"])

        def joined(kind: str, seq: int) -> str | None:
            found = parts.get((kind, seq))
            return "".join(body for _, body in sorted(found)) if found else None

        return [
            Page(numbers[seq], joined("page", seq) or "", parse_layout(joined("layout", seq)))
            for seq in sorted(numbers)
        ]

    def _page_part_rows(self, kind: str, doc_id: str, page_seq: int) -> list[dict[str, Any]]:
        version = self.committed_versions([doc_id]).get(doc_id)
        if version is None:
            return []
        return self._catalog_query(
            f"kind == {literal(kind)} and doc_id == {literal(doc_id)} "
            f"and version == {literal(version)} "
            f"and seq >= {page_seq * PAGE_PARTS} and seq < {(page_seq + 1) * PAGE_PARTS}",
            ["seq", "body"],
        )

    def page_text(self, doc_id: str, page_seq: int) -> str | None:
        rows = self._page_part_rows("page", doc_id, page_seq)
        if not rows:
            return None
        return "".join(r["body"] for r in sorted(rows, key=lambda r: r["seq"]))

    def page_layout(self, doc_id: str, page_seq: int) -> PageLayout | None:
        """Where the lines of an OCR page sit on its image (None: the page had a text layer)."""
        rows = self._page_part_rows("layout", doc_id, page_seq)
        return parse_layout("".join(r["body"] for r in sorted(rows, key=lambda r: r["seq"])))

    # ----- chunks left out of retrieval (the inspector's switch) ----------------------------
    # One catalog row per chunk_key: outside any document version, so re-ingesting or
    # reindexing the unchanged file keeps it, and in Milvus, so every server sees it at once.

    def excluded_keys(self) -> set[str]:
        rows = self._catalog_query('kind == "excluded"', ["origin"], limit=EXCLUDED_QUERY)
        if len(rows) >= EXCLUDED_QUERY:  # more than one query returns: page through them
            rows = list(query_all(self.client, self.catalog, 'kind == "excluded"', ["origin"]))
        return {r["origin"] for r in rows}

    def excluded_ids(self) -> set[int]:
        keys = sorted(self.excluded_keys())
        rows: list[dict[str, Any]] = []
        for part in slices(keys):
            rows += self._query_chunks(in_list("chunk_key", part), ["id", "doc_id", "version"])
        return {int(r["id"]) for r in self._visible(rows)}

    def set_excluded(self, chunk_key: str, excluded: bool) -> None:
        """One row inserted (when absent) or deleted: atomic without the write lease, which it
        need not wait for (a writer never touches these rows). Not an upsert: Milvus carries one
        out as a delete then an insert, and a second upsert of the row right after the first
        left no row at all for a reader (seen in a clean-clone test run); an insert racing
        another client's leaves a duplicate, which readers take as one and a delete removes."""
        key = row_key("excluded", chunk_key)
        try:
            if excluded:
                if self._catalog_query(f"key == {literal(key)}", ["key"]):
                    return  # already left out: keep the row and its date
                body = json.dumps({"since": now()})
                self.client.insert(
                    self.catalog, [catalog_row("excluded", key, body, origin=chunk_key)]
                )
            else:
                self.client.delete(self.catalog, ids=[key])
        except StoreError:
            raise
        except Exception as exc:
            raise unreachable(self.settings, exc) from exc

    def vectors_by_embed_hash(self, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        wanted = list(dict.fromkeys(hashes))
        out: dict[str, np.ndarray] = {}
        for part in slices(wanted):
            for row in self._query_chunks(in_list("embed_hash", part), ["embed_hash", "dense"]):
                out[row["embed_hash"]] = np.asarray(row["dense"], dtype=np.float32)
        return out

    def vectors_of(self, ids: Iterable[int]) -> dict[int, np.ndarray]:
        wanted = list(dict.fromkeys(int(i) for i in ids))
        out: dict[int, np.ndarray] = {}
        for part in slices(wanted):
            for row in self._query_chunks(in_list("id", part), ["id", "dense"]):
                out[int(row["id"])] = np.asarray(row["dense"], dtype=np.float32)
        return out

    # ----- writing -------------------------------------------------------------------------

    @contextmanager
    def writer(self, spec: EmbeddingSpec | None, save_vectors: bool = True) -> Iterator[Any]:
        """Exclusive write access across processes and machines (a lease in the catalog, see
        `lease.py`). Hold it briefly: for commits, not while embedding."""
        from pymilvus.exceptions import MilvusException

        from ingest.store.milvus.write import MilvusWriter

        with self.lease() as lease:
            from ingest.store.milvus.write import recover

            recover(self)
            self.active(fresh=True)
            if spec is not None:
                self.ensure_compatible(spec)
            try:
                yield MilvusWriter(self, spec, lease)
            except MilvusException as exc:
                raise StoreError(
                    f"Milvus refused a write to {self.name!r}: {exc}. Nothing half-written is "
                    f"visible; run the same command again, then `zhiku kb check --kb {self.name}`",
                    f"Milvus 拒绝写入知识库 {self.name!r}：{exc}。不会有写了一半的内容可见；"
                    "请重新运行同一命令",
                ) from exc

    @contextmanager
    def lease(self) -> Iterator[Lease]:
        lease = Lease(
            self.client,
            self.catalog,
            self.name,
            self.settings.milvus_lease_s,
            self.settings.lock_timeout_s,
        )
        lease.acquire()
        try:
            yield lease
        finally:
            lease.release()

    def check(self) -> list[str]:
        from ingest.store.milvus.repair import check
        from ingest.store.milvus.write import recover

        with self.lease():
            recover(self)  # what a dead writer left is finished or undone first, as SQLite does
            return check(self)

    def repair(self) -> list[str]:
        from ingest.store.milvus.repair import repair
        from ingest.store.milvus.write import recover

        with self.lease():
            return recover(self) + repair(self)


def _kb_info(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "created": uuid.uuid4().hex,
        "created_at": now(),
        "schema_version": SCHEMA_VERSION,
    }


def _create_catalog(client: Any, catalog: str, name: str) -> None:
    schema, index = catalog_schema(client)
    try:
        client.create_collection(
            catalog, schema=schema, index_params=index, consistency_level="Strong"
        )
    except Exception:
        if not client.has_collection(catalog):  # not a twin process creating it at once
            raise
        return
    client.upsert(
        catalog,
        [catalog_row("meta", "meta:kb", json.dumps(_kb_info(name), ensure_ascii=False))],
    )


def list_kbs(settings: Settings) -> list[str]:
    client = connect(settings)
    try:
        names = []
        for collection in client.list_collections():
            if not (collection.startswith(PREFIX) and collection.endswith(CATALOG_SUFFIX)):
                continue
            kb = MilvusKB(settings, "?", client)
            kb.catalog = collection
            kb._ensure_loaded(collection)
            info = kb._meta("kb")
            if info and catalog_name(info["name"]) == collection:
                names.append(info["name"])
        return sorted(names)
    except StoreError:
        raise
    except Exception as exc:
        raise unreachable(settings, exc) from exc
    finally:
        client.close()


def delete_kb(settings: Settings, name: str) -> None:
    """Drop a knowledge base's collections; waits for its writer first."""
    try:
        kb = MilvusKB.open(settings, name)
    except StoreError as exc:
        if "does not exist" in str(exc):
            raise StoreError(
                f"knowledge base {name!r} does not exist", f"知识库 {name!r} 不存在"
            ) from exc
        raise
    with kb:
        from ingest.store.milvus.schema import kb_key

        with kb.lease():
            prefix = kb_key(kb.name) + "_"
            for collection in kb.client.list_collections():
                if collection.startswith(prefix) and collection != kb.catalog:
                    kb.client.drop_collection(collection)
            kb.client.drop_collection(kb.catalog)  # the lease goes with it
