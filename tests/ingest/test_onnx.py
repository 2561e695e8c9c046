"""The ONNX Runtime query encoder: the same vectors as torch, or torch itself."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from support import MODELS_DIR

from ingest._embed import Embedder
from ingest._onnx import OnnxUnavailable, graph_path, load_query_encoder
from ingest.settings import DEFAULT_EMBEDDING_MODEL

QUESTIONS = [
    "GPT-1 有多少参数?",
    "What does the knowledge base say about KV cache?",
    "表格里 2023 年第三季度的营收是多少？",
    "长" * 3000,  # beyond the model's 512 tokens: truncated the same way
]


def _torch_queries(embedder: Embedder, texts: list[str]) -> np.ndarray:
    return embedder._encode(texts, embedder.spec.query_prompt)


def test_default_queries_run_on_onnx_with_torchs_vectors(embedder: Embedder) -> None:
    assert embedder.query_runtime == "onnxruntime"
    one_by_one = np.vstack([embedder.encode_queries([q]) for q in QUESTIONS])
    batched = embedder.encode_queries(QUESTIONS)  # padding to the longest must not leak in
    reference = _torch_queries(embedder, QUESTIONS)
    for vectors in (one_by_one, batched):
        assert vectors.dtype == np.float32 and vectors.shape == reference.shape
        assert np.abs(vectors - reference).max() < 1e-4
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_a_damaged_graph_is_exported_again(embedder: Embedder, tmp_path: Path) -> None:
    cached = graph_path(MODELS_DIR, DEFAULT_EMBEDDING_MODEL)
    copy = graph_path(tmp_path, DEFAULT_EMBEDDING_MODEL)
    shutil.copytree(cached.parent, copy.parent)
    location = str(MODELS_DIR / "multilingual-e5-small")
    said: list[str] = []

    load_query_encoder(embedder.model, DEFAULT_EMBEDDING_MODEL, location, tmp_path, 2, said.append)
    assert not any("export" in m for m in said), "a current graph is reused, not re-exported"
    spelled_otherwise = str(MODELS_DIR / "." / "multilingual-e5-small")
    load_query_encoder(
        embedder.model, DEFAULT_EMBEDDING_MODEL, spelled_otherwise, tmp_path, 2, said.append
    )
    assert not any("export" in m for m in said), "the same model under another path spelling"

    copy.write_bytes(b"\x00not an onnx graph" * 100)
    encoder = load_query_encoder(
        embedder.model, DEFAULT_EMBEDDING_MODEL, location, tmp_path, 2, said.append
    )
    assert any("export" in m for m in said)
    prompt = embedder.spec.query_prompt
    expected = _torch_queries(embedder, QUESTIONS[:2])
    assert np.abs(encoder.encode(QUESTIONS[:2], prompt) - expected).max() < 1e-4


def test_a_pooling_it_cannot_reproduce_stays_on_torch(embedder: Embedder, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    max_pooled = SentenceTransformer(
        modules=[embedder.model[0], Pooling(embedder.spec.dimension, pooling_mode="max")],
        device="cpu",
    )
    with pytest.raises(OnnxUnavailable, match="pooling"):
        load_query_encoder(max_pooled, "max-pooled", "max-pooled", tmp_path, 2)
    assert not graph_path(tmp_path, "max-pooled").exists()
