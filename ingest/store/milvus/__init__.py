"""The shared store: a Milvus server (Standalone or Distributed) holds the knowledge bases, so
several app servers can serve and ingest the same ones. See README "Milvus"."""

from ingest.store.milvus.kb import MilvusKB, delete_kb, list_kbs
from ingest.store.milvus.write import MilvusWriter

__all__ = ["MilvusKB", "MilvusWriter", "delete_kb", "list_kbs"]
