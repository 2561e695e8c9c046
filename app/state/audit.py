"""The audit log: who wrote what, when and from where, append-only.

One row per write (upload, re-ingestion, removal, deletion, creation of a knowledge base), per
administrative act (people, grants, keys), per admin's open of another's conversation and per
refused or failed login or request. Rows are only ever inserted: nothing in zhiku updates or
deletes them. `zhiku audit` lists them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from app.access import Principal
from app.state.engine import metadata, open_state
from ingest.settings import Settings

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.String(32), nullable=False, index=True),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(50), nullable=False),
    sa.Column("kb", sa.String(200), nullable=True),
    sa.Column("target", sa.Text, nullable=True),
    sa.Column("outcome", sa.String(10), nullable=False),  # ok / refused / failed
    sa.Column("origin", sa.String(200), nullable=True),
    sa.Column("detail", sa.Text, nullable=True),
)


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: str
    actor: str
    action: str
    kb: str | None
    target: str | None
    outcome: str
    origin: str | None
    detail: str | None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _at(moment: datetime) -> str:
    # one width and zone for every row, so that the text compares as the time does
    return moment.isoformat(timespec="milliseconds")


class AuditLog:
    def __init__(self, settings: Settings) -> None:
        self.engine = open_state(settings)

    def record(
        self,
        actor: Principal | str,
        action: str,
        kb: str | None = None,
        target: str | None = None,
        outcome: str = "ok",
        origin: str | None = None,
        detail: object = None,
    ) -> None:
        if isinstance(actor, Principal):
            origin = origin or actor.origin
            actor = actor.label
        text = detail if isinstance(detail, str) or detail is None else json.dumps(detail)
        with self.engine.begin() as connection:
            connection.execute(
                sa.insert(audit_log).values(
                    at=_at(datetime.now(UTC)),
                    actor=actor,
                    action=action,
                    kb=kb,
                    target=target,
                    outcome=outcome,
                    origin=origin or None,
                    detail=text,
                )
            )

    def recorded_within(
        self, seconds: float, actor: Principal, action: str, kb: str | None, target: str
    ) -> bool:
        """Whether `actor` (from the same address) has a row for `action` on `target` in the
        last `seconds`."""
        t = audit_log
        since = _at(datetime.now(UTC) - timedelta(seconds=seconds))
        query = sa.select(t.c.id).where(
            t.c.actor == actor.label,
            t.c.action == action,
            t.c.kb == kb if kb is not None else t.c.kb.is_(None),
            t.c.target == target,
            t.c.origin == actor.origin if actor.origin else t.c.origin.is_(None),
            t.c.at >= since,
        )
        with self.engine.connect() as connection:
            return connection.execute(query.limit(1)).first() is not None

    def entries(
        self, limit: int | None = None, actor: str | None = None, kb: str | None = None
    ) -> list[AuditEntry]:
        """The newest entries first."""
        query = sa.select(audit_log).order_by(audit_log.c.id.desc())
        if actor:
            query = query.where(audit_log.c.actor == actor)
        if kb:
            query = query.where(audit_log.c.kb == kb)
        if limit:
            query = query.limit(limit)
        with self.engine.connect() as connection:
            return [AuditEntry(**row._mapping) for row in connection.execute(query)]


__all__ = ["AuditEntry", "AuditLog", "audit_log"]
