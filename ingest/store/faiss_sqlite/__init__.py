"""The embedded store: FAISS for vectors, SQLite for everything else, one folder per knowledge
base. The default: no server, one machine, one writer at a time (a file lock)."""

from ingest.store.faiss_sqlite.kb import FaissSqliteKB
from ingest.store.faiss_sqlite.repair import salvage_kb
from ingest.store.faiss_sqlite.schema import DB_FILE, LOCK_FILE, delete_kb, kb_path, list_kbs
from ingest.store.faiss_sqlite.write import SqliteWriter

__all__ = [
    "DB_FILE",
    "LOCK_FILE",
    "FaissSqliteKB",
    "SqliteWriter",
    "delete_kb",
    "kb_path",
    "list_kbs",
    "salvage_kb",
]
