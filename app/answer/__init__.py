"""Answering, evidence first: retrieve → decide → generate → check (`app.answer.engine`).

What the rest of the app uses of it is imported from here, never from its modules; the checks
are in `app.answer.verify`, one module each.
"""

from app.answer.decide import Decision, decide
from app.answer.engine import answer
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
from app.answer.verify import GUARDS, QUESTION_FITTED, GuardEvent

__all__ = [
    "GUARDS",
    "QUESTION_FITTED",
    "REFUSAL_EN",
    "REFUSAL_ZH",
    "AnswerResult",
    "Citation",
    "Decision",
    "Event",
    "Evidence",
    "EvidenceQuote",
    "Final",
    "GuardEvent",
    "Hit",
    "Notice",
    "Passage",
    "Retrieval",
    "Retrieved",
    "Token",
    "answer",
    "build_passages",
    "close_to_best",
    "decide",
    "prefix_messages",
    "relevance_floor",
    "retrieve",
    "search",
]
