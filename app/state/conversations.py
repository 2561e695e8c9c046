"""Conversations, their messages and the feedback on them, in the state database.

Plain records in, plain records out (an answer is the JSON dict the answering side made of it):
turning them into answers is `app._conversations`' job. A message's `extra` is a JSON dict for
what a later version keeps per message without a schema change.

A message's place in its conversation (`seq`) is assigned under a lock on the conversation's row
(SQLite: the write lock; PostgreSQL: SELECT … FOR UPDATE), so two servers or two tabs adding to one
conversation at once never collide.

A conversation has an author (`author_id`, `app/state/owners.py`); its messages and the feedback
on them are its author's too. The functions that list or change conversations take an `Owner` and
touch only what it holds, checked in the same transaction as the change.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from app.state.engine import Json, insert_or_ignore, metadata, writing
from app.state.owners import Owner, author_column

DEFAULT_TITLE = "新对话"


conversations = sa.Table(
    "conversations",
    metadata,
    sa.Column("kb", sa.String(128), primary_key=True),
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
    # the order of creation, for conversations updated in the same microsecond
    sa.Column("serial", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False),
    author_column(),  # None: made without accounts, or its author's account is deleted
)
sa.Index("conversations_by_update", conversations.c.kb, conversations.c.updated_at)
sa.Index("conversations_by_author", conversations.c.kb, conversations.c.author_id)


class NotYours(LookupError):
    """The conversation is another's (or there is none): the same to the caller, who must not
    learn which."""


messages = sa.Table(
    "messages",
    metadata,
    sa.Column("kb", sa.String(128), primary_key=True),
    sa.Column("conversation_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("question", sa.Text, nullable=False),
    sa.Column("result", Json),
    sa.Column("notices", Json, nullable=False),
    sa.Column("error", sa.Text, nullable=False, default=""),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("others", Json),
    sa.Column("extra", Json),
    sa.ForeignKeyConstraint(
        ["kb", "conversation_id"],
        [conversations.c.kb, conversations.c.id],
        ondelete="CASCADE",
    ),
)

feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("kb", sa.String(128), primary_key=True),
    sa.Column("conversation_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("score", sa.Integer, nullable=False),  # 1 👍, 0 👎
    sa.Column("note", sa.Text, nullable=False, default=""),
    sa.Column("correction", sa.Text, nullable=False, default=""),
    sa.Column("updated_at", sa.String(40), nullable=False),
    sa.ForeignKeyConstraint(
        ["kb", "conversation_id", "seq"],
        [messages.c.kb, messages.c.conversation_id, messages.c.seq],
        ondelete="CASCADE",
    ),
)


@dataclass(frozen=True)
class ConversationRow:
    id: str
    title: str
    created_at: str
    updated_at: str
    turns: int
    author_id: int | None = None


@dataclass
class MessageRow:
    question: str
    result: dict[str, Any] | None = None
    notices: list[str] = field(default_factory=list)
    error: str = ""
    feedback: dict[str, Any] | None = None  # {"score", "note", "correction"}
    created_at: str = ""
    others: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    seq: int | None = None


def _heads(kb: str) -> sa.Select[Any]:
    c, m = conversations, messages
    return (
        sa.select(
            c.c.id, c.c.title, c.c.created_at, c.c.updated_at, sa.func.count(m.c.seq), c.c.author_id
        )
        .select_from(c.outerjoin(m, sa.and_(m.c.kb == c.c.kb, m.c.conversation_id == c.c.id)))
        .where(c.c.kb == kb)
        .group_by(c.c.kb, c.c.id)
    )


def list_conversations(
    engine: Engine, kb: str, owner: Owner | None = None
) -> list[ConversationRow]:
    """Newest first: those `owner` holds (every one when `owner` is None)."""
    c = conversations
    query = _heads(kb).order_by(c.c.updated_at.desc(), c.c.serial.desc())
    if owner is not None:
        query = query.where(owner.where(c.c.author_id))
    with engine.connect() as connection:
        return [ConversationRow(*row) for row in connection.execute(query)]


def get_conversation(engine: Engine, kb: str, conversation_id: str) -> ConversationRow | None:
    """The conversation, whoever's it is (its `author_id` says)."""
    query = _heads(kb).where(conversations.c.id == conversation_id)
    with engine.connect() as connection:
        row = connection.execute(query).first()
    return ConversationRow(*row) if row is not None else None


def _next_serial(connection: Connection) -> int:
    return connection.execute(
        sa.select(sa.func.coalesce(sa.func.max(conversations.c.serial), 0) + 1)
    ).scalar_one()


def _ensure_conversation(
    connection: Connection,
    kb: str,
    conversation_id: str,
    title: str,
    now: str,
    author_id: int | None = None,
) -> None:
    connection.execute(
        insert_or_ignore(conversations, connection).values(
            kb=kb,
            id=conversation_id,
            title=title,
            created_at=now,
            updated_at=now,
            serial=_next_serial(connection),
            author_id=author_id,
        )
    )


