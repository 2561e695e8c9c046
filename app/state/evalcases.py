"""Evaluation cases made from feedback, per knowledge base, in the state database.

Plain records (the dict `Case.as_json` makes); `app._evalset` turns them into cases and
exports them as files `zhiku eval` reads. A case saved again goes to the end of its set, as
a case written last.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from app.state.engine import Json, metadata, writing

eval_cases = sa.Table(
    "eval_cases",
    metadata,
    sa.Column("kb", sa.String(128), primary_key=True),
    sa.Column("qid", sa.String(64), primary_key=True),
    sa.Column("position", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False),
    sa.Column("case", Json, nullable=False),  # the `zhiku eval` question record
    sa.Column("updated_at", sa.Float, nullable=False),
)


def load(engine: Engine, kb: str) -> list[dict[str, Any]]:
    t = eval_cases
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(t.c.case).where(t.c.kb == kb).order_by(t.c.position)
        ).scalars()
        return [dict(row) for row in rows]


def _put(connection: Connection, kb: str, case: dict[str, Any]) -> bool:
    t = eval_cases
    where = (t.c.kb == kb, t.c.qid == str(case["qid"]))
    if connection.dialect.name == "postgresql":  # two servers saving the same question at once
        connection.execute(sa.select(t.c.qid).where(t.c.kb == kb).with_for_update())
    removed = connection.execute(sa.delete(t).where(*where)).rowcount
    position = connection.execute(
        sa.select(sa.func.coalesce(sa.func.max(t.c.position), 0) + 1).where(t.c.kb == kb)
    ).scalar_one()
    connection.execute(
        sa.insert(t).values(
            kb=kb, qid=str(case["qid"]), position=position, case=case, updated_at=time.time()
        )
    )
    return not removed


def save(engine: Engine, kb: str, case: dict[str, Any]) -> bool:
    """Add `case` at the end (one with the same qid is replaced); returns whether it was new."""
    with writing(engine) as connection:
        return _put(connection, kb, case)


def save_all(engine: Engine, kb: str, cases: list[dict[str, Any]]) -> None:
    """Add cases in order (an import of an earlier version's file)."""
    with writing(engine) as connection:
        for case in cases:
            _put(connection, kb, case)


def remove(engine: Engine, kb: str, qid: str) -> None:
    t = eval_cases
    with writing(engine) as connection:
        connection.execute(sa.delete(t).where(t.c.kb == kb, t.c.qid == qid))


def delete_kb(engine: Engine, kb: str) -> None:
    with writing(engine) as connection:
        connection.execute(sa.delete(eval_cases).where(eval_cases.c.kb == kb))


def count(engine: Engine, kb: str) -> int:
    t = eval_cases
    with engine.connect() as connection:
        return connection.execute(
            sa.select(sa.func.count()).select_from(t).where(t.c.kb == kb)
        ).scalar_one()
