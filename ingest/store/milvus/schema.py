"""Milvus collections of one knowledge base, the client, and the little helpers every Milvus
module needs (names, keys, ids, filter literals, paged queries).

A knowledge base `NAME` is two kinds of collection, named from a hash of NAME (Milvus names
allow only ASCII letters, digits and '_'; zhiku's allow Chinese):

- `zk_<key>_catalog`: one row per document, source file, page (in parts of at most 60 kB),
  page layout (an OCR page's line boxes, JSON in parts likewise), chunk left out of retrieval,
  setting and writer lease. Milvus needs a vector field in every collection: `_v` is a 2-d
  zero vector nobody searches.
- `zk_<key>_chunks_<n>`: one row per chunk with its text (jieba analyzer, BM25 function into
  `sparse`), its dense vector, and every field a citation needs. A reindex fills a new `<n>`
  and switches the catalog's `active` row to it: that one upsert is the commit.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ingest.store.base import StoreError

if TYPE_CHECKING:
    from pymilvus import MilvusClient

    from ingest.settings import Settings

PREFIX = "zk_"
CATALOG_SUFFIX = "_catalog"
VARCHAR_MAX = 65_535
PAGE_PART_BYTES = 60_000  # Milvus measures VARCHAR in bytes
PAGE_PARTS = 10_000  # parts a page may have (600 MB of text: more than any file zhiku takes)
# a document version's page rows: its pages' text and their OCR line boxes; written, made
# visible and deleted together with the version's chunks
PAGE_ROWS = 'kind in ["page", "layout"]'
JIEBA = {"tokenizer": "jieba", "filter": ["lowercase"]}
# text zhiku has segmented already (its jieba search-mode tokens, space-separated)
PRESEGMENTED = {"tokenizer": "whitespace"}


def kb_key(name: str) -> str:
    return PREFIX + hashlib.blake2b(name.encode("utf-8"), digest_size=8).hexdigest()


def catalog_name(name: str) -> str:
    return kb_key(name) + CATALOG_SUFFIX


def chunks_name(name: str, epoch: int) -> str:
    return f"{kb_key(name)}_chunks_{epoch}"


def row_key(kind: str, *parts: object) -> str:
    digest = hashlib.blake2b(
        json.dumps(parts, ensure_ascii=False).encode("utf-8"), digest_size=16
    ).hexdigest()
    return f"{kind}:{digest}"


def chunk_id(collection: str, doc_id: str, version: str, ordinal: int) -> int:
    """A chunk's integer id: unique per collection and document version, positive int64 (a
    reindex gives every chunk a new id, as the FAISS + SQLite store does)."""
    key = f"{collection}\0{doc_id}\0{version}\0{ordinal}"
    raw = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(raw, "big") & (2**63 - 1)


def literal(value: str) -> str:
    """A string literal for a Milvus filter expression."""
    return json.dumps(value, ensure_ascii=False)


def in_list(field: str, values: Iterable[object]) -> str:
    items = ", ".join(literal(v) if isinstance(v, str) else str(int(v)) for v in values)  # type: ignore[call-overload]
    return f"{field} in [{items}]"


def split_utf8(text: str, limit: int = PAGE_PART_BYTES) -> list[str]:
    """`text` in parts of at most `limit` UTF-8 bytes, never splitting a character."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return [text]
    parts, start = [], 0
    while start < len(data):
        end = min(start + limit, len(data))
        while end < len(data) and (data[end] & 0xC0) == 0x80:  # a continuation byte
            end -= 1
        parts.append(data[start:end].decode("utf-8"))
        start = end
    return parts


# pymilvus pings every 10 s even when idle; a server that enforces gRPC's default ping policy
# (the Milvus core does) answers "too many pings" and drops the channel. pymilvus shares one
# channel per address among all clients of a process, made with the options of whichever client
# came first, so every client in zhiku and its tests must be made with these options.
GRPC_OPTIONS: dict[str, int] = {
    "grpc.keepalive_time_ms": 300_000,
    "grpc.keepalive_permit_without_calls": 0,
}


