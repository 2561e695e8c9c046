"""The ingestion library's public API: what `app/` (and any other caller) may use.

Modules whose names start with `_` are the library's inside; callers import from here, from
`ingest.store` (knowledge bases), `ingest.settings`, `ingest.statedb` (the state database's
engine), `ingest.text`, `ingest.load`, `ingest.web` and `ingest.watch`. Names resolve on first
use (PEP 562), so `import ingest.settings` stays cheap and loads no model code.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ingest._blobs import originals_in_database
    from ingest._convert import sha256_file
    from ingest._cpu import cpu_flags
    from ingest._embed import Embedder, EmbeddingError, load_embedder, prepare_default_model
    from ingest._insert import (
        FileOutcome,
        IngestReport,
        Progress,
        ingest_paths,
        remove_documents,
    )
    from ingest._originals import (
        delete_kb_originals,
        kb_has_originals,
        keep_original,
        original_file,
        originals_dir,
        release_originals,
    )
    from ingest._reasons import Rejection
    from ingest._runtime import effective_runtimes, read_choice
    from ingest._runtime import measure as measure_runtimes
    from ingest._throughput import Throughput, duration_zh
    from ingest._tokenize import (
        QUERY_STOPWORDS,
        keyword_expression,
        keyword_query,
        query_terms,
        tokens,
    )
    from ingest._upload import SavedUpload, delete_kb_uploads, save_uploads, uploads_dir

# public name → (module, name in it)
_EXPORTS: dict[str, tuple[str, str]] = {
    "sha256_file": ("ingest._convert", "sha256_file"),
    "originals_in_database": ("ingest._blobs", "originals_in_database"),
    "cpu_flags": ("ingest._cpu", "cpu_flags"),
    "Embedder": ("ingest._embed", "Embedder"),
    "EmbeddingError": ("ingest._embed", "EmbeddingError"),
    "load_embedder": ("ingest._embed", "load_embedder"),
    "prepare_default_model": ("ingest._embed", "prepare_default_model"),
    "FileOutcome": ("ingest._insert", "FileOutcome"),
    "IngestReport": ("ingest._insert", "IngestReport"),
    "Progress": ("ingest._insert", "Progress"),
    "ingest_paths": ("ingest._insert", "ingest_paths"),
    "remove_documents": ("ingest._insert", "remove_documents"),
    "delete_kb_originals": ("ingest._originals", "delete_kb_originals"),
    "kb_has_originals": ("ingest._originals", "kb_has_originals"),
    "keep_original": ("ingest._originals", "keep_original"),
    "original_file": ("ingest._originals", "original_file"),
    "originals_dir": ("ingest._originals", "originals_dir"),
    "release_originals": ("ingest._originals", "release_originals"),
    "Rejection": ("ingest._reasons", "Rejection"),
    "effective_runtimes": ("ingest._runtime", "effective_runtimes"),
    "read_choice": ("ingest._runtime", "read_choice"),
    "measure_runtimes": ("ingest._runtime", "measure"),
    "Throughput": ("ingest._throughput", "Throughput"),
    "duration_zh": ("ingest._throughput", "duration_zh"),
    "QUERY_STOPWORDS": ("ingest._tokenize", "QUERY_STOPWORDS"),
    "keyword_expression": ("ingest._tokenize", "keyword_expression"),
    "keyword_query": ("ingest._tokenize", "keyword_query"),
    "query_terms": ("ingest._tokenize", "query_terms"),
    "tokens": ("ingest._tokenize", "tokens"),
    "SavedUpload": ("ingest._upload", "SavedUpload"),
    "delete_kb_uploads": ("ingest._upload", "delete_kb_uploads"),
    "save_uploads": ("ingest._upload", "save_uploads"),
    "uploads_dir": ("ingest._upload", "uploads_dir"),
}

__all__ = [
    "QUERY_STOPWORDS",
    "Embedder",
    "EmbeddingError",
    "FileOutcome",
    "IngestReport",
    "Progress",
    "Rejection",
    "SavedUpload",
    "Throughput",
    "cpu_flags",
    "delete_kb_originals",
    "delete_kb_uploads",
    "duration_zh",
    "effective_runtimes",
    "ingest_paths",
    "kb_has_originals",
    "keep_original",
    "keyword_expression",
    "keyword_query",
    "load_embedder",
    "measure_runtimes",
    "original_file",
    "originals_dir",
    "originals_in_database",
    "prepare_default_model",
    "query_terms",
    "read_choice",
    "release_originals",
    "remove_documents",
    "save_uploads",
    "sha256_file",
    "tokens",
    "uploads_dir",
]


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'ingest' has no attribute {name!r}") from None
    # not cached here: a test that patches the inner module's name is seen by later importers
    return getattr(import_module(module), attribute)
