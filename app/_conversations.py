"""Conversations with a knowledge base: each turn stored with its whole answer (the answer, the
evidence quoted under it, citations, passages, spans) as JSON, so a reload, an app restart or
another app server reopens it exactly as it was shown. The records live in the state database
(`app/state/conversations.py`: SQLite under the data home, or the PostgreSQL every server
shares); this module turns them into turns and answers, and exports them.

The per-knowledge-base SQLite files of earlier versions (`<ZHIKU_HOME>/conversations/<kb>.sqlite`)
are imported at the first open and kept beside as `<kb>.sqlite.imported`.

The store records who made a conversation and, given an `Owner`, lists and changes only what it
holds; who may hold what is `app.access`'s rule, applied by the service (`app/_authored.py`).
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from app._export import export_markdown
from app._llm import BackendInfo
from app.answer import AnswerResult, Citation, EvidenceQuote, Passage
from app.state import conversations as records
from app.state import open_state
from app.state.owners import Owner
from ingest.settings import Settings
from ingest.store import validate_kb_name

log = logging.getLogger(__name__)

CONVERSATIONS_DIR = "conversations"
TITLE_CHARS = 30
FORMAT_VERSION = 1
INCOMPLETE_ZH = "（回答未完成）"


@dataclass
class Feedback:
    """A user's verdict on one answer: 1 👍, 0 👎, with a note and (for 👎) the right answer."""

    score: int
    note: str = ""
    correction: str = ""


@dataclass
class Turn:
    """One question and its finished answer."""

    question: str
    result: AnswerResult | None = None
    notices: list[str] = field(default_factory=list)
    error: str = ""  # a failure outside answer(), already in Chinese
    feedback: Feedback | None = None
    seq: int | None = None  # its place in the stored conversation, once stored
    created_at: str = ""
    # answers to the same question from other knowledge bases asked at once, by name
    others: dict[str, AnswerResult] = field(default_factory=dict)
    # stored when asked and not answered yet, or cut off (the app stopped mid-answer); `partial`
    # is what was streamed by then. Kept in the message's `extra`.
    incomplete: bool = False
    partial: str = ""


@dataclass(frozen=True)
class Conversation:
    id: str
    title: str
    created_at: str
    updated_at: str
    turns: int
    author_id: int | None = None  # None: nobody's (made without accounts, or author deleted)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def title_of(question: str) -> str:
    flat = " ".join(question.split())
    return flat[:TITLE_CHARS] + ("…" if len(flat) > TITLE_CHARS else "") or "新对话"


# ----- answers to and from JSON -------------------------------------------------------------


def passage_from_dict(data: dict[str, Any]) -> Passage:
    values = dict(data)
    for name in ("chunk_ids", "headings", "window", "window_header", "focus"):
        if name in values and values[name] is not None:
            values[name] = tuple(values[name])
    known = Passage.__dataclass_fields__
    return Passage(**{k: v for k, v in values.items() if k in known})


def result_from_dict(data: dict[str, Any]) -> AnswerResult:
    """The inverse of `AnswerResult.to_dict`; fields added later get their defaults."""
    values = dict(data)
    backend = values.get("backend") or {}
    values["backend"] = BackendInfo(backend.get("kind", "none"), backend.get("model", ""))
    values["passages"] = [passage_from_dict(p) for p in values.get("passages") or []]
    values["citations"] = [
        Citation(
            c["number"], passage_from_dict(c["passage"]), c["span_start"], c["span_end"], c["quote"]
        )
        for c in values.get("citations") or []
    ]
    if "evidence_quotes" in values:
        values["evidence_quotes"] = [EvidenceQuote(**q) for q in values["evidence_quotes"] or []]
    else:
        values["answer"], values["evidence_quotes"] = _split_quote(
            str(values.get("answer") or ""), values["citations"]
        )
    known = AnswerResult.__dataclass_fields__
    return AnswerResult(**{k: v for k, v in values.items() if k in known})


_OLD_QUOTE = "\n\n原文：\n\n"


