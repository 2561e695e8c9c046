"""Sources (web pages, sites, folders bound to a knowledge base), their sync history and the
lease that lets one sync of a source run at a time, in the state database.

Plain records in, plain records out: a source is the JSON dict `app.sources.model` makes of it
(`id`, `kb`, `kind`, `location`, `schedule`, `created_at`, `max_depth`, `max_pages`, `pages`,
`history`); turning them into `Source`s is that module's job. A sync record is a row of its own
in `source_syncs`, so recording a sync and changing a source's settings write different columns
and rows and never undo each other, whichever server does which.

The sync lease is two columns of the source's row: the owner (host, pid and a random part) and
when the lease runs out. A server syncing a source renews it well before then; a server killed
mid-sync stops renewing, and once its lease has run out another may take it.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from app.state.engine import Json, insert_or_ignore, metadata, writing

sources = sa.Table(
    "sources",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("kb", sa.String(128), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),  # folder / page / site
    sa.Column("location", sa.Text, nullable=False),  # the URL, or the folder's resolved path
    sa.Column("schedule", Json, nullable=False),  # {"every_s", "at", "watch"}
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("max_depth", sa.Integer),
    sa.Column("max_pages", sa.Integer),
    sa.Column("pages", Json, nullable=False),  # {url: what the syncs know of it}
    # the order sources were added in, which is the order they are listed in
    sa.Column("serial", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False),
    sa.Column("lease_owner", sa.String(200)),  # the sync running now, if any
    sa.Column("lease_until", sa.Float),  # time.time() after which the lease is free
)

source_syncs = sa.Table(
    "source_syncs",
    metadata,
    sa.Column(
        "source_id",
        sa.String(32),
        sa.ForeignKey("sources.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("record", Json, nullable=False),  # a SyncRecord as a JSON dict
)

Lease = Literal["taken", "held", "gone"]


def _source(row: sa.RowMapping, history: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "kb": row["kb"],
        "kind": row["kind"],
        "location": row["location"],
        "schedule": row["schedule"] or {},
        "created_at": row["created_at"],
        "max_depth": row["max_depth"],
        "max_pages": row["max_pages"],
        "pages": row["pages"] or {},
        "history": history,
    }


def list_sources(
    engine: Engine, kb: str | None = None, source_id: str | None = None
) -> list[dict[str, Any]]:
    """Sources with their history (oldest sync first): of one knowledge base, one source, or
    all, by knowledge base and then in the order they were added."""
    # ordered here, not by the database: PostgreSQL's collation would order names its own way
    query = sa.select(sources)
    syncs = sa.select(source_syncs.c.source_id, source_syncs.c.record).order_by(
        source_syncs.c.source_id, source_syncs.c.seq
    )
    if kb is not None:
        query = query.where(sources.c.kb == kb)
        syncs = syncs.join(sources, sources.c.id == source_syncs.c.source_id).where(
            sources.c.kb == kb
        )
    if source_id is not None:
        query = query.where(sources.c.id == source_id)
        syncs = syncs.where(source_syncs.c.source_id == source_id)
    with engine.connect() as connection:
        rows = connection.execute(query).mappings().all()
        history: dict[str, list[dict[str, Any]]] = {}
        for sid, record in connection.execute(syncs):
            history.setdefault(sid, []).append(record)
    rows = sorted(rows, key=lambda row: (row["kb"], row["serial"], row["id"]))
    return [_source(row, history.get(row["id"], [])) for row in rows]


def source_kbs(engine: Engine) -> list[str]:
    """The knowledge bases that have sources."""
    with engine.connect() as connection:
        return sorted(connection.execute(sa.select(sources.c.kb).distinct()).scalars())


def _insert(connection: Connection, data: dict[str, Any], kept: int) -> bool:
    serial = connection.execute(
        sa.select(sa.func.coalesce(sa.func.max(sources.c.serial), 0) + 1)
    ).scalar_one()
    added = connection.execute(
        insert_or_ignore(sources, connection)
        .values(
            id=data["id"],
            kb=data["kb"],
            kind=data["kind"],
            location=data["location"],
            schedule=data.get("schedule") or {},
            created_at=data.get("created_at") or "",
            max_depth=data.get("max_depth"),
            max_pages=data.get("max_pages"),
            pages=data.get("pages") or {},
            serial=serial,
        )
        # the row it added, if it did (psycopg's rowcount of an INSERT is no guide here)
        .returning(sources.c.id)
    ).first()
    history = list(data.get("history") or ())[-kept:] if kept > 0 else []
    if added and history:
        connection.execute(
            sa.insert(source_syncs),
            [
                {"source_id": data["id"], "seq": seq, "record": record}
                for seq, record in enumerate(history, 1)
            ],
        )
    return added is not None


def add_source(engine: Engine, data: dict[str, Any], kept: int) -> bool:
    """Add a source (with the last `kept` syncs of its history, if it brings one); False when
    a source of that id is there already (another server may have added it a moment before)."""
    with writing(engine) as connection:
        return _insert(connection, data, kept)


def import_sources(engine: Engine, rows: list[dict[str, Any]], kept: int) -> int:
    """Add the sources of an earlier version's file in one transaction, those already there
    left as they are; returns how many were added."""
    with writing(engine) as connection:
        return sum(_insert(connection, data, kept) for data in rows)


def update_settings(
    engine: Engine,
    source_id: str,
    schedule: dict[str, Any],
    max_depth: int | None,
    max_pages: int | None,
) -> bool:
    """Change a source's schedule and crawl limits (its pages and history untouched)."""
    with writing(engine) as connection:
        return bool(
            connection.execute(
                sa.update(sources)
                .where(sources.c.id == source_id)
                .values(schedule=schedule, max_depth=max_depth, max_pages=max_pages)
            ).rowcount
        )


