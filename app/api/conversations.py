"""A person's conversations with a knowledge base: `/v1/knowledge_bases/{kb}/conversations/...`
(list, read with every turn's answer, citations and feedback as data, export, delete, the
feedback on an answer set or taken back), and the JSON form of a conversation that the MCP
server shares.

The routes check nothing themselves: the service's conversation methods (`app/_authored.py`) do.
A conversation is its author's; an admin may read another's (audited, never changed); to
anybody else it does not exist (404 `not_found`, "找不到这个对话或你无权查看"), exactly as a
conversation that does not exist. Read on the knowledge base comes first (403 otherwise).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from app._conversations import Conversation, Feedback, Turn
from app.access import Principal
from app.api.auth import Who
from app.api.schemas import AnswerOut, Deleted, answer_out, answer_text
from app.service import OpenedConversation, Service, ServiceError

router = APIRouter(prefix="/v1/knowledge_bases/{kb}/conversations", tags=["conversations"])


class ConversationOut(BaseModel):
    id: str
    title: str
    created_at: str
    updated_at: str
    turns: int = Field(description="how many questions it holds")


def conversation_out(c: Conversation) -> ConversationOut:
    return ConversationOut(
        id=c.id, title=c.title, created_at=c.created_at, updated_at=c.updated_at, turns=c.turns
    )


class FeedbackOut(BaseModel):
    score: int = Field(description="1: 👍 (the answer is right), 0: 👎")
    note: str
    correction: str = Field(description="the right answer, as the person wrote it (for 👎)")


class FeedbackIn(BaseModel):
    score: Literal[0, 1] = Field(description="1: 👍 (the answer is right), 0: 👎")
    note: str = Field("", max_length=2000)
    correction: str = Field(
        "", max_length=8000, description="the right answer, as the person writes it (for 👎)"
    )


class FeedbackSet(BaseModel):
    conversation: str
    seq: int
    feedback: FeedbackOut | None = Field(description="what is kept now (None: taken back)")


def feedback_out(f: Feedback | None) -> FeedbackOut | None:
    if f is None:
        return None
    return FeedbackOut(score=f.score, note=f.note, correction=f.correction)


class TurnOut(BaseModel):
    seq: int | None = Field(description="its place in the conversation")
    question: str
    created_at: str
    text: str = Field(description="the answer as shown (the `answer` alone, with [n] markers)")
    answer: AnswerOut | None = Field(
        description="the stored answer: citations, evidence, refusal flag (None: no answer)"
    )
    others: dict[str, AnswerOut] = Field(
        description="answers to the same question from other knowledge bases asked at once"
    )
    notices: list[str]
    error: str = Field(description="why there is no answer (in Chinese), if so")
    incomplete: bool = Field(description="the answer was cut off; `partial` is what was shown")
    partial: str
    feedback: FeedbackOut | None


def turn_out(t: Turn) -> TurnOut:
    return TurnOut(
        seq=t.seq,
        question=t.question,
        created_at=t.created_at,
        text=answer_text(t.result) if t.result is not None else "",
        answer=answer_out(t.result) if t.result is not None else None,
        others={name: answer_out(r) for name, r in t.others.items()},
        notices=list(t.notices),
        error=t.error,
        incomplete=t.incomplete,
        partial=t.partial,
        feedback=feedback_out(t.feedback),
    )


class ConversationDetail(BaseModel):
    id: str
    kb: str
    title: str
    created_at: str
    updated_at: str
    own: bool = Field(
        description="false: an admin reading another's conversation (read only, audited)"
    )
    author: str | None = Field(description="the author's name when it is not the caller")
    turns: list[TurnOut]


def conversation_detail(kb: str, opened: OpenedConversation) -> ConversationDetail:
    c = opened.conversation
    return ConversationDetail(
        id=c.id,
        kb=kb,
        title=c.title,
        created_at=c.created_at,
        updated_at=c.updated_at,
        own=opened.own,
        author=None if opened.own else (opened.author or None),
        turns=[turn_out(t) for t in opened.turns],
    )


def _service(request: Request) -> Service:
    return request.app.state.service


@router.get("", response_model=list[ConversationOut])
def list_conversations(kb: str, request: Request, who: Who) -> list[ConversationOut]:
    """The caller's own conversations with the knowledge base, newest first (never another's,
    an admin's listing included)."""
    return [conversation_out(c) for c in _service(request).conversations(who, kb)]