def _split_quote(answer: str, citations: list[Citation]) -> tuple[str, list[EvidenceQuote]]:
    """An answer stored before the evidence was kept apart had it appended ("…\n\n原文：\n\n>
    sentence[n]"): split it off again, so history, export and follow-ups read the answer."""
    if _OLD_QUOTE not in answer:
        return answer, []
    said, quoted = answer.split(_OLD_QUOTE, 1)
    by_number = {c.number: c for c in citations}
    quotes = []
    for group, line in enumerate(quoted.split("\n\n")):
        text = line.removeprefix("> ")
        for sentence, marker in re.findall(r"(.*?)\[(\d+)\]", text):
            citation = by_number.get(int(marker))
            if citation is None:
                continue
            p = citation.passage
            quotes.append(
                EvidenceQuote(
                    citation.number,
                    sentence,
                    p.number,
                    p.doc_id,
                    p.title,
                    p.page,
                    citation.span_start,
                    citation.span_end,
                    group,
                )
            )
    return said, quotes


def turn_to_dict(turn: Turn) -> dict[str, Any]:
    return {
        "question": turn.question,
        "result": turn.result.to_dict() if turn.result is not None else None,
        "notices": list(turn.notices),
        "error": turn.error,
        "feedback": turn.feedback.__dict__ if turn.feedback is not None else None,
        "created_at": turn.created_at,
        "others": {name: result.to_dict() for name, result in turn.others.items()},
        **({"incomplete": True, "partial": turn.partial} if turn.incomplete else {}),
    }


def _row_of(turn: Turn) -> records.MessageRow:
    data = turn_to_dict(turn)
    return records.MessageRow(
        question=turn.question,
        result=data["result"],
        notices=data["notices"],
        error=turn.error,
        feedback=data["feedback"],
        created_at=turn.created_at,
        others=data["others"],
        extra={"incomplete": True, "partial": turn.partial} if turn.incomplete else {},
        seq=turn.seq,
    )


# ----- the store ----------------------------------------------------------------------------


def conversations_path(settings: Settings, kb_name: str) -> Path:
    """Where zhiku kept a knowledge base's conversations before the state database: imported
    into it at the first open, then kept beside as `<kb>.sqlite.imported`."""
    return settings.zhiku_home / CONVERSATIONS_DIR / f"{validate_kb_name(kb_name)}.sqlite"


def _legacy_files(settings: Settings, kb_name: str) -> list[Path]:
    path = conversations_path(settings, kb_name)
    return [
        Path(f"{base}{suffix}")
        for base in (path, path.with_name(f"{path.name}.imported"))
        for suffix in ("", "-wal", "-shm")
    ]


def _import_legacy(settings: Settings, engine: Engine, kb_name: str) -> None:
    path = conversations_path(settings, kb_name)
    if not path.is_file():
        return
    try:
        records.import_sqlite_file(engine, kb_name, path)
        path.rename(path.with_name(f"{path.name}.imported"))
    except FileNotFoundError:  # another process imported it meanwhile
        return
    except sqlite3.DatabaseError as exc:
        # not a conversations file (or a damaged one): left in place, reported, never lost
        log.warning("conversations file %s could not be imported: %s", path, exc)


def _turn_of(row: records.MessageRow) -> Turn:
    error = row.error
    try:
        answer = result_from_dict(row.result) if row.result else None
        more = {name: result_from_dict(data) for name, data in row.others.items()}
    except (TypeError, KeyError, ValueError, AttributeError):
        # a turn written by another version: the question stays, the answer is named
        answer, more, error = None, {}, error or "这条回答的保存格式无法读取。"
    return Turn(
        row.question,
        answer,
        list(row.notices),
        error,
        Feedback(**row.feedback) if row.feedback else None,
        row.seq,
        row.created_at,
        more,
        incomplete=bool(row.extra.get("incomplete")),
        partial=str(row.extra.get("partial") or ""),
    )


def _conversation(row: records.ConversationRow) -> Conversation:
    return Conversation(row.id, row.title, row.created_at, row.updated_at, row.turns, row.author_id)


