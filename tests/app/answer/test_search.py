"""Hybrid retrieval with real embeddings on a small corpus: the right passage comes first, both
signals are used, and the LangChain face carries every field a citation needs."""

from __future__ import annotations

import pytest

from app.answer.search import HybridRetriever, fuse, search
from ingest._embed import Embedder, EmbeddingSpec
from ingest.settings import Settings
from ingest.store import KnowledgeBase, ModelMismatch


@pytest.fixture
def kb(small_kb_settings: Settings) -> KnowledgeBase:
    base = KnowledgeBase.open(small_kb_settings)
    yield base
    base.close()


@pytest.mark.parametrize(
    ("question", "doc_name", "phrase"),
    [
        ("1.5B 模型 4 位量化需要多少显存?", "quant.md", "1.5B | 4 | 0.9"),
        ("杭州的市花是什么？", "city.txt", "市花是桂花"),
        ("GPT-1 有多少参数?", "gpt.txt", "1.17 亿"),
        ("Which company released GPT?", "gpt.txt", "OpenAI"),
    ],
)
def test_the_passage_that_answers_comes_first(
    kb: KnowledgeBase,
    embedder: Embedder,
    small_kb_settings: Settings,
    question: str,
    doc_name: str,
    phrase: str,
) -> None:
    hits = search(kb, embedder, question, small_kb_settings, k=3)
    assert hits[0].chunk.source.endswith(doc_name)
    assert phrase in hits[0].chunk.text
    assert hits[0].score >= hits[-1].score


def test_every_hit_carries_both_scores(
    kb: KnowledgeBase, embedder: Embedder, small_kb_settings: Settings
) -> None:
    hits = search(kb, embedder, "杭州地铁 2 号线有多长", small_kb_settings, k=5)
    assert len(hits) == kb.counts()["chunks"] or len(hits) == 5
    for hit in hits:
        assert -1.0 <= hit.dense <= 1.0
        assert hit.keyword >= 0.0
    top = hits[0]
    assert top.keyword > 0 and top.dense_rank is not None and top.keyword_rank is not None


def test_fusion_weights_both_sides_and_keeps_zero_bm25_at_zero() -> None:
    cosine = {1: 0.90, 2: 0.85, 3: 0.80}
    bm25 = {2: 10.0, 3: 5.0}  # chunk 1 contains no query word
    assert [i for i, _ in fuse(cosine, bm25, dense_weight=1.0)] == [1, 2, 3]
    assert [i for i, _ in fuse(cosine, bm25, dense_weight=0.0)] == [2, 3, 1]
    balanced = dict(fuse(cosine, bm25, dense_weight=0.5))
    assert balanced[2] > balanced[1] and balanced[2] > balanced[3]
    assert fuse({}, {}, 0.5) == []
    assert fuse({7: 0.8}, {}, 0.4) == [(7, 0.4)]


def test_the_langchain_retriever_returns_documents_with_citation_fields(
    kb: KnowledgeBase, embedder: Embedder, small_kb_settings: Settings
) -> None:
    retriever = HybridRetriever(kb=kb, embedder=embedder, settings=small_kb_settings, k=2)
    documents = retriever.invoke("杭州的市树是什么")
    assert len(documents) == 2
    first = documents[0]
    assert "香樟" in first.page_content
    meta = first.metadata
    for key in ("doc_id", "title", "source", "page", "start", "end", "score", "dense_score"):
        assert key in meta
    page = kb.page_text(meta["doc_id"], meta["page_seq"])
    assert page is not None and page[meta["start"] : meta["end"]] == first.page_content


def test_queries_from_another_model_are_refused(
    kb: KnowledgeBase, embedder: Embedder, small_kb_settings: Settings
) -> None:
    class OtherModel(Embedder):
        def __init__(self) -> None:
            self.spec = EmbeddingSpec("another/model", 384, "", "")

    with pytest.raises(ModelMismatch, match="--reindex"):
        search(kb, OtherModel(), "杭州", small_kb_settings)


def test_across_languages_the_dense_side_decides(settings: Settings, embedder: Embedder) -> None:
    """Chinese questions over an English passage, and the reverse: passages in the question's
    language that share one of its words must not bury the one that answers."""
    from support import build_kb

    files = {
        "travel.txt": "Travel Expense Policy\nEmployees must submit travel expense claims "
        "within 30 days after returning from a trip.",
        **{
            f"zh{n}.txt": f"第{n}号通知：报销系统将于本周{n}升级，升级期间暂停使用，请提前安排。"
            for n in range(1, 7)
        },
        "profile.txt": "星河数智科技有限公司成立于 2015 年，目前有员工约 850 人。",
        **{
            f"en{n}.txt": f"Notice {n}: the employees' canteen opens at {n + 6} am on weekdays."
            for n in range(1, 5)
        },
    }
    build_kb(settings, embedder, files, name=settings.default_kb)
    with KnowledgeBase.open(settings) as base:
        zh_en = search(base, embedder, "出差回来后多少天内要提交报销？", settings, k=5)
        en_zh = search(base, embedder, "How many employees does the company have?", settings, k=5)
    assert zh_en[0].chunk.source.endswith("travel.txt")
    assert en_zh[0].chunk.source.endswith("profile.txt")


def test_cross_lingual_candidates_are_scored_by_their_cosine_alone() -> None:
    cosine = {1: 0.9, 2: 0.8, 3: 0.7}
    bm25 = {2: 10.0, 3: 5.0}
    mixed = dict(fuse(cosine, bm25, 0.4))
    dense_only = dict(fuse(cosine, bm25, 0.4, frozenset({1})))
    assert mixed[2] > mixed[1]
    assert dense_only[1] == 1.0 > dense_only[2]