def remove_source(engine: Engine, source_id: str) -> bool:
    with writing(engine) as connection:
        connection.execute(sa.delete(source_syncs).where(source_syncs.c.source_id == source_id))
        removed = connection.execute(sa.delete(sources).where(sources.c.id == source_id))
        return bool(removed.rowcount)


def delete_kb_sources(engine: Engine, kb: str) -> int:
    """Remove every source of a knowledge base with its history; returns how many."""
    with writing(engine) as connection:
        ids = sa.select(sources.c.id).where(sources.c.kb == kb).scalar_subquery()
        connection.execute(sa.delete(source_syncs).where(source_syncs.c.source_id.in_(ids)))
        return connection.execute(sa.delete(sources).where(sources.c.kb == kb)).rowcount


def record_sync(
    engine: Engine,
    source_id: str,
    pages: dict[str, Any] | None,
    record: dict[str, Any],
    kept: int,
) -> bool:
    """Store a finished sync: the pages' new state (None: unchanged) and its record, the
    history cut to the last `kept`. False when the source was removed meanwhile."""
    with writing(engine) as connection:
        # the source's row locked (PostgreSQL; SQLite holds its write lock already), so two
        # records of one source take turns for the next place in its history
        found = connection.execute(
            sa.select(sources.c.id).where(sources.c.id == source_id).with_for_update()
        ).first()
        if found is None:
            return False
        if pages is not None:
            connection.execute(
                sa.update(sources).where(sources.c.id == source_id).values(pages=pages)
            )
        seq = connection.execute(
            sa.select(sa.func.coalesce(sa.func.max(source_syncs.c.seq), 0) + 1).where(
                source_syncs.c.source_id == source_id
            )
        ).scalar_one()
        connection.execute(
            sa.insert(source_syncs).values(source_id=source_id, seq=seq, record=record)
        )
        connection.execute(
            sa.delete(source_syncs).where(
                source_syncs.c.source_id == source_id, source_syncs.c.seq <= seq - kept
            )
        )
        return True


# ----- the sync lease -------------------------------------------------------------------------


def take_lease(engine: Engine, source_id: str, owner: str, seconds: float) -> Lease:
    """Take the source's sync lease for `seconds`: "taken", "held" (by a sync whose lease has
    not run out) or "gone" (no such source)."""
    now = time.time()
    with writing(engine) as connection:
        # one statement: on PostgreSQL a second server's UPDATE waits for the first to commit
        # and then finds the lease held
        taken = connection.execute(
            sa.update(sources)
            .where(
                sources.c.id == source_id,
                sa.or_(sources.c.lease_owner.is_(None), sources.c.lease_until < now),
            )
            .values(lease_owner=owner, lease_until=now + seconds)
        ).rowcount
        if taken:
            return "taken"
        there = connection.execute(sa.select(sources.c.id).where(sources.c.id == source_id))
        return "held" if there.first() is not None else "gone"


def renew_lease(engine: Engine, source_id: str, owner: str, seconds: float) -> bool:
    """Push the lease's end `seconds` on; False when `owner` no longer holds it."""
    with writing(engine) as connection:
        return bool(
            connection.execute(
                sa.update(sources)
                .where(sources.c.id == source_id, sources.c.lease_owner == owner)
                .values(lease_until=time.time() + seconds)
            ).rowcount
        )


def free_lease(engine: Engine, source_id: str, owner: str) -> None:
    with writing(engine) as connection:
        connection.execute(
            sa.update(sources)
            .where(sources.c.id == source_id, sources.c.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
        )


def lease_holder(engine: Engine, source_id: str) -> tuple[str, float] | None:
    """Who holds the source's sync lease and until when, if anyone (expired or not)."""
    with engine.connect() as connection:
        row = connection.execute(
            sa.select(sources.c.lease_owner, sources.c.lease_until).where(
                sources.c.id == source_id, sources.c.lease_owner.is_not(None)
            )
        ).first()
    return (row[0], row[1]) if row is not None else None


__all__ = [
    "Lease",
    "add_source",
    "delete_kb_sources",
    "free_lease",
    "import_sources",
    "lease_holder",
    "list_sources",
    "record_sync",
    "remove_source",
    "renew_lease",
    "source_kbs",
    "source_syncs",
    "sources",
    "take_lease",
    "update_settings",
]
