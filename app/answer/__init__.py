"""Answering, evidence first: retrieve → decide → generate → check.

What the rest of the app uses of it is imported from here, never from its modules.
"""

from app.answer.decide import Decision, decide
from app.answer.passages import Passage, build_passages
from app.answer.prompt import REFUSAL_EN, REFUSAL_ZH, prefix_messages
from app.answer.results import (
    AnswerResult,
    Citation,
    Event,
    Evidence,
    EvidenceQuote,
    Final,
    Notice,
    Retrieved,
    Token,
)
from app.answer.retrieve import Retrieval, close_to_best, relevance_floor, retrieve
from app.answer.search import Hit, search

__all__ = [
    "REFUSAL_EN",
    "REFUSAL_ZH",
    "AnswerResult",
    "Citation",
    "Decision",
    "Event",
    "Evidence",
    "EvidenceQuote",
    "Final",
    "Hit",
    "Notice",
    "Passage",
    "Retrieval",
    "Retrieved",
    "Token",
    "build_passages",
    "close_to_best",
    "decide",
    "prefix_messages",
    "relevance_floor",
    "retrieve",
    "search",
]
