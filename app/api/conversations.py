"""A person's conversations with a knowledge base: `/v1/knowledge_bases/{kb}/conversations/...`
(list, read with every turn's answer, citations and feedback as data, export, delete), and the
JSON form of a conversation that the MCP server shares.

The routes check nothing themselves: the service's conversation methods (`app/_authored.py`) do.
A conversation is its author's; an admin may read another's (audited, never changed); to
anybody else it does not exist (404 `not_found`, "找不到这个对话或你无权查看"), exactly as a
conversation that does not exist. Read on the knowledge base comes first (403 otherwise).
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from app._conversations import Conversation, Feedback, Turn
from app.api.auth import Who
from app.api.schemas import AnswerOut, Deleted, answer_out, answer_text
from app.service import OpenedConversation, Service

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


__all__ = [
    "ConversationDetail",
    "ConversationOut",
    "conversation_detail",
    "conversation_out",
    "router",
]