def create_conversation(
    engine: Engine,
    kb: str,
    conversation_id: str,
    title: str,
    now: str,
    author_id: int | None = None,
) -> None:
    with writing(engine) as connection:
        _ensure_conversation(connection, kb, conversation_id, title, now, author_id)


def _lock_own(
    connection: Connection, kb: str, conversation_id: str, owner: Owner | None
) -> sa.Row[Any]:
    """The conversation's row, locked for this transaction; NotYours when there is none or
    `owner` does not hold it."""
    c = conversations
    row = connection.execute(
        sa.select(c.c.title, c.c.author_id)
        .where(c.c.kb == kb, c.c.id == conversation_id)
        .with_for_update()
    ).first()
    if row is None or (owner is not None and not owner.holds(row.author_id)):
        raise NotYours(conversation_id)
    return row


def append_message(
    engine: Engine,
    kb: str,
    conversation_id: str,
    message: MessageRow,
    title: str,
    now: str,
    author_id: int | None = None,
    owner: Owner | None = None,
) -> int:
    """Store `message` at the end of the conversation (created, titled `title`, by
    `author_id`, when missing; a conversation still of the default title takes `title`);
    returns its seq. NotYours, with nothing stored, when the conversation exists and `owner`
    does not hold it."""
    c, m = conversations, messages
    with writing(engine) as connection:
        _ensure_conversation(connection, kb, conversation_id, title, now, author_id)
        current = _lock_own(connection, kb, conversation_id, owner).title
        if current == DEFAULT_TITLE:
            connection.execute(
                sa.update(c).where(c.c.kb == kb, c.c.id == conversation_id).values(title=title)
            )
        seq = connection.execute(
            sa.select(sa.func.coalesce(sa.func.max(m.c.seq), -1) + 1).where(
                m.c.kb == kb, m.c.conversation_id == conversation_id
            )
        ).scalar_one()
        _insert_message(connection, kb, conversation_id, seq, message)
        connection.execute(
            sa.update(c).where(c.c.kb == kb, c.c.id == conversation_id).values(updated_at=now)
        )
    message.seq = seq
    return seq


def _insert_message(
    connection: Connection, kb: str, conversation_id: str, seq: int, message: MessageRow
) -> None:
    connection.execute(
        sa.insert(messages).values(
            kb=kb,
            conversation_id=conversation_id,
            seq=seq,
            question=message.question,
            result=message.result,
            notices=list(message.notices),
            error=message.error,
            created_at=message.created_at,
            others=message.others or None,
            extra=message.extra or None,
        )
    )
    if message.feedback is not None:
        _put_feedback(connection, kb, conversation_id, seq, message.feedback, message.created_at)


def _put_feedback(
    connection: Connection,
    kb: str,
    conversation_id: str,
    seq: int,
    verdict: dict[str, Any],
    now: str,
) -> None:
    f = feedback
    where = (f.c.kb == kb, f.c.conversation_id == conversation_id, f.c.seq == seq)
    connection.execute(sa.delete(f).where(*where))
    connection.execute(
        sa.insert(f).values(
            kb=kb,
            conversation_id=conversation_id,
            seq=seq,
            score=int(verdict["score"]),
            note=verdict.get("note") or "",
            correction=verdict.get("correction") or "",
            updated_at=now,
        )
    )