def connect(settings: Settings) -> MilvusClient:
    try:
        from pymilvus import MilvusClient
    except ImportError as exc:  # pragma: no cover - pymilvus is a dependency
        raise StoreError("VECTOR_STORE=milvus needs pymilvus: pip install pymilvus") from exc
    try:
        return MilvusClient(
            uri=settings.milvus_uri,
            token=settings.milvus_token,
            db_name=settings.milvus_db,
            timeout=30,
            grpc_options=GRPC_OPTIONS,
        )
    except Exception as exc:
        raise unreachable(settings, exc) from exc


def unreachable(settings: Settings, exc: BaseException) -> StoreError:
    return StoreError(
        f"cannot reach Milvus at {settings.milvus_uri} (database {settings.milvus_db!r}): "
        f"{str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}. Start the "
        "server or set MILVUS_URI / MILVUS_TOKEN / MILVUS_DB; with VECTOR_STORE=faiss zhiku "
        "needs no server.",
        f"无法连接 Milvus（{settings.milvus_uri}，数据库 {settings.milvus_db!r}）。"
        "请启动 Milvus 服务，或检查 MILVUS_URI / MILVUS_TOKEN / MILVUS_DB；"
        "设置 VECTOR_STORE=faiss 则无需服务器。",
    )


def catalog_schema(client: MilvusClient) -> tuple[Any, Any]:
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("key", DataType.VARCHAR, max_length=128, is_primary=True)
    schema.add_field("kind", DataType.VARCHAR, max_length=16)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=4096)
    schema.add_field("version", DataType.VARCHAR, max_length=64)
    schema.add_field("origin", DataType.VARCHAR, max_length=4096)
    schema.add_field("sha256", DataType.VARCHAR, max_length=128)
    schema.add_field("seq", DataType.INT64)  # a page: page seq * PAGE_PARTS + part
    schema.add_field("number", DataType.INT64)  # a page's number; -1: none
    schema.add_field("body", DataType.VARCHAR, max_length=VARCHAR_MAX)
    schema.add_field("_v", DataType.FLOAT_VECTOR, dim=2)
    index = client.prepare_index_params()
    index.add_index(field_name="_v", index_type="FLAT", metric_type="L2")
    return schema, index


def chunks_schema(
    client: MilvusClient, dimension: int, index_type: str, keyword_tokens: str
) -> tuple[Any, Any]:
    from pymilvus import DataType, Function, FunctionType

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=4096)
    schema.add_field("version", DataType.VARCHAR, max_length=64)
    schema.add_field("chunk_key", DataType.VARCHAR, max_length=256)
    schema.add_field("ordinal", DataType.INT64)
    schema.add_field("page", DataType.INT64)  # -1: the format has no pages
    schema.add_field("page_seq", DataType.INT64)
    schema.add_field("start", DataType.INT64)
    schema.add_field("end", DataType.INT64)
    schema.add_field("text", DataType.VARCHAR, max_length=VARCHAR_MAX)
    # what keyword search sees: title, headings and text, segmented by jieba (Milvus's own
    # analyzer, or zhiku's tokens split on spaces: MILVUS_KEYWORD_TOKENS)
    schema.add_field(
        "search_text",
        DataType.VARCHAR,
        max_length=VARCHAR_MAX,
        enable_analyzer=True,
        analyzer_params=JIEBA if keyword_tokens == "milvus" else PRESEGMENTED,
    )
    schema.add_field("headings", DataType.VARCHAR, max_length=VARCHAR_MAX)
    schema.add_field("kind", DataType.VARCHAR, max_length=32)
    schema.add_field("title", DataType.VARCHAR, max_length=8192)
    schema.add_field("source", DataType.VARCHAR, max_length=8192)
    schema.add_field("doc_type", DataType.VARCHAR, max_length=32)
    schema.add_field("embed_hash", DataType.VARCHAR, max_length=128)
    schema.add_field("embedding_model", DataType.VARCHAR, max_length=1024)
    schema.add_field("dense", DataType.FLOAT_VECTOR, dim=dimension)
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_function(
        Function(
            name="search_text_bm25",
            function_type=FunctionType.BM25,
            input_field_names=["search_text"],
            output_field_names=["sparse"],
        )
    )
    index = client.prepare_index_params()
    index.add_index(
        field_name="dense", index_type=index_type, metric_type="IP", params=_build(index_type)
    )
    index.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    for field in ("doc_id", "embed_hash"):
        index.add_index(field_name=field, index_type="INVERTED")
    return schema, index


