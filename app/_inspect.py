"""The retrieval inspector (命中测试): for one question, what retrieval found and why, without
asking the LLM: the query's jieba tokens and FTS5 expression, every retrieved chunk with its
dense, keyword and fused scores and ranks, the passages they make, which of them would reach
the prompt, and the refusal code would give before the model is asked.

The selection follows `app._rag.answer` step by step, with the same public functions
(`search`, `build_passages`, `relevance_floor`, `close_to_best`, `missing_names`), so what this
shows is what answering does with the same settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app._passages import Passage, build_passages
from app._prompt import missing_names
from app._rag import close_to_best, relevance_floor
from app._search import Hit, search
from ingest._embed import Embedder
from ingest._store import KnowledgeBase
from ingest._tokenize import keyword_query, query_terms, tokens
from ingest.settings import Settings


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
    refusal: str | None = None  # "no_relevant_passage" / "name_not_found" / None
    missing: list[str] = field(default_factory=list)

    @property
    def in_prompt(self) -> list[Passage]:
        return [v.passage for v in self.verdicts if v.in_prompt]


REFUSAL_ZH = {
    "no_relevant_passage": "没有段落达到相关度下限:不调用大模型,直接回答"
    "「知识库中没有找到相关内容」。",
    "name_not_found": "问题里的名称在检索到的段落中都没有出现:不调用大模型,直接拒答。",
}


def inspect(question: str, kb: KnowledgeBase, embedder: Embedder, settings: Settings) -> Inspection:
    """What answering `question` would retrieve and give the model (without history)."""
    hits = search(kb, embedder, question, settings, k=settings.top_k)
    passages = build_passages(kb, hits, settings.merge_neighbors)
    floors = {id(p): relevance_floor(question, p.text, settings) for p in passages}
    relevant = [p for p in passages if p.dense >= floors[id(p)]]
    close = close_to_best(relevant, settings.context_score_ratio)
    context = close[: settings.context_passages]
    ordered = [*context, *(p for p in passages if p not in context)]
    verdicts = []
    for number, passage in enumerate(ordered, start=1):
        passage.number = number
        if passage in context:
            why = ""
        elif passage not in relevant:
            why = f"语义相似度 {passage.dense:.3f} 低于相关度下限 {floors[id(passage)]:.2f}"
        elif passage not in close:
            why = f"综合得分不到最佳段落的 {settings.context_score_ratio:.0%}(CONTEXT_SCORE_RATIO)"
        else:
            why = f"提示词最多放 {settings.context_passages} 个段落(CONTEXT_PASSAGES)"
        verdicts.append(PassageVerdict(passage, floors[id(passage)], not why, why))
    inspection = Inspection(
        question,
        tokens(question),
        query_terms(question),
        keyword_query(question),
        hits,
        verdicts,
        len(kb.excluded_ids()),
    )
    if not context:
        inspection.refusal = "no_relevant_passage"
    else:
        inspection.missing = missing_names(question, [p.text for p in ordered])
        if inspection.missing:
            inspection.refusal = "name_not_found"
    return inspection
