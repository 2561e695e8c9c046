"""The store: where a knowledge base's documents, chunks and vectors live.

`KnowledgeBase.open(settings, name)` opens a knowledge base in the store `VECTOR_STORE` names:
`faiss` (the default: FAISS + SQLite in a folder under ZHIKU_HOME) or `milvus` (a Milvus server
at MILVUS_URI, shared by several app servers). Everything outside this package uses the
interface of `ingest.store.base` and these functions, and never knows which one it has.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ingest.store.base import (
    ChunkRecord,
    DocumentRecord,
    KnowledgeBase,
    ModelMismatch,
    PreparedChunk,
    StoreError,
    StoreKind,
    Writer,
    keyword_text,
    validate_kb_name,
)

if TYPE_CHECKING:
    from ingest.settings import Settings


def backend_class(settings: Settings, kind: StoreKind | None = None) -> type[KnowledgeBase]:
    kind = kind or settings.vector_store
    if kind == "milvus":
        from ingest.store.milvus import MilvusKB

        return MilvusKB
    from ingest.store.faiss_sqlite import FaissSqliteKB

    return FaissSqliteKB


def open_kb(
    settings: Settings, name: str | None = None, create: bool = False, kind: StoreKind | None = None
) -> KnowledgeBase:
    """A knowledge base in the configured store (or in `kind`, for a migration)."""
    return backend_class(settings, kind).open(settings, name, create)


def list_kbs(settings: Settings, kind: StoreKind | None = None) -> list[str]:
    kind = kind or settings.vector_store
    if kind == "milvus":
        from ingest.store.milvus import list_kbs as milvus_list

        return milvus_list(settings)
    from ingest.store.faiss_sqlite import list_kbs as folder_list

    return folder_list(settings)


def kb_exists(settings: Settings, name: str, kind: StoreKind | None = None) -> bool:
    try:
        return validate_kb_name(name) in list_kbs(settings, kind)
    except StoreError:
        return False


def delete_kb(settings: Settings, name: str, kind: StoreKind | None = None) -> None:
    """Remove a knowledge base; waits for any writer first so no ingest is cut in half."""
    kind = kind or settings.vector_store
    if kind == "milvus":
        from ingest.store.milvus import delete_kb as milvus_delete

        milvus_delete(settings, name)
        return
    from ingest.store.faiss_sqlite import delete_kb as folder_delete

    folder_delete(settings, name)


def salvage_kb(settings: Settings, name: str) -> list[str] | None:
    """Rebuild a knowledge base that cannot be opened, from what is still readable; None when
    the store has nothing to salvage from (a Milvus server keeps its own data safe)."""
    if settings.vector_store == "milvus":
        return None
    from ingest.store.faiss_sqlite import DB_FILE, kb_path
    from ingest.store.faiss_sqlite import salvage_kb as folder_salvage

    if not (kb_path(settings, name) / DB_FILE).is_file():
        return None
    return folder_salvage(settings, name)


def repair_kb(settings: Settings, name: str) -> list[str]:
    """What `zhiku kb check --repair` changes: a knowledge base that cannot be opened is salvaged
    (`salvage_kb`), then what is derived is rebuilt when its check finds problems. Returns what
    was repaired (nothing for a consistent one); StoreError when it can be neither opened nor
    salvaged."""
    repaired: list[str] = []
    try:
        base = KnowledgeBase.open(settings, name)
    except StoreError:
        salvaged = salvage_kb(settings, name)
        if salvaged is None:
            raise
        repaired += salvaged
        base = KnowledgeBase.open(settings, name)
    with base:
        if base.check():
            repaired += base.repair()
    return repaired


__all__ = [
    "ChunkRecord",
    "DocumentRecord",
    "KnowledgeBase",
    "ModelMismatch",
    "PreparedChunk",
    "StoreError",
    "StoreKind",
    "Writer",
    "backend_class",
    "delete_kb",
    "kb_exists",
    "keyword_text",
    "list_kbs",
    "open_kb",
    "repair_kb",
    "salvage_kb",
    "validate_kb_name",
]
