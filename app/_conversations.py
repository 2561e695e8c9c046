"""Conversations kept on disk: one SQLite file per knowledge base under the data home
(`<ZHIKU_HOME>/conversations/<kb>.sqlite`). A turn is stored with its whole answer (the answer,
the evidence quoted under it, citations, passages, spans) as JSON, so a reload or an app restart
reopens it exactly as it was shown.

Every call opens its own short connection in WAL mode: several browser tabs and several app
processes read and write the same file; a turn's position is assigned inside an IMMEDIATE
transaction, so two tabs adding to one conversation never collide.
"""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app._export import export_markdown
from app._llm import BackendInfo
from app._passages import Passage
from app._rag import AnswerResult, Citation, EvidenceQuote
from ingest._store import validate_kb_name
from ingest.settings import Settings

CONVERSATIONS_DIR = "conversations"
TITLE_CHARS = 30
FORMAT_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS turns (
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    question TEXT NOT NULL,
    result TEXT,
    notices TEXT NOT NULL,
    error TEXT NOT NULL,
    feedback TEXT,
    created_at TEXT NOT NULL,
    others TEXT,
    PRIMARY KEY (conversation_id, seq)
);
"""


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


@dataclass(frozen=True)
class Conversation:
    id: str
    title: str
    created_at: str
    updated_at: str
    turns: int


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
    }


# ----- the store ----------------------------------------------------------------------------


def conversations_path(settings: Settings, kb_name: str) -> Path:
    return settings.zhiku_home / CONVERSATIONS_DIR / f"{validate_kb_name(kb_name)}.sqlite"


class ConversationStore:
    """The conversations with one knowledge base."""

    def __init__(self, settings: Settings, kb_name: str) -> None:
        self.kb_name = kb_name
        self.path = conversations_path(settings, kb_name)

    @contextmanager
    def _connect(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=15, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.executescript(_SCHEMA)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(turns)")}
            if "others" not in columns:  # a file from before several bases could be asked
                conn.execute("ALTER TABLE turns ADD COLUMN others TEXT")
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    def list(self) -> list[Conversation]:
        """Newest first."""
        if not self.path.is_file():
            return []
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT c.id, c.title, c.created_at, c.updated_at, count(t.seq) "
                "FROM conversations c "
                "LEFT JOIN turns t ON t.conversation_id = c.id GROUP BY c.id "
                "ORDER BY c.updated_at DESC, c.rowid DESC"
            ).fetchall()
        return [Conversation(*row) for row in rows]

    def get(self, conversation_id: str) -> Conversation | None:
        return next((c for c in self.list() if c.id == conversation_id), None)

    def create(self, title: str = "新对话") -> str:
        conversation_id = uuid.uuid4().hex[:12]
        now = _now()
        with self._connect(write=True) as conn:
            conn.execute(
                "INSERT INTO conversations VALUES (?, ?, ?, ?)",
                (conversation_id, title, now, now),
            )
        return conversation_id

    def append(self, conversation_id: str, turn: Turn) -> int:
        """Store `turn` at the end of the conversation (created when missing); returns its seq.
        The first question names a conversation that still has the default title."""
        now = _now()
        turn.created_at = turn.created_at or now
        data = turn_to_dict(turn)
        with self._connect(write=True) as conn:
            exists = conn.execute(
                "SELECT title FROM conversations WHERE id = ?", (conversation_id,)
            ).fetchone()
            if exists is None:
                conn.execute(
                    "INSERT INTO conversations VALUES (?, ?, ?, ?)",
                    (conversation_id, title_of(turn.question), now, now),
                )
            elif exists[0] == "新对话":
                conn.execute(
                    "UPDATE conversations SET title = ? WHERE id = ?",
                    (title_of(turn.question), conversation_id),
                )
            seq = conn.execute(
                "SELECT coalesce(max(seq), -1) + 1 FROM turns WHERE conversation_id = ?",
                (conversation_id,),
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO turns VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    conversation_id,
                    seq,
                    turn.question,
                    json.dumps(data["result"], ensure_ascii=False) if turn.result else None,
                    json.dumps(turn.notices, ensure_ascii=False),
                    turn.error,
                    json.dumps(data["feedback"], ensure_ascii=False) if turn.feedback else None,
                    turn.created_at,
                    json.dumps(data["others"], ensure_ascii=False) if turn.others else None,
                ),
            )
            conn.execute(
                "UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id)
            )
        turn.seq = seq
        return seq

    def turns(self, conversation_id: str) -> list[Turn]:
        if not self.path.is_file():
            return []
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT seq, question, result, notices, error, feedback, created_at, others "
                "FROM turns "
                "WHERE conversation_id = ? ORDER BY seq",
                (conversation_id,),
            ).fetchall()
        turns = []
        for seq, question, result, notices, error, feedback, created_at, others in rows:
            try:
                answer = result_from_dict(json.loads(result)) if result else None
                more = {
                    name: result_from_dict(data)
                    for name, data in (json.loads(others) if others else {}).items()
                }
            except (TypeError, KeyError, ValueError):
                # a turn written by another version: the question stays, the answer is named
                answer, more, error = None, {}, error or "这条回答的保存格式无法读取。"
            turns.append(
                Turn(
                    question,
                    answer,
                    json.loads(notices),
                    error,
                    Feedback(**json.loads(feedback)) if feedback else None,
                    seq,
                    created_at,
                    more,
                )
            )
        return turns

    def rename(self, conversation_id: str, title: str) -> None:
        title = " ".join(title.split())[:80] or "新对话"
        with self._connect(write=True) as conn:
            conn.execute(
                "UPDATE conversations SET title = ? WHERE id = ?", (title, conversation_id)
            )

    def delete(self, conversation_id: str) -> None:
        with self._connect(write=True) as conn:
            conn.execute("DELETE FROM turns WHERE conversation_id = ?", (conversation_id,))
            conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    def set_feedback(self, conversation_id: str, seq: int, feedback: Feedback | None) -> None:
        value = json.dumps(feedback.__dict__, ensure_ascii=False) if feedback else None
        with self._connect(write=True) as conn:
            conn.execute(
                "UPDATE turns SET feedback = ? WHERE conversation_id = ? AND seq = ?",
                (value, conversation_id, seq),
            )


def delete_kb_conversations(settings: Settings, kb_name: str) -> None:
    path = conversations_path(settings, kb_name)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


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
            parts += [f"**问:** {turn.question}", "", turn.error or "(没有回答)", ""]
        parts.append("---")
        parts.append("")
    return "\n".join(parts).rstrip("-\n ") + "\n"
