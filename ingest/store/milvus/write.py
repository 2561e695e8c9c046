"""Writes to a Milvus knowledge base: new version first, the catalog row that names it second
(the commit), the old version's rows last (see `kb.py` for why a reader never sees half)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ingest._embed import EmbeddingSpec
from ingest._tokenize import fts_tokens, index_text
from ingest.load import LoadedDoc
from ingest.store.base import (
    PreparedChunk,
    StoreError,
    Writer,
    keyword_text,
    layout_json,
    now,
)
from ingest.store.milvus.kb import catalog_row
from ingest.store.milvus.schema import (
    PAGE_PARTS,
    PAGE_ROWS,
    VARCHAR_MAX,
    chunk_id,
    chunks_name,
    chunks_schema,
    in_list,
    literal,
    row_key,
    split_utf8,
)

if TYPE_CHECKING:
    from ingest.store.milvus.kb import MilvusKB
    from ingest.store.milvus.lease import Lease

BATCH_ROWS = 1000  # rows per insert call: well under gRPC's message size with 1024-d vectors
STRUCTURES = {"md": "markdown", "docx": "markdown", "html": "markdown"}


def _batches(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), BATCH_ROWS):
        yield rows[start : start + BATCH_ROWS]


class MilvusWriter(Writer):
    def __init__(self, kb: MilvusKB, spec: EmbeddingSpec | None, lease: Lease) -> None:
        self.kb = kb
        self.spec = spec
        self.lease = lease
        self.changed = False
        self.client = kb.client
        self.tokens = kb.keyword_tokens()

    # ----- rows ----------------------------------------------------------------------------

    def _chunk_rows(
        self, collection: str, doc: LoadedDoc, prepared: Sequence[PreparedChunk], version: str
    ) -> list[dict[str, Any]]:
        assert self.spec is not None
        rows = []
        for item in prepared:
            c = item.chunk
            if item.vector.shape != (self.spec.dimension,):
                raise ValueError(
                    f"vector of shape {item.vector.shape} for a {self.spec.dimension}-d index"
                )
            search_text = keyword_text(doc.title, c.headings, c.text)
            if self.tokens == "zhiku":  # as FTS5's unicode61 splits zhiku's jieba tokens
                search_text = " ".join(fts_tokens(index_text(search_text)))
            headings = json.dumps(list(c.headings), ensure_ascii=False)
            for field, value in (
                ("text", c.text),
                ("keyword text", search_text),
                ("headings", headings),
            ):
                if len(value.encode("utf-8")) > VARCHAR_MAX:
                    raise ValueError(f"{doc.source}: a chunk's {field} exceeds {VARCHAR_MAX} bytes")
            rows.append(
                {
                    "id": chunk_id(collection, doc.doc_id, version, c.ordinal),
                    "doc_id": doc.doc_id,
                    "version": version,
                    "chunk_key": c.chunk_id,
                    "ordinal": c.ordinal,
                    "page": -1 if c.page is None else c.page,
                    "page_seq": c.page_index,
                    "start": c.start,
                    "end": c.end,
                    "text": c.text,
                    "search_text": search_text,
                    "headings": headings,
                    "kind": c.kind,
                    "title": doc.title,
                    "source": doc.source,
                    "doc_type": doc.doc_type,
                    "embed_hash": item.embed_hash,
                    "embedding_model": self.spec.name,
                    "dense": item.vector.astype("float32").tolist(),
                }
            )
        return rows

    @staticmethod
    def _page_rows(doc: LoadedDoc, version: str) -> list[dict[str, Any]]:
        """A page's text, and an OCR page's line boxes, in rows of at most PAGE_PART_BYTES."""
        rows = []
        for seq, page in enumerate(doc.pages):
            parts = [("page", split_utf8(page.text))]
            boxes = layout_json(page.layout)
            if boxes is not None:
                parts.append(("layout", split_utf8(boxes)))
            for kind, bodies in parts:
                for part, body in enumerate(bodies):
                    rows.append(
                        catalog_row(
                            kind,
                            row_key(kind, doc.doc_id, version, seq, part),
                            body,
                            doc_id=doc.doc_id,
                            version=version,
                            seq=seq * PAGE_PARTS + part,
                            number=-1 if page.number is None else page.number,
                        )
                    )
        return rows

    @staticmethod
    def _doc_row(
        doc: LoadedDoc, origin: str, chunks: int, version: str, ingested_at: str, updated_at: str
    ) -> dict[str, Any]:
        body = {
            "doc_id": doc.doc_id,
            "title": doc.title,
            "source": doc.source,
            "origin": origin,
            "doc_type": doc.doc_type,
            "sha256": doc.sha256,
            "size": doc.size,
            "pages": len(doc.pages),
            "chunks": chunks,
            "ingested_at": ingested_at,
            "updated_at": updated_at,
        }
        return catalog_row(
            "doc",
            row_key("doc", doc.doc_id),
            json.dumps(body, ensure_ascii=False),
            doc_id=doc.doc_id,
            version=version,
            origin=origin,
            sha256=doc.sha256,
        )

    # ----- the collection and the model ----------------------------------------------------

    def _ensure_chunks(self) -> str:
        """The active chunk collection, created (for this model) on the first write."""
        if self.spec is None:
            raise StoreError("an embedding model is needed to add documents")
        active = self.kb.active(fresh=True)
        if active["chunks"] is not None:
            self.kb.ensure_compatible(self.spec)
            return active["chunks"]
        # Journalled like a reindex: a writer killed between creating the collection and
        # activating it leaves an intent, and recovery drops the collection nobody uses.
        epoch = active["epoch"] + 1
        creation = uuid.uuid4().hex
        write_intent(self.kb, creation, chunks_name(self.kb.name, epoch), [], reindex=True)
        name = self._new_collection(epoch)
        clear_intent(self.kb, creation)
        return name

    def _new_collection(self, epoch: int) -> str:
        assert self.spec is not None
        name = chunks_name(self.kb.name, epoch)
        if self.client.has_collection(name):  # left by a reindex that did not finish
            self.client.drop_collection(name)
        schema, index = chunks_schema(
            self.client,
            self.spec.dimension,
            self.kb.settings.milvus_index_type,
            self.kb.settings.milvus_keyword_tokens,
        )
        self.client.create_collection(
            name,
            schema=schema,
            index_params=index,
            consistency_level=self.kb.settings.milvus_consistency,
        )
        self.tokens = self.kb.settings.milvus_keyword_tokens  # what is written into it next
        if epoch == 1 or self.kb.active()["chunks"] is None:
            self._activate(name, epoch)
        return name

    def _activate(self, name: str, epoch: int) -> None:
        assert self.spec is not None
        self.kb._write_meta(
            "active",
            {
                "chunks": name,
                "epoch": epoch,
                "embedding": self.spec.__dict__,
                "keyword_tokens": self.kb.settings.milvus_keyword_tokens,
            },
        )
        self.kb.active(fresh=True)
        self.tokens = self.kb.keyword_tokens()

    # ----- the interface -------------------------------------------------------------------

    def put_file(
        self,
        origin: str,
        sha256: str,
        size: int,
        documents: Sequence[tuple[LoadedDoc, Sequence[PreparedChunk]]],
        drop_doc_ids: Sequence[str] = (),
    ) -> dict[str, str]:
        self.lease.check()
        collection = self._ensure_chunks()
        version = uuid.uuid4().hex
        stamp = now()
        previous = self.kb.documents_by_id([d.doc_id for d, _ in documents])
        chunk_rows: list[dict[str, Any]] = []
        page_rows: list[dict[str, Any]] = []
        doc_rows: list[dict[str, Any]] = []
        status: dict[str, str] = {}
        for doc, prepared in documents:  # every row built (and checked) before any is written
            if not prepared:
                raise ValueError(f"{doc.source}: a document needs at least one chunk")
            chunk_rows += self._chunk_rows(collection, doc, prepared, version)
            page_rows += self._page_rows(doc, version)
            old = previous.get(doc.doc_id)
            doc_rows.append(
                self._doc_row(
                    doc, origin, len(prepared), version, old.ingested_at if old else stamp, stamp
                )
            )
            status[doc.doc_id] = "updated" if old else "added"
        kept = set(status)
        dropped = [d for d in drop_doc_ids if d not in kept]
        write_intent(self.kb, version, collection, dropped)
        for batch in _batches(chunk_rows):
            self.client.insert(collection, batch)
        for batch in _batches(page_rows):
            self.client.insert(self.kb.catalog, batch)
        self.lease.check()
        # the commit: each document's row now names the new version
        for batch in _batches(doc_rows):
            self.client.upsert(self.kb.catalog, batch)
        if dropped:
            self.client.delete(self.kb.catalog, ids=[row_key("doc", d) for d in dropped])
        self.client.upsert(
            self.kb.catalog,
            [
                catalog_row(
                    "source",
                    row_key("source", origin),
                    json.dumps({"size": size, "ingested_at": stamp}),
                    origin=origin,
                    sha256=sha256,
                )
            ],
        )
        self.changed = True
        # what no reader can see any more
        if status:
            self._delete_versions(list(status), keep=version)
        if dropped:
            self._delete_versions(dropped, keep=None)
        clear_intent(self.kb, version)
        return status

    def _delete_versions(self, doc_ids: list[str], keep: str | None) -> None:
        collection = self.kb.active()["chunks"]
        for start in range(0, len(doc_ids), 500):
            part = doc_ids[start : start + 500]
            other = f" and version != {literal(keep)}" if keep is not None else ""
            if collection is not None:
                self.client.delete(collection, filter=in_list("doc_id", part) + other)
            self.client.delete(
                self.kb.catalog, filter=f"{PAGE_ROWS} and {in_list('doc_id', part)}{other}"
            )

    def remove_documents(self, doc_ids: Sequence[str]) -> int:
        self.lease.check()
        existing = list(self.kb.committed_versions(doc_ids))
        if existing:
            version = uuid.uuid4().hex  # nothing is written under it: the intent lists drops
            write_intent(self.kb, version, self.kb.active()["chunks"], existing)
            self.client.delete(self.kb.catalog, ids=[row_key("doc", d) for d in existing])
            self.changed = True
            self._delete_versions(existing, keep=None)
            clear_intent(self.kb, version)
        self._forget_empty_sources()
        return len(existing)

    def _forget_empty_sources(self) -> None:
        used = {d.origin for d in self.kb.documents()}
        empty = [o for o, _, _ in self.kb.source_records() if o not in used]
        if empty:
            self.client.delete(self.kb.catalog, ids=[row_key("source", o) for o in empty])

    def remove_origins(self, origins: Sequence[str]) -> int:
        doc_ids = [d for origin in origins for d in self.kb.doc_ids_of_origin(origin)]
        removed = self.remove_documents(doc_ids)
        if origins:
            self.client.delete(self.kb.catalog, ids=[row_key("source", o) for o in origins])
        return removed

    def replace_all(
        self, documents: Iterable[tuple[LoadedDoc, Sequence[PreparedChunk], str, str]]
    ) -> int:
        """A reindex into a new chunk collection, switched to by one catalog upsert; until then
        readers use the old one. Documents keep their version (their pages do not change)."""
        if self.spec is None:
            raise StoreError("an embedding model is needed to reindex")
        self.lease.check()
        old = self.kb.active(fresh=True)
        versions = self.kb.committed_versions(d.doc_id for d in self.kb.documents())
        epoch = old["epoch"] + 1
        reindex = uuid.uuid4().hex
        write_intent(self.kb, reindex, chunks_name(self.kb.name, epoch), [], reindex=True)
        collection = self._new_collection(epoch)
        stamp = now()
        doc_rows = []
        for doc, prepared, origin, ingested_at in documents:
            version = versions.get(doc.doc_id) or uuid.uuid4().hex
            for batch in _batches(self._chunk_rows(collection, doc, prepared, version)):
                self.client.insert(collection, batch)
            if doc.doc_id not in versions:
                for batch in _batches(self._page_rows(doc, version)):
                    self.client.insert(self.kb.catalog, batch)
            doc_rows.append(self._doc_row(doc, origin, len(prepared), version, ingested_at, stamp))
        self.lease.check()
        self._activate(collection, epoch)  # the commit
        for batch in _batches(doc_rows):
            self.client.upsert(self.kb.catalog, batch)
        gone = [d for d in versions if d not in {r["doc_id"] for r in doc_rows}]
        if gone:
            self.client.delete(self.kb.catalog, ids=[row_key("doc", d) for d in gone])
            self._delete_versions(gone, keep=None)
        if old["chunks"] is not None and old["chunks"] != collection:
            self.client.drop_collection(old["chunks"])
        clear_intent(self.kb, reindex)
        self.changed = True
        return len(doc_rows)

    def stored_documents(self) -> Iterator[tuple[LoadedDoc, str, str]]:
        out = []
        for record in self.kb.documents():
            pages = tuple(self.kb.pages(record.doc_id))
            doc = LoadedDoc(
                record.doc_id,
                record.title,
                record.source,
                record.doc_type,
                record.sha256,
                record.size,
                pages,
                STRUCTURES.get(record.doc_type, "plain"),  # type: ignore[arg-type]
            )
            out.append((doc, record.origin, record.ingested_at))
        yield from out


# ----- intents: what a write is about to do, so that the next writer can finish or undo it ----

INTENT_BYTES = 50_000


def write_intent(
    kb: MilvusKB,
    version: str,
    collection: str | None,
    dropped: Sequence[str],
    reindex: bool = False,
) -> None:
    """Recorded before a write's first row: the version it writes, the collection it writes
    into and the documents it removes. Cleared when the write is complete."""
    parts: list[list[str]] = [[]]
    size = 0
    for doc_id in dropped:
        if size + len(doc_id.encode()) + 4 > INTENT_BYTES and parts[-1]:
            parts.append([])
            size = 0
        parts[-1].append(doc_id)
        size += len(doc_id.encode()) + 4
    rows = [
        catalog_row(
            "intent",
            row_key("intent", version, n),
            json.dumps(
                {"collection": collection, "dropped": part, "reindex": reindex},
                ensure_ascii=False,
            ),
            version=version,
            seq=n,
        )
        for n, part in enumerate(parts)
    ]
    kb.client.upsert(kb.catalog, rows)


def clear_intent(kb: MilvusKB, version: str) -> None:
    kb.client.delete(kb.catalog, filter=f'kind == "intent" and version == {literal(version)}')


def recover(kb: MilvusKB) -> list[str]:
    """Finish or undo the writes of writers that died (call it holding the lease): like a
    database rolling back its journal on open. A document whose catalog row names the dead
    write's version keeps it (the commit happened) and loses its older rows; otherwise the dead
    write's rows go. Returns what was done."""
    rows = kb._catalog_query('kind == "intent"', ["version", "body"])
    if not rows:
        return []
    client = kb.client
    active = kb.active(fresh=True)["chunks"]
    done = []
    intents: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        intents.setdefault(row["version"], []).append(json.loads(row["body"]))
    for version, bodies in intents.items():
        collection = bodies[0]["collection"]
        if bodies[0].get("reindex"):
            if collection and collection != active and client.has_collection(collection):
                client.drop_collection(collection)  # it never became active
                done.append("undid an interrupted reindex")
            elif collection == active:
                # Committed, but what follows the switch may be undone: document rows with the
                # old chunk counts, removed documents, the replaced collection. The repair
                # scan sets all of them from what the active collection holds.
                from ingest.store.milvus.repair import repair

                done += repair(kb)
            clear_intent(kb, version)
            continue
        touched: set[str] = set()
        if collection and client.has_collection(collection):
            kb._ensure_loaded(collection)
            from ingest.store.milvus.schema import query_all

            touched |= {
                r["doc_id"]
                for r in query_all(client, collection, f"version == {literal(version)}", ["doc_id"])
            }
        touched |= {
            r["doc_id"]
            for r in kb._catalog_query(f"{PAGE_ROWS} and version == {literal(version)}", ["doc_id"])
        }
        committed = kb.committed_versions(touched)
        for doc_id in touched:
            if committed.get(doc_id) == version:  # committed: the old version goes
                other = f"doc_id == {literal(doc_id)} and version != {literal(version)}"
            else:  # not committed: the new rows go
                other = f"doc_id == {literal(doc_id)} and version == {literal(version)}"
            if collection and client.has_collection(collection):
                client.delete(collection, filter=other)
            client.delete(kb.catalog, filter=f"{PAGE_ROWS} and {other}")
        dropped = [d for body in bodies for d in body["dropped"]]
        gone = [d for d in dropped if d not in kb.committed_versions(dropped)]
        for start in range(0, len(gone), 500):
            part = gone[start : start + 500]
            if active:
                client.delete(active, filter=in_list("doc_id", part))
            client.delete(kb.catalog, filter=f"{PAGE_ROWS} and {in_list('doc_id', part)}")
        clear_intent(kb, version)
        done.append(
            f"finished or undid an interrupted write ({len(touched) + len(gone)} documents)"
        )
    return [line for line in done if line]
