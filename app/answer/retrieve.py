"""Retrieve: the standalone question (a follow-up rewritten by the LLM, or carried over without
one) and the passages retrieved for it, best first; and the two measures `decide` keeps them
by, the relevance floor and the distance to the best passage."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from app._llm import ResolvedBackend
from app.answer.passages import Passage, build_passages
from app.answer.prompt import as_langchain, build_condense_messages
from app.answer.search import search
from ingest import Embedder
from ingest.settings import Settings
from ingest.store import KnowledgeBase
from ingest.text import mostly_chinese

_LEANING = re.compile(
    r"^(它|他|她|它们|他们|这|那|其|该|此|上述|前者|后者)|^(it|they|this|that|these|those)\b",
    re.IGNORECASE,
)


def carry_over(question: str, history: Sequence[tuple[str, str]]) -> str:
    """Without an LLM: a follow-up that leans on the previous question gets its words."""
    if not history:
        return question
    previous = history[-1][0].strip()
    short = len(re.sub(r"\W", "", question)) <= 8
    if short or _LEANING.search(question.strip()):
        return f"{previous} {question.strip()}"
    return question


def condense(question: str, history: Sequence[tuple[str, str]], backend: ResolvedBackend) -> str:
    """A standalone question: rewritten by the LLM when there is one, else carried over."""
    if not history:
        return question
    if backend.chat is None:
        return carry_over(question, history)
    try:
        reply = backend.chat.invoke(
            as_langchain(build_condense_messages(question, list(history))), stop=["\n"]
        )
    except Exception:  # rewriting is an aid; the question itself still works
        return carry_over(question, history)
    lines = str(reply.content).strip().splitlines()
    text = re.sub(r"^(改写后的问题|问题)[:：]\s*", "", lines[0].strip()) if lines else ""
    return text if 2 <= len(text) <= 200 else carry_over(question, history)


def relevance_floor(question: str, passage: str, settings: Settings) -> float:
    """The cosine a passage must reach: lower across languages, where multilingual embeddings
    score related pairs lower (English questions on Chinese passages: ~0.78-0.82 related,
    ~0.72-0.75 unrelated, against ~0.85-0.92 and ~0.80-0.83 within Chinese)."""
    if mostly_chinese(question) == mostly_chinese(passage):
        return settings.relevance_floor
    return settings.relevance_floor_cross_lingual


def close_to_best(passages: Sequence[Passage], ratio: float) -> list[Passage]:
    """The passages whose fused score is within `ratio` of the best one's. A passage far behind
    the best seldom holds the answer, and a small model takes numbers from it."""
    if not passages:
        return []
    best = max(p.score for p in passages)
    return [p for p in passages if p.score >= ratio * best]


@dataclass(frozen=True)
class Retrieval:
    standalone: str
    passages: tuple[Passage, ...]  # best first
    seconds: float


def retrieve(
    standalone: str, kb: KnowledgeBase, settings: Settings, embedder: Embedder
) -> Retrieval:
    started = time.perf_counter()
    hits = search(kb, embedder, standalone, settings, k=settings.top_k)
    passages = build_passages(kb, hits, settings.merge_neighbors)
    return Retrieval(standalone, tuple(passages), time.perf_counter() - started)
