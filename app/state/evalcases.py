"""Evaluation cases made from feedback, per knowledge base, in the state database.

Plain records (the dict `Case.as_json` makes); `app._evalset` turns them into cases and
exports them as files `zhiku eval` reads. A case saved again goes to the end of its set, as
a case written last.

A case has an author (`author_id`, `app/state/owners.py`): given an `Owner`, loading and removing
see only the cases it holds, and saving never replaces another's case.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from app.state.engine import Json, metadata, writing
from app.state.owners import Owner, author_column

eval_cases = sa.Table(
    "eval_cases",
    metadata,
    sa.Column("kb", sa.String(128), primary_key=True),
    sa.Column("qid", sa.String(64), primary_key=True),
    sa.Column("position", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False),
    sa.Column("case", Json, nullable=False),  # the `zhiku eval` question record
    sa.Column("updated_at", sa.Float, nullable=False),
    author_column(),  # None: made without accounts, or its author's account is deleted
)
sa.Index("eval_cases_by_author", eval_cases.c.kb, eval_cases.c.author_id)


class TakenByAnother(ValueError):
    """A case of that qid is another's: saving would replace it."""


def load(engine: Engine, kb: str, owner: Owner | None = None) -> list[dict[str, Any]]:
    """The cases in order: those `owner` holds (every one when `owner` is None)."""
    t = eval_cases
    query = sa.select(t.c.case).where(t.c.kb == kb).order_by(t.c.position)
    if owner is not None:
        query = query.where(owner.where(t.c.author_id))
    with engine.connect() as connection:
        return [dict(row) for row in connection.execute(query).scalars()]


def _put(
    connection: Connection, kb: str, case: dict[str, Any], author_id: int | None = None
) -> bool:
    t = eval_cases
    where = (t.c.kb == kb, t.c.qid == str(case["qid"]))
    if connection.dialect.name == "postgresql":  # two servers saving the same question at once
        connection.execute(sa.select(t.c.qid).where(t.c.kb == kb).with_for_update())
    held = connection.execute(sa.select(t.c.author_id).where(*where)).first()
    if held is not None and held.author_id != author_id:
        raise TakenByAnother(str(case["qid"]))
    removed = connection.execute(sa.delete(t).where(*where)).rowcount
    position = connection.execute(
        sa.select(sa.func.coalesce(sa.func.max(t.c.position), 0) + 1).where(t.c.kb == kb)
    ).scalar_one()
    connection.execute(
        sa.insert(t).values(
            kb=kb,
            qid=str(case["qid"]),
            position=position,
            case=case,
            updated_at=time.time(),
            author_id=author_id,
        )
    )
    return not removed


def save(engine: Engine, kb: str, case: dict[str, Any], author_id: int | None = None) -> bool:
    """Add `case` by `author_id` at the end (their case with the same qid is replaced);
    returns whether it was new. TakenByAnother when that qid is another author's case."""
    with writing(engine) as connection:
        return _put(connection, kb, case, author_id)


def save_all(engine: Engine, kb: str, cases: list[dict[str, Any]]) -> None:
    """Add cases in order (an import of an earlier version's file)."""
    with writing(engine) as connection:
        for case in cases:
            _put(connection, kb, case)


def remove(engine: Engine, kb: str, qid: str, owner: Owner | None = None) -> bool:
    """Remove the case when `owner` holds it (any case when None); whether one was removed."""
    t = eval_cases
    query = sa.delete(t).where(t.c.kb == kb, t.c.qid == qid)
    if owner is not None:
        query = query.where(owner.where(t.c.author_id))
    with writing(engine) as connection:
        return bool(connection.execute(query).rowcount)


def delete_kb(engine: Engine, kb: str) -> None:
    with writing(engine) as connection:
        connection.execute(sa.delete(eval_cases).where(eval_cases.c.kb == kb))


def count(engine: Engine, kb: str) -> int:
    t = eval_cases
    with engine.connect() as connection:
        return connection.execute(
            sa.select(sa.func.count()).select_from(t).where(t.c.kb == kb)
        ).scalar_one()