class ConversationStore:
    """The conversations with one knowledge base, kept in the state database (`app.state`)."""

    def __init__(self, settings: Settings, kb_name: str) -> None:
        self.kb_name = validate_kb_name(kb_name)
        self.engine = open_state(settings)
        _import_legacy(settings, self.engine, self.kb_name)

    def list(self, owner: Owner | None = None) -> list[Conversation]:
        """Newest first: those `owner` holds (every one when `owner` is None)."""
        return [
            _conversation(c) for c in records.list_conversations(self.engine, self.kb_name, owner)
        ]

    def get(self, conversation_id: str) -> Conversation | None:
        """The conversation, whoever's it is (its `author_id` says)."""
        found = records.get_conversation(self.engine, self.kb_name, conversation_id)
        return _conversation(found) if found is not None else None

    def create(self, title: str = records.DEFAULT_TITLE, author_id: int | None = None) -> str:
        conversation_id = uuid.uuid4().hex[:12]
        records.create_conversation(
            self.engine, self.kb_name, conversation_id, title, _now(), author_id
        )
        return conversation_id

    def append(
        self,
        conversation_id: str,
        turn: Turn,
        author_id: int | None = None,
        owner: Owner | None = None,
    ) -> int:
        """Store `turn` at the end of the conversation (created by `author_id` when missing);
        returns its seq. The first question names a conversation that still has the default
        title. `records.NotYours` when the conversation is there and `owner` does not hold it."""
        now = _now()
        turn.created_at = turn.created_at or now
        row = _row_of(turn)
        seq = records.append_message(
            self.engine,
            self.kb_name,
            conversation_id,
            row,
            title_of(turn.question),
            now,
            author_id,
            owner,
        )
        turn.seq = seq
        return seq

    def update(self, conversation_id: str, turn: Turn) -> bool:
        """Store the answer side of the stored `turn` (its seq set) as it is now; its question
        and feedback stay. False when the turn is gone (its conversation was deleted)."""
        assert turn.seq is not None, "only a stored turn can be updated"
        return records.update_message(
            self.engine, self.kb_name, conversation_id, _row_of(turn), _now()
        )

    def turns(self, conversation_id: str) -> list[Turn]:
        return [
            _turn_of(row)
            for row in records.list_messages(self.engine, self.kb_name, conversation_id)
        ]

    # rename, delete and set_feedback: `records.NotYours` when there is no such conversation
    # or `owner` does not hold it

    def rename(self, conversation_id: str, title: str, owner: Owner | None = None) -> None:
        title = " ".join(title.split())[:80] or records.DEFAULT_TITLE
        records.rename_conversation(self.engine, self.kb_name, conversation_id, title, owner)

    def delete(self, conversation_id: str, owner: Owner | None = None) -> None:
        records.delete_conversation(self.engine, self.kb_name, conversation_id, owner)

    def set_feedback(
        self,
        conversation_id: str,
        seq: int,
        feedback: Feedback | None,
        owner: Owner | None = None,
    ) -> bool:
        """Keep `feedback` on turn `seq` (None takes it back); whether there is such a turn."""
        verdict = dict(feedback.__dict__) if feedback is not None else None
        return records.set_feedback(
            self.engine, self.kb_name, conversation_id, seq, verdict, _now(), owner
        )


def kb_has_conversations(settings: Settings, kb_name: str) -> bool:
    """Whether anything of the knowledge base's conversations is kept, imported or not."""
    if any(path.exists() for path in _legacy_files(settings, kb_name)):
        return True
    return records.kb_has_conversations(open_state(settings), validate_kb_name(kb_name))


def delete_kb_conversations(settings: Settings, kb_name: str) -> None:
    records.delete_kb_conversations(open_state(settings), validate_kb_name(kb_name))
    for path in _legacy_files(settings, kb_name):
        path.unlink(missing_ok=True)


# ----- export -------------------------------------------------------------------------------


def export_json(conversation: Conversation, turns: list[Turn]) -> str:
    return json.dumps(
        {
            "format": "zhiku-conversation",
            "version": FORMAT_VERSION,
            "id": conversation.id,
            "title": conversation.title,
            "created_at": conversation.created_at,
            "updated_at": conversation.updated_at,
            "turns": [turn_to_dict(t) for t in turns],
        },
        ensure_ascii=False,
        indent=2,
    )


def export_conversation_markdown(conversation: Conversation, turns: list[Turn]) -> str:
    parts = [f"# {conversation.title}", "", f"*{conversation.created_at}*", ""]
    for turn in turns:
        if turn.result is not None:
            parts.append(export_markdown(turn.question, turn.result))
            for name, result in turn.others.items():
                parts += [f"**知识库「{name}」:**", "", export_markdown(turn.question, result)]
        else:
            said = f"{turn.partial}\n\n{INCOMPLETE_ZH}" if turn.incomplete else ""
            parts += [f"**问:** {turn.question}", "", turn.error or said or "(没有回答)", ""]
        parts.append("---")
        parts.append("")
    return "\n".join(parts).rstrip("-\n ") + "\n"
