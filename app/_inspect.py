"""The retrieval inspector (命中测试): for one question, what retrieval found and why, without
asking the LLM: the query's jieba tokens and FTS5 expression, every retrieved chunk with its
dense, keyword and fused scores and ranks, the passages they make, which of them would reach
the prompt, and the refusal code would give before the model is asked.

The selection and the refusal are answering's own step (`app.answer.decide`), so what this shows
is what answering does with the same settings; only the reasons a passage stays out are worked
out here, with the same public functions (`relevance_floor`, `close_to_best`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.answer import (
    Hit,
    Passage,
    Retrieval,
    build_passages,
    close_to_best,
    decide,
    relevance_floor,
    search,
)
from ingest import Embedder, keyword_query, query_terms, tokens
from ingest.settings import Settings
from ingest.store import KnowledgeBase


@dataclass(frozen=True)
class PassageVerdict:
    passage: Passage
    floor: float  # the cosine it had to reach
    in_prompt: bool
    why_not: str  # Chinese; "" when it reaches the prompt


@dataclass
class Inspection:
    question: str
    tokens: list[str]  # jieba search-mode tokens of the question
    terms: list[str]  # the ones the keyword search looks for (question words dropped)
    expression: str  # the FTS5 query
    hits: list[Hit]
    verdicts: list[PassageVerdict]
    excluded: int  # chunks left out of retrieval in this knowledge base
    # "no_relevant_passage" / "question_not_covered" / "name_not_found" / None
    refusal: str | None = None
    missing: list[str] = field(default_factory=list)

    @property
    def in_prompt(self) -> list[Passage]:
        return [v.passage for v in self.verdicts if v.in_prompt]


REFUSAL_ZH = {
    "no_relevant_passage": "没有段落达到相关度下限:不调用大模型,直接回答"
    "「知识库中没有找到相关内容」。",
    "question_not_covered": "没有段落包含问题中足够多的词(QUESTION_COVERAGE):不调用大模型,"
    "直接拒答。",
    "name_not_found": "问题里的名称在整个知识库中都没有出现:不调用大模型,直接拒答。",
}


def inspect(question: str, kb: KnowledgeBase, embedder: Embedder, settings: Settings) -> Inspection:
    """What answering `question` would retrieve and give the model (without history)."""
    hits = search(kb, embedder, question, settings, k=settings.top_k)
    passages = build_passages(kb, hits, settings.merge_neighbors)
    decision = decide(Retrieval(question, tuple(passages), 0.0), kb, settings)
    floors = {p.chunk_ids: relevance_floor(question, p.text, settings) for p in passages}
    relevant = [p for p in passages if p.dense >= floors[p.chunk_ids]]
    close = {p.chunk_ids for p in close_to_best(relevant, settings.context_score_ratio)}
    in_prompt = {p.chunk_ids for p in decision.context}
    verdicts = []
    for passage in decision.passages:
        key = passage.chunk_ids
        if key in in_prompt:
            why = ""
        elif passage.dense < floors[key]:
            why = f"语义相似度 {passage.dense:.3f} 低于相关度下限 {floors[key]:.2f}"
        elif key not in close:
            why = f"综合得分不到最佳段落的 {settings.context_score_ratio:.0%}(CONTEXT_SCORE_RATIO)"
        else:
            why = f"提示词最多放 {settings.context_passages} 个段落(CONTEXT_PASSAGES)"
        verdicts.append(PassageVerdict(passage, floors[key], not why, why))
    return Inspection(
        question,
        tokens(question),
        query_terms(question),
        keyword_query(question),
        hits,
        verdicts,
        len(kb.excluded_ids()),
        decision.refusal_reason,
        list(decision.missing_names),
    )