def list_messages(engine: Engine, kb: str, conversation_id: str) -> list[MessageRow]:
    m, f = messages, feedback
    query = (
        sa.select(
            m.c.seq,
            m.c.question,
            m.c.result,
            m.c.notices,
            m.c.error,
            m.c.created_at,
            m.c.others,
            m.c.extra,
            f.c.score,
            f.c.note,
            f.c.correction,
        )
        .select_from(
            m.outerjoin(
                f,
                sa.and_(
                    f.c.kb == m.c.kb, f.c.conversation_id == m.c.conversation_id, f.c.seq == m.c.seq
                ),
            )
        )
        .where(m.c.kb == kb, m.c.conversation_id == conversation_id)
        .order_by(m.c.seq)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return [
        MessageRow(
            question=row.question,
            result=row.result,
            notices=list(row.notices or []),
            error=row.error or "",
            feedback=(
                {"score": row.score, "note": row.note, "correction": row.correction}
                if row.score is not None
                else None
            ),
            created_at=row.created_at,
            others=row.others or {},
            extra=row.extra or {},
            seq=row.seq,
        )
        for row in rows
    ]


def rename_conversation(
    engine: Engine, kb: str, conversation_id: str, title: str, owner: Owner | None = None
) -> None:
    """NotYours when there is no such conversation or `owner` does not hold it."""
    c = conversations
    with writing(engine) as connection:
        _lock_own(connection, kb, conversation_id, owner)
        connection.execute(
            sa.update(c).where(c.c.kb == kb, c.c.id == conversation_id).values(title=title)
        )


def delete_conversation(
    engine: Engine, kb: str, conversation_id: str, owner: Owner | None = None
) -> None:
    """NotYours when there is no such conversation or `owner` does not hold it."""
    with writing(engine) as connection:
        _lock_own(connection, kb, conversation_id, owner)
        _delete(connection, kb, conversation_id)


def _delete(connection: Connection, kb: str, conversation_id: str | None = None) -> None:
    # children first: the cascade is declared, but SQLite only follows it with foreign_keys on
    for table in (feedback, messages):
        where = [table.c.kb == kb]
        if conversation_id is not None:
            where.append(table.c.conversation_id == conversation_id)
        connection.execute(sa.delete(table).where(*where))
    where = [conversations.c.kb == kb]
    if conversation_id is not None:
        where.append(conversations.c.id == conversation_id)
    connection.execute(sa.delete(conversations).where(*where))


def set_feedback(
    engine: Engine,
    kb: str,
    conversation_id: str,
    seq: int,
    verdict: dict[str, Any] | None,
    now: str,
    owner: Owner | None = None,
) -> bool:
    """Keep `verdict` on message `seq` (None takes it back); whether there is such a message
    (nothing is kept when not). NotYours when there is no such conversation or `owner` does not
    hold it."""
    m, f = messages, feedback
    with writing(engine) as connection:
        _lock_own(connection, kb, conversation_id, owner)
        exists = connection.execute(
            sa.select(m.c.seq).where(
                m.c.kb == kb, m.c.conversation_id == conversation_id, m.c.seq == seq
            )
        ).first()
        if verdict is None:
            connection.execute(
                sa.delete(f).where(
                    f.c.kb == kb, f.c.conversation_id == conversation_id, f.c.seq == seq
                )
            )
        elif exists is not None:
            _put_feedback(connection, kb, conversation_id, seq, verdict, now)
        return exists is not None


def update_message(
    engine: Engine, kb: str, conversation_id: str, message: MessageRow, now: str
) -> bool:
    """Rewrite the answer side of message `message.seq` (result, notices, error, others, extra),
    keeping its question, time and feedback: a turn stored when it was asked gets its answer.
    Returns False when the message is gone (its conversation was deleted meanwhile)."""
    m, c = messages, conversations
    where = (m.c.kb == kb, m.c.conversation_id == conversation_id, m.c.seq == message.seq)
    with writing(engine) as connection:
        changed = connection.execute(
            sa.update(m)
            .where(*where)
            .values(
                result=message.result,
                notices=list(message.notices),
                error=message.error,
                others=message.others or None,
                extra=message.extra or None,
            )
        ).rowcount
        if changed:
            connection.execute(
                sa.update(c).where(c.c.kb == kb, c.c.id == conversation_id).values(updated_at=now)
            )
    return bool(changed)


def kb_has_conversations(engine: Engine, kb: str) -> bool:
    with engine.connect() as connection:
        return (
            connection.execute(
                sa.select(conversations.c.id).where(conversations.c.kb == kb).limit(1)
            ).first()
            is not None
        )


def delete_kb_conversations(engine: Engine, kb: str) -> None:
    with writing(engine) as connection:
        _delete(connection, kb)


# ----- the files of earlier versions ---------------------------------------------------------


def import_sqlite_file(engine: Engine, kb: str, path: Path) -> int:
    """Copy the conversations of a per-knowledge-base SQLite file (zhiku before the state
    database: `<ZHIKU_HOME>/conversations/<kb>.sqlite`) into the state database; returns how many
    messages it held. A conversation already there is left as it is, so importing twice, or by
    two servers at once, adds nothing twice."""
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=15)
    try:
        heads = source.execute(
            "SELECT id, title, created_at, updated_at FROM conversations ORDER BY rowid"
        ).fetchall()
        columns = {row[1] for row in source.execute("PRAGMA table_info(turns)")}
        others = "others" if "others" in columns else "NULL"
        bodies = source.execute(
            "SELECT conversation_id, seq, question, result, notices, error, feedback, created_at, "
            f"{others} FROM turns ORDER BY conversation_id, seq"
        ).fetchall()
    finally:
        source.close()
    c = conversations
    with writing(engine) as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("LOCK TABLE conversations IN SHARE ROW EXCLUSIVE MODE"))
        present = set(connection.execute(sa.select(c.c.id).where(c.c.kb == kb)).scalars())
        # oldest first, so that the serials keep the file's order
        for conversation_id, title, created_at, updated_at in heads:
            if conversation_id in present:
                continue
            connection.execute(
                sa.insert(c).values(
                    kb=kb,
                    id=conversation_id,
                    title=title,
                    created_at=created_at,
                    updated_at=updated_at,
                    serial=_next_serial(connection),
                )
            )
        known = {head[0] for head in heads}
        for (
            conversation_id,
            seq,
            question,
            result,
            notices,
            error,
            verdict,
            created_at,
            more,
        ) in bodies:
            if conversation_id in present or conversation_id not in known:
                continue
            _insert_message(
                connection,
                kb,
                conversation_id,
                seq,
                MessageRow(
                    question=question,
                    result=_loads(result),
                    notices=_loads(notices) or [],
                    error=error or "",
                    feedback=_loads(verdict),
                    created_at=created_at,
                    others=_loads(more) or {},
                ),
            )
    return len(bodies)


def _loads(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        # kept as it was, so that reading it reports a record it cannot read, as before
        return {"unreadable": text}