def _build(index_type: str) -> dict[str, Any]:
    if index_type == "HNSW":
        return {"M": 16, "efConstruction": 200}
    if index_type == "IVF_FLAT":
        return {"nlist": 1024}
    return {}


def check_index_type(client: MilvusClient, settings: Settings) -> None:
    """Refuse, with the setting to change, a dense index type the server does not build (the
    single-process core takes FLAT, IVF_FLAT and AUTOINDEX, not HNSW): found when a knowledge
    base is created, not at its first write in the middle of an ingestion. A throwaway
    collection is made with that index and dropped."""
    from pymilvus import DataType

    index_type = settings.milvus_index_type
    probe = f"zk_probe_{uuid.uuid4().hex[:12]}"
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("dense", DataType.FLOAT_VECTOR, dim=8)
    index = client.prepare_index_params()
    index.add_index(
        field_name="dense", index_type=index_type, metric_type="IP", params=_build(index_type)
    )
    try:
        client.create_collection(probe, schema=schema, index_params=index)
    except Exception as exc:
        from pymilvus.exceptions import MilvusException

        if not isinstance(exc, MilvusException):
            raise
        reason = getattr(exc, "message", None) or str(exc)
        raise StoreError(
            f"the Milvus server at {settings.milvus_uri} does not build MILVUS_INDEX_TYPE="
            f"{index_type} ({reason}): set MILVUS_INDEX_TYPE=AUTOINDEX (HNSW on a full Milvus "
            "server), FLAT or IVF_FLAT; nothing was created",
            f"{settings.milvus_uri} 上的 Milvus 不支持向量索引类型 MILVUS_INDEX_TYPE={index_type}"
            f"（{reason}）：请设为 AUTOINDEX（完整的 Milvus 服务上即 HNSW）、FLAT 或 IVF_FLAT；"
            "知识库未创建",
        ) from exc
    finally:
        with contextlib.suppress(Exception):
            if client.has_collection(probe):
                client.drop_collection(probe)


def search_params(index_type: str, k: int) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if index_type == "HNSW":
        params = {"ef": max(128, k)}
    elif index_type == "IVF_FLAT":
        params = {"nprobe": 32}
    return {"metric_type": "IP", "params": params}


def query_all(
    client: MilvusClient,
    collection: str,
    filter: str,
    fields: list[str],
    batch: int = 4000,
) -> Iterator[dict[str, Any]]:
    """Every row matching `filter`, page by page (a plain query is capped by the server)."""
    # the core without a proxy answers no MVCC timestamp; the iterator then pins its snapshot
    # with the client's clock and says so on every call
    logging.getLogger("pymilvus.client.iterator.query_iterator").setLevel(logging.ERROR)
    iterator = client.query_iterator(
        collection, batch_size=batch, filter=filter, output_fields=fields
    )
    try:
        while True:
            rows = iterator.next()
            if not rows:
                return
            yield from rows
    finally:
        iterator.close()


SLICE = 1000  # values per `in [...]` filter


def slices(values: Sequence[Any], size: int = SLICE) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
