"""What answering gives back: the result (`AnswerResult`, with its `Citation`s and the
`EvidenceQuote`s under the answer), and the events `answer()` streams on the way to it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from app._llm import BackendInfo
from app.answer.passages import Passage
from app.answer.verify import GuardEvent


@dataclass
class Citation:
    number: int  # the marker in the final answer
    passage: Passage
    span_start: int  # the cited sentence, as offsets into the page
    span_end: int
    quote: str  # the cited sentence's text


def related_note(related: Sequence[Citation]) -> str:
    """What a refusal adds about the sentences the documents do hold, each marked as not the
    answer (the sentences themselves are also in the result's `related`)."""
    return "".join(
        f"\n\n相关内容（不是这个问题的答案）：《{c.passage.title}》{c.quote}" for c in related
    )


@dataclass
class EvidenceQuote:
    """A sentence of the documents quoted word for word under the answer, so the reader checks
    the answer against the source's own words. Quotes with the same `group` are consecutive
    sentences of one passage, shown together."""

    marker: int  # its [n]: the citation with this number points at the same sentence
    text: str  # the sentence as quoted (without its marker)
    passage: int  # the number of its passage among `AnswerResult.passages`
    doc_id: str
    title: str
    page: int | None
    span_start: int  # offsets into the page, as for a citation
    span_end: int
    group: int = 0


@dataclass
class AnswerResult:
    question: str
    standalone_question: str
    answer: str
    citations: list[Citation]
    passages: list[Passage]  # everything retrieved, cited or not; the first ones were in the prompt
    refused: bool
    # "empty_question", "no_relevant_passage", "question_not_covered", "name_not_found",
    # "model_refused", "unsupported_answer", "off_topic"; "small_talk": `answer` is a reply
    # saying what zhiku is for
    refusal_reason: str | None
    backend: BackendInfo
    timings: dict[str, float]
    error_en: str | None = None
    error_zh: str | None = None
    partial: bool = False  # generation stopped early; the text so far is kept
    missing_names: list[str] = field(default_factory=list)  # the question's names no passage has
    # the model's own answer, when code gave an evidence sentence instead
    model_answer: str | None = None
    repairs: list[str] = field(default_factory=list)
    evidence: list[int] = field(default_factory=list)  # sentence ids the model chose
    # the source sentences quoted under the answer; not part of `answer`
    evidence_quotes: list[EvidenceQuote] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # answer sentences no evidence supports
    guards: list[GuardEvent] = field(default_factory=list)
    raw_answer: str = ""  # the model's own answer text, before the check (for logs and eval)
    # a refusal "not_answered": the sentences the answer drew on, which answer something else
    related: list[Citation] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["backend"] = {"kind": self.backend.kind, "model": self.backend.model}
        return data


@dataclass
class Checked:
    """What the answer check made of the model's reply (`app.answer.check`)."""

    answer: str
    citations: list[Citation]
    refused: bool
    refusal_reason: str | None
    model_answer: str | None
    dropped: list[str]
    repairs: list[str]
    guards: list[GuardEvent]
    evidence_quotes: list[EvidenceQuote] = field(default_factory=list)
    related: list[Citation] = field(default_factory=list)


@dataclass(frozen=True)
class Retrieved:
    standalone_question: str
    passages: list[Passage]
    seconds: float
    backend: BackendInfo


@dataclass(frozen=True)
class Token:
    text: str  # visible answer text, already checked


@dataclass(frozen=True)
class Notice:
    en: str
    zh: str


@dataclass(frozen=True)
class Evidence:
    """The evidence quoted under the answer, once the answer has streamed (also in `Final`)."""

    quotes: tuple[EvidenceQuote, ...]


@dataclass(frozen=True)
class Final:
    result: AnswerResult


Event = Retrieved | Token | Notice | Evidence | Final
