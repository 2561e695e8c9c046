"""The old import path of the store, kept so that `from ingest._store import KnowledgeBase`
still works; new code imports `ingest.store`."""

from ingest._vectors import IVF_THRESHOLD
from ingest.store import (
    ChunkRecord,
    DocumentRecord,
    KnowledgeBase,
    ModelMismatch,
    PreparedChunk,
    StoreError,
    Writer,
    delete_kb,
    kb_exists,
    keyword_text,
    list_kbs,
    open_kb,
    salvage_kb,
    validate_kb_name,
)
from ingest.store.faiss_sqlite import DB_FILE, kb_path

__all__ = [
    "DB_FILE",
    "IVF_THRESHOLD",
    "ChunkRecord",
    "DocumentRecord",
    "KnowledgeBase",
    "ModelMismatch",
    "PreparedChunk",
    "StoreError",
    "Writer",
    "delete_kb",
    "kb_exists",
    "kb_path",
    "keyword_text",
    "list_kbs",
    "open_kb",
    "salvage_kb",
    "validate_kb_name",
]
