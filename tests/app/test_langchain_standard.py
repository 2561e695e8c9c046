"""LangChain's own standard suites (`langchain-tests`) against zhiku's `Embeddings` and
retriever, so users can drop them into their chains: the real model, a real knowledge base."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from langchain_tests.integration_tests import EmbeddingsIntegrationTests, RetrieversIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests
from support import REPO, SMALL_CORPUS, build_kb, make_settings

from app.answer.search import HybridRetriever
from ingest._embed import Embedder, load_embedder
from ingest._store import KnowledgeBase


def _embedder_params() -> dict[str, Any]:
    # the session's model (load_embedder caches it per process): built from its parts, as the
    # suites construct `embeddings_class(**params)` themselves
    loaded = load_embedder(make_settings(REPO / ".zhiku"))
    return {
        "model": loaded.model,
        "name": loaded.spec.name,
        "batch_size": loaded.batch_size,
        "query_encoder": loaded.query_encoder,
    }


class TestEmbedderUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[Embedder]:
        return Embedder

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return _embedder_params()


class TestEmbedderIntegration(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[Embedder]:
        return Embedder

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return _embedder_params()


@pytest.fixture(scope="class")
def knowledge_base(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    embedder = load_embedder(make_settings(REPO / ".zhiku"))
    settings = make_settings(tmp_path_factory.mktemp("lc") / "home")
    build_kb(settings, embedder, SMALL_CORPUS, name=settings.default_kb)
    kb = KnowledgeBase.open(settings)
    request.cls.params = {"kb": kb, "embedder": embedder, "settings": settings}
    yield
    kb.close()


@pytest.mark.usefixtures("knowledge_base")
class TestHybridRetriever(RetrieversIntegrationTests):
    """Includes `invoke(query, k=1)` returning one document, not the default five."""

    params: ClassVar[dict[str, Any]] = {}

    @property
    def retriever_constructor(self) -> type[HybridRetriever]:
        return HybridRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def retriever_query_example(self) -> str:
        return "杭州的市花是什么？"
