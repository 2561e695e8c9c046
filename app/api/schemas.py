"""Request and response bodies of the HTTP API (they make the OpenAPI spec), and the JSON form
of passages, citations and answers that the API and the MCP server share."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.answer import AnswerResult, Citation, EvidenceQuote, Hit, Passage
from app.service import ImportedFile, KbInfo
from ingest.store import ChunkRecord, DocumentRecord

KbName = Field(min_length=1, max_length=64, description="a knowledge base name")


# ----- shared JSON forms -------------------------------------------------------------------


def file_name(source: str) -> str:
    return Path(source.split("#")[0]).name


class PassageOut(BaseModel):
    chunk_id: int
    doc_id: str
    title: str
    source: str
    file: str
    page: int | None
    headings: list[str]
    text: str
    start: int = Field(description="offset of the passage in its page's text")
    end: int
    score: float = Field(description="fused score in [0, 1], comparable within one query")
    dense_score: float = Field(description="cosine similarity to the query")
    keyword_score: float = Field(description="BM25; 0 when no query word occurs")
    dense_rank: int | None
    keyword_rank: int | None


def hit_out(hit: Hit) -> PassageOut:
    c = hit.chunk
    return PassageOut(
        chunk_id=c.id,
        doc_id=c.doc_id,
        title=c.title,
        source=c.source,
        file=file_name(c.source),
        page=c.page,
        headings=list(c.headings),
        text=c.text,
        start=c.start,
        end=c.end,
        score=hit.score,
        dense_score=hit.dense,
        keyword_score=hit.keyword,
        dense_rank=hit.dense_rank,
        keyword_rank=hit.keyword_rank,
    )


class ChunkOut(BaseModel):
    chunk_id: int
    doc_id: str
    title: str
    source: str
    file: str
    page: int | None
    headings: list[str]
    text: str
    start: int
    end: int


def chunk_out(c: ChunkRecord) -> ChunkOut:
    return ChunkOut(
        chunk_id=c.id,
        doc_id=c.doc_id,
        title=c.title,
        source=c.source,
        file=file_name(c.source),
        page=c.page,
        headings=list(c.headings),
        text=c.text,
        start=c.start,
        end=c.end,
    )


class CitationOut(BaseModel):
    number: int = Field(description="the [n] marker in the verified answer")
    passage_number: int = Field(description="the passage's number as the model saw it")
    doc_id: str
    title: str
    source: str
    file: str
    page: int | None
    headings: list[str]
    quote: str = Field(description="the supporting span of the passage")
    span_start: int = Field(description="offset of the quote in its page's text")
    span_end: int
    chunk_ids: list[int]


def citation_out(c: Citation) -> CitationOut:
    p = c.passage
    return CitationOut(
        number=c.number,
        passage_number=p.number,
        doc_id=p.doc_id,
        title=p.title,
        source=p.source,
        file=file_name(p.source),
        page=p.page,
        headings=list(p.headings),
        quote=c.quote,
        span_start=c.span_start,
        span_end=c.span_end,
        chunk_ids=list(p.chunk_ids),
    )


class RetrievedPassage(BaseModel):
    number: int
    doc_id: str
    title: str
    file: str
    page: int | None
    score: float
    dense_score: float
    chunk_ids: list[int]


def passage_out(p: Passage) -> RetrievedPassage:
    return RetrievedPassage(
        number=p.number,
        doc_id=p.doc_id,
        title=p.title,
        file=file_name(p.source),
        page=p.page,
        score=p.score,
        dense_score=p.dense,
        chunk_ids=list(p.chunk_ids),
    )


class EvidenceOut(BaseModel):
    """A sentence of the documents quoted under the answer, word for word. Not part of the
    answer text: show it apart (e.g. as a quote under the answer)."""

    marker: int = Field(description="its [n]: the citation with this number is its source")
    text: str = Field(description="the sentence as written in the document")
    passage_number: int
    doc_id: str
    title: str
    page: int | None
    span_start: int = Field(description="offset of the sentence in its page's text")
    span_end: int
    group: int = Field(description="quotes sharing a group are consecutive sentences")


def evidence_out(q: EvidenceQuote) -> EvidenceOut:
    return EvidenceOut(
        marker=q.marker,
        text=q.text,
        passage_number=q.passage,
        doc_id=q.doc_id,
        title=q.title,
        page=q.page,
        span_start=q.span_start,
        span_end=q.span_end,
        group=q.group,
    )


class AnswerOut(BaseModel):
    """What zhiku adds to an OpenAI response (the `zhiku` field, ignored by OpenAI clients)."""

    answer: str = Field(description="the verified answer; its [n] markers are `citations`")
    evidence: list[EvidenceOut] = Field(
        description="the source sentences quoted under the answer, apart from its text"
    )
    citations: list[CitationOut]
    refused: bool = Field(description="true when the knowledge base does not hold the answer")
    refusal_reason: str | None = Field(
        description="empty_question, no_relevant_passage, question_not_covered, "
        "name_not_found, model_refused, unsupported_answer, off_topic, not_answered (the "
        "documents speak of something next to what was asked: the sentences an answer would "
        "rest on answer another question, or the passages name another thing of the kind "
        "asked about; `related` holds them), or "
        "small_talk (a greeting or a question about the assistant: `answer` says what zhiku "
        "is for)"
    )
    missing_names: list[str]
    retrieval_only: bool = Field(description="no LLM: the citations are the best passages")
    standalone_question: str
    passages: list[RetrievedPassage]
    backend: str
    model: str
    partial: bool
    error: str | None
    error_zh: str | None
    model_answer: str | None
    repairs: list[str]
    timings: dict[str, float]


def answer_out(result: AnswerResult) -> AnswerOut:
    return AnswerOut(
        answer=result.answer,
        evidence=[evidence_out(q) for q in result.evidence_quotes],
        citations=[citation_out(c) for c in result.citations],
        refused=result.refused,
        refusal_reason=result.refusal_reason,
        missing_names=list(result.missing_names),
        retrieval_only=result.backend.kind == "none" and not result.refused,
        standalone_question=result.standalone_question,
        passages=[passage_out(p) for p in result.passages],
        backend=result.backend.kind,
        model=result.backend.model,
        partial=result.partial,
        error=result.error_en,
        error_zh=result.error_zh,
        model_answer=result.model_answer,
        repairs=list(result.repairs),
        timings=dict(result.timings),
    )


def answer_text(result: AnswerResult) -> str:
    """The assistant message: the answer alone (its evidence is `zhiku.evidence`); without an
    LLM, the best passages, numbered."""
    if result.answer or result.refused:
        return result.answer
    return "\n\n".join(f"[{c.number}] {c.passage.title}: {c.quote}" for c in result.citations)


# ----- OpenAI-compatible chat --------------------------------------------------------------


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        if not self.content:
            return ""
        return "".join(part.text or "" for part in self.content if part.type == "text")


class ChatRequest(BaseModel):
    """OpenAI's chat request; fields zhiku does not use (temperature, tools, ...) are accepted
    and ignored: answers are greedy and come from the knowledge base only."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=200, description="zhiku/<knowledge base>")
    messages: list[ChatMessage] = Field(min_length=1, max_length=200)
    stream: bool = False


class ChatMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: ChatMessageOut
    finish_reason: Literal["stop", "length"] = "stop"


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    zhiku: AnswerOut


class ModelOut(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "zhiku"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelOut]


# ----- search, knowledge bases, documents, jobs --------------------------------------------


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=2000)
    kb: str | None = Field(None, min_length=1, max_length=64, description="default: DEFAULT_KB")
    k: int = Field(5, ge=1, le=50, description="passages to return")


class SearchResponse(BaseModel):
    kb: str
    query: str
    passages: list[PassageOut]
    timings: dict[str, float]


class KbOut(BaseModel):
    name: str
    documents: int
    chunks: int
    embedding_model: str


def kb_out(info: KbInfo) -> KbOut:
    return KbOut(**info.__dict__)


class KbCreate(BaseModel):
    name: str = KbName


class DocumentOut(BaseModel):
    doc_id: str
    title: str
    source: str
    file: str
    doc_type: str
    sha256: str
    size: int
    pages: int
    chunks: int
    ingested_at: str
    updated_at: str


def document_out(d: DocumentRecord) -> DocumentOut:
    return DocumentOut(
        doc_id=d.doc_id,
        title=d.title,
        source=d.source,
        file=file_name(d.source),
        doc_type=d.doc_type,
        sha256=d.sha256,
        size=d.size,
        pages=d.pages,
        chunks=d.chunks,
        ingested_at=d.ingested_at,
        updated_at=d.updated_at,
    )


class FileResult(BaseModel):
    name: str = Field(description="the file name as uploaded")
    stored_name: str = Field(description="the name it was saved under ('' when rejected)")
    status: Literal["pending", "added", "updated", "skipped", "failed", "removed"]
    documents: int = 0
    chunks: int = 0
    reason: str = ""
    reason_zh: str = ""


def file_result(f: ImportedFile) -> FileResult:
    return FileResult(
        name=f.name,
        stored_name=f.stored_name,
        status=f.status,  # type: ignore[arg-type]
        documents=f.documents,
        chunks=f.chunks,
        reason=f.reason_en,
        reason_zh=f.reason_zh,
    )


class JobOut(BaseModel):
    id: str
    kind: Literal["upload", "reingest"]
    kb: str
    status: Literal["queued", "running", "done", "failed", "cancelled"]
    created_at: float
    started_at: float | None
    finished_at: float | None
    files_total: int
    files_done: int
    chunks_planned: int
    chunks_embedded: int
    files: list[FileResult]
    error: str | None
    error_zh: str | None


class Deleted(BaseModel):
    deleted: str


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class StatusOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    backend: str
    model: str
    backend_label: str
    embedding_model: str
    query_runtime: str
    knowledge_bases: list[dict[str, Any]]
    llm_queue: dict[str, int]
    caller: str