@router.get("/{conversation_id}", response_model=ConversationDetail)
def get_conversation(
    kb: str, conversation_id: str, request: Request, who: Who
) -> ConversationDetail:
    """A conversation with every turn: the question, the answer with its citations and
    evidence as data, and the feedback on it. Another's conversation is 404, as one that does
    not exist; an admin reads it (`own: false`), and the read is in the audit log."""
    return conversation_detail(kb, _service(request).open_conversation(who, kb, conversation_id))


@router.get(
    "/{conversation_id}/export",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/markdown": {}, "application/json": {}}}},
)
def export_conversation(
    kb: str,
    conversation_id: str,
    request: Request,
    who: Who,
    format: Literal["markdown", "json"] = Query("markdown", description="markdown or json"),
) -> PlainTextResponse:
    """The conversation as a file for notes: Markdown (answers, evidence and sources, as the
    web app exports it) or zhiku's JSON export. The same rule as reading it; every export is
    in the audit log."""
    body = _service(request).export_conversation(who, kb, conversation_id, format)
    if format == "json":
        media, suffix = "application/json", "json"
    else:
        media, suffix = "text/markdown; charset=utf-8", "md"
    disposition = f'attachment; filename="conversation-{conversation_id}.{suffix}"'
    return PlainTextResponse(body, media_type=media, headers={"Content-Disposition": disposition})


@router.delete("/{conversation_id}", response_model=Deleted)
def delete_conversation(kb: str, conversation_id: str, request: Request, who: Who) -> Deleted:
    """Delete one of the caller's own conversations (an admin cannot delete another's: 404)."""
    _service(request).delete_conversation(who, kb, conversation_id)
    return Deleted(deleted=conversation_id)


def set_feedback(
    service: Service, who: Principal, kb: str, conversation_id: str, seq: int, f: Feedback | None
) -> FeedbackSet:
    """`Service.set_feedback`, with a turn that is not there refused as not found (the service
    keeps nothing then and says so); the API and MCP share it."""
    if not service.set_feedback(who, kb, conversation_id, seq, f):
        raise ServiceError(
            "not_found",
            f"conversation {conversation_id!r} has no turn {seq}",
            f"这个对话中没有第 {seq} 轮问答",
        )
    return FeedbackSet(conversation=conversation_id, seq=seq, feedback=feedback_out(f))


TurnSeq = Annotated[int, Path(ge=0, description="the turn's `seq` in the conversation")]


@router.put("/{conversation_id}/turns/{seq}/feedback", response_model=FeedbackSet)
def put_feedback(
    kb: str, conversation_id: str, seq: TurnSeq, body: FeedbackIn, request: Request, who: Who
) -> FeedbackSet:
    """Say whether an answer of one of the caller's own conversations is right (👍 1, 👎 0),
    with a note and the right answer; it replaces what was said before. Another's conversation
    (an admin's reading included), an unknown one or a turn it does not have: 404."""
    f = Feedback(body.score, body.note, body.correction)
    return set_feedback(_service(request), who, kb, conversation_id, seq, f)


@router.delete("/{conversation_id}/turns/{seq}/feedback", response_model=FeedbackSet)
def delete_feedback(
    kb: str, conversation_id: str, seq: TurnSeq, request: Request, who: Who
) -> FeedbackSet:
    """Take back the feedback on an answer of one of the caller's own conversations."""
    return set_feedback(_service(request), who, kb, conversation_id, seq, None)


__all__ = [
    "ConversationDetail",
    "ConversationOut",
    "FeedbackIn",
    "FeedbackSet",
    "conversation_detail",
    "conversation_out",
    "router",
    "set_feedback",
]
