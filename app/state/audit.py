"""The audit log: who wrote what, when and from where, append-only.

One row per write (upload, re-ingestion, removal, deletion, creation of a knowledge base), per
administrative act (people, grants, keys), per admin's open of another's conversation and per
refused or failed login or request. Rows are only ever inserted: nothing in zhiku updates or
deletes them. `zhiku audit` lists them; the web app's 成员与权限 page filters, pages and exports
them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
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
        self,
        limit: int | None = None,
        actor: str | None = None,
        kb: str | None = None,
        *,
        query: AuditQuery | None = None,
        offset: int = 0,
    ) -> list[AuditEntry]:
        """The newest entries first (those `query` selects, `actor` and `kb` narrowing it)."""
        query = replace(query or AuditQuery(), **_given(actor=actor, kb=kb))
        select = _where(sa.select(audit_log), query).order_by(audit_log.c.id.desc())
        if limit:
            select = select.limit(limit)
        if offset:
            select = select.offset(offset)
        with self.engine.connect() as connection:
            return [AuditEntry(**row._mapping) for row in connection.execute(select)]

    def count(self, query: AuditQuery | None = None) -> int:
        select = _where(sa.select(sa.func.count()).select_from(audit_log), query or AuditQuery())
        with self.engine.connect() as connection:
            return int(connection.execute(select).scalar_one())

    def facets(self) -> AuditFacets:
        """The actors, actions and knowledge bases the log names, for a filter to offer."""
        with self.engine.connect() as connection:

            def distinct(column: sa.Column) -> list[str]:
                rows = connection.execute(
                    sa.select(column).where(column.is_not(None)).distinct().order_by(column)
                )
                return [value for (value,) in rows]

            return AuditFacets(
                distinct(audit_log.c.actor), distinct(audit_log.c.action), distinct(audit_log.c.kb)
            )


@dataclass(frozen=True)
class AuditQuery:
    """Which rows: each filter given narrows (None: any). `since` and `until` are moments
    (timezone-aware), `since` included, `until` not."""

    actor: str | None = None
    action: str | None = None
    kb: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def as_dict(self) -> dict[str, str]:
        """The filters given, as text (for the audit row of an export)."""
        return {
            name: value.isoformat() if isinstance(value, datetime) else str(value)
            for name, value in asdict(self).items()
            if value is not None
        }


@dataclass(frozen=True)
class AuditFacets:
    actors: list[str]
    actions: list[str]
    kbs: list[str]


def _given(**values: str | None) -> dict[str, str]:
    return {name: value for name, value in values.items() if value}


def _where(select: sa.Select, query: AuditQuery) -> sa.Select:
    t = audit_log
    for column, value in (
        (t.c.actor, query.actor),
        (t.c.action, query.action),
        (t.c.kb, query.kb),
        (t.c.outcome, query.outcome),
    ):
        if value:
            select = select.where(column == value)
    # `at` is UTC text of one width: compared as text, it compares as the time does
    if query.since is not None:
        select = select.where(t.c.at >= _at(query.since.astimezone(UTC)))
    if query.until is not None:
        select = select.where(t.c.at < _at(query.until.astimezone(UTC)))
    return select


__all__ = ["AuditEntry", "AuditFacets", "AuditLog", "AuditQuery", "audit_log"]
