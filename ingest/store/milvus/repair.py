"""`kb check` and `kb check --repair` for a Milvus knowledge base. Both run under the write
lease, so they see no write half-way."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from ingest.store.milvus.schema import PAGE_ROWS, kb_key, query_all, row_key

if TYPE_CHECKING:
    from ingest.store.milvus.kb import MilvusKB


def _scan(kb: MilvusKB) -> dict[str, Any]:
    client = kb.client
    active = kb.active(fresh=True)
    collection = active["chunks"]
    docs = {d.doc_id: d for d in kb.documents()}
    versions = kb.committed_versions(docs)
    found: dict[str, Any] = {
        "active": collection,
        "stray": [],
        "missing_collection": False,
        "visible": Counter(),
        "orphan_chunks": [],
        "wrong_model": 0,
        "orphan_pages": [],
        "docs": docs,
        "dead_leases": [],
    }
    prefix = kb_key(kb.name) + "_chunks_"
    found["stray"] = [
        c for c in client.list_collections() if c.startswith(prefix) and c != collection
    ]
    spec = kb.embedding_spec()
    if collection is not None and not client.has_collection(collection):
        found["missing_collection"] = True
    elif collection is not None:
        kb._ensure_loaded(collection)
        for row in query_all(
            client, collection, "id >= 0", ["id", "doc_id", "version", "embedding_model"]
        ):
            if versions.get(row["doc_id"]) == row["version"]:
                found["visible"][row["doc_id"]] += 1
                if spec is not None and row["embedding_model"] != spec.name:
                    found["wrong_model"] += 1
            else:
                found["orphan_chunks"].append(int(row["id"]))
    for row in query_all(client, kb.catalog, PAGE_ROWS, ["key", "doc_id", "version"]):
        if versions.get(row["doc_id"]) != row["version"]:
            found["orphan_pages"].append(row["key"])
    now = time.time()
    for row in query_all(client, kb.catalog, 'kind == "lease"', ["key", "origin", "body"]):
        if now - json.loads(row["body"])["beat"] > kb.settings.milvus_lease_s:
            found["dead_leases"].append(row["key"])
    return found


def check(kb: MilvusKB) -> list[str]:
    found = _scan(kb)
    problems = []
    if found["missing_collection"]:
        problems.append(f"the chunk collection {found['active']} is missing from Milvus")
    if found["stray"]:
        problems.append(
            f"{len(found['stray'])} chunk collections left by an interrupted reindex: "
            + ", ".join(found["stray"])
        )
    if found["orphan_chunks"]:
        problems.append(
            f"{len(found['orphan_chunks'])} chunks of no committed document version "
            "(left by an interrupted write; invisible to searches)"
        )
    if found["orphan_pages"]:
        problems.append(f"{len(found['orphan_pages'])} pages of no committed document version")
    docs, visible = found["docs"], found["visible"]
    wrong = [d for d in docs.values() if visible[d.doc_id] and visible[d.doc_id] != d.chunks]
    empty = [d for d in docs.values() if not visible[d.doc_id]]
    if wrong:
        problems.append(f"{len(wrong)} documents whose chunk count is wrong")
    if empty:
        problems.append(f"{len(empty)} documents without chunks")
    if found["wrong_model"]:
        problems.append(f"{found['wrong_model']} chunks embedded by another model")
    return problems


def repair(kb: MilvusKB) -> list[str]:
    """Remove what no reader can see, drop stray collections, correct document rows."""
    from ingest.store.milvus.kb import catalog_row

    found = _scan(kb)
    client = kb.client
    done = []
    for stray in found["stray"]:
        client.drop_collection(stray)
        done.append(f"dropped {stray}, left by an interrupted reindex")
    orphans = found["orphan_chunks"]
    for start in range(0, len(orphans), 1000):
        client.delete(found["active"], ids=orphans[start : start + 1000])
    if orphans:
        done.append(f"removed {len(orphans)} chunks of no committed document version")
    pages = found["orphan_pages"]
    for start in range(0, len(pages), 1000):
        client.delete(kb.catalog, ids=pages[start : start + 1000])
    if pages:
        done.append(f"removed {len(pages)} pages of no committed document version")
    docs, visible = found["docs"], found["visible"]
    empty = [d for d in docs.values() if not visible[d.doc_id]]
    if empty:
        client.delete(kb.catalog, ids=[row_key("doc", d.doc_id) for d in empty])
        done.append(f"removed {len(empty)} documents without chunks")
    wrong = [d for d in docs.values() if visible[d.doc_id] and visible[d.doc_id] != d.chunks]
    if wrong:
        versions = kb.committed_versions(d.doc_id for d in wrong)
        rows = []
        for d in wrong:
            body = {**d.__dict__, "chunks": visible[d.doc_id]}
            rows.append(
                catalog_row(
                    "doc",
                    row_key("doc", d.doc_id),
                    json.dumps(body, ensure_ascii=False),
                    doc_id=d.doc_id,
                    version=versions[d.doc_id],
                    origin=d.origin,
                    sha256=d.sha256,
                )
            )
        client.upsert(kb.catalog, rows)
        done.append(f"corrected the chunk count of {len(wrong)} documents")
    if found["dead_leases"]:
        client.delete(kb.catalog, ids=found["dead_leases"])
        done.append(f"removed {len(found['dead_leases'])} expired writer leases")
    return done
