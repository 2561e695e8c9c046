"""Passage runtimes: int8 and fp32 ONNX against torch, and an index that keeps the kind of
passage vectors it was built with whatever PASSAGE_RUNTIME says now."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from support import make_settings

from ingest._embed import Embedder
from ingest._insert import embedding_text, ingest_paths
from ingest._store import KnowledgeBase

PASSAGES = [
    "杭州的市花是桂花，市树是香樟。",
    "GPT-1 的参数量为 1.17 亿，训练数据来自 BooksCorpus。",
    "The knowledge base keeps every document on your own machine.",
    "量化把模型参数从高精度浮点数压缩为低比特整数，显存占用随之下降。" * 12,  # long: truncated
]


def torch_passages(embedder: Embedder, texts: list[str]) -> np.ndarray:
    return embedder._encode(texts, embedder.spec.passage_prompt)


def test_default_passages_are_int8_onnx_close_to_torch(embedder: Embedder) -> None:
    assert embedder.passage_runtime == "onnx-int8" and embedder.spec.passages == "int8"
    reference = torch_passages(embedder, PASSAGES)
    vectors = embedder.encode_passages(PASSAGES)
    assert vectors.shape == reference.shape and vectors.dtype == np.float32
    cosines = np.sum(vectors * reference, axis=1)
    assert cosines.min() > 0.97  # close, not equal: why an index records which it holds
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_fp32_onnx_passages_are_torchs_vectors(embedder: Embedder) -> None:
    fp32 = embedder.for_index(embedder.spec.__class__(**{**embedder.spec.__dict__, "passages": ""}))
    assert fp32.passage_runtime == "onnx" and fp32.spec.passages == ""
    reference = torch_passages(embedder, PASSAGES)
    assert np.abs(fp32.encode_passages(PASSAGES) - reference).max() < 1e-4


def test_an_index_keeps_its_kind_of_passage_vectors(tmp_path: Path, embedder: Embedder) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text(PASSAGES[0], encoding="utf-8")
    old = make_settings(tmp_path / "home", passage_runtime="torch")
    torch_only = Embedder(embedder.model, embedder.name, 32, embedder.query_encoder)
    assert ingest_paths(old, [docs], "k", embedder=torch_only).exit_code == 0
    (docs / "b.txt").write_text(PASSAGES[1], encoding="utf-8")
    # today's settings say int8; the index was built at full precision and stays so
    assert (
        ingest_paths(make_settings(tmp_path / "home"), [docs], "k", embedder=embedder).exit_code
        == 0
    )
    with KnowledgeBase.open(old, "k") as kb:
        assert kb.embedding_spec().passages == ""
        (b_doc,) = [d for d in kb.documents() if d.source.endswith("b.txt")]
        (chunk,) = kb.document_chunks(b_doc.doc_id)
        stored = kb.vectors_of([chunk.id])[chunk.id]
    text = embedding_text(chunk.title, chunk.headings, chunk.text)
    assert float(stored @ torch_passages(embedder, [text])[0]) > 0.9999
