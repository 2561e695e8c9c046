"""The app's records in the state database, their schema created or checked at start.

The engine is the library's (`ingest.statedb`: one per URL, SQLite under the data home by default,
PostgreSQL for several app servers), so the app's records and the library's originals share one
pool. Tables are declared with SQLAlchemy Core on `metadata` by the modules that own them; this
module only makes sure they exist and that the database is not from a newer zhiku.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable

import sqlalchemy as sa
import sqlalchemy.dialects.postgresql
from sqlalchemy.engine import Connection, Engine

from app.state.owners import add_author_column
from ingest.settings import Settings
from ingest.statedb import (
    forget_state_engines,
    insert_or_ignore,
    state_engine,
    state_url,
    writing,
)

# re-exported: the app's table modules take them from here
__all__ = [
    "SCHEMA_VERSION",
    "Json",
    "StateError",
    "forget_engines",
    "insert_or_ignore",
    "metadata",
    "open_state",
    "state_url",
    "writing",
]

# Raised by one whenever a table or column is added, with a step in `_MIGRATIONS` that brings a
# database of the previous version up to it.
SCHEMA_VERSION = 3

metadata = sa.MetaData()

# a JSON column: text on SQLite, JSONB on PostgreSQL
Json = sa.JSON(none_as_null=True).with_variant(
    sa.dialects.postgresql.JSONB(none_as_null=True), "postgresql"
)

_version = sa.Table(
    "zhiku_schema",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
)

_migrated: weakref.WeakSet[Engine] = weakref.WeakSet()  # engines whose tables are made
_lock = threading.Lock()


class StateError(RuntimeError):
    def __init__(self, en: str, zh: str) -> None:
        super().__init__(en)
        self.en = en
        self.zh = zh


def open_state(settings: Settings) -> Engine:
    """The engine of `settings`' state database, its tables created and its version checked."""
    engine = state_engine(settings)
    with _lock:
        if engine in _migrated:
            return engine
        try:
            _migrate(engine)
        except sa.exc.OperationalError as exc:
            engine.dispose()
            raise StateError(
                f"cannot open the state database {engine.url.render_as_string()}: {exc.orig}",
                f"无法打开状态数据库 {engine.url.render_as_string()}:{exc.orig}",
            ) from exc
        _migrated.add(engine)
        return engine


def _tables_only(_connection: Connection) -> None:
    """A version that only adds tables: `create_all` (after the steps) makes them."""


def _authors(connection: Connection) -> None:
    """Conversations and evaluation cases get their author (app/state/owners.py); the rows
    already there are nobody's: the administrators'."""
    for name in ("conversations", "eval_cases"):
        add_author_column(connection, metadata.tables[name])


# version → the step that brings a database of the version before it up to it
_MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    2: _tables_only,  # sources and their sync history (app/state/sources.py)
    3: _authors,
}


def _migrate(engine: Engine) -> None:
    with writing(engine) as connection:
        if connection.dialect.name == "postgresql":
            # two servers starting at once: one creates the tables, the other waits and sees them
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(2026120601)"))
        metadata.create_all(connection, tables=[_version])
        row = connection.execute(sa.select(_version.c.version)).first()
        found = row[0] if row else None
        if found is not None and found > SCHEMA_VERSION:
            raise StateError(
                f"the state database is of schema version {found}, newer than this zhiku "
                f"({SCHEMA_VERSION}): update zhiku",
                f"状态数据库的结构版本为 {found},比当前知库支持的 {SCHEMA_VERSION} 新:请升级知库",
            )
        # create_all only adds missing tables, so a new table needs no step; a new column does
        for version in range((found or SCHEMA_VERSION) + 1, SCHEMA_VERSION + 1):
            _MIGRATIONS[version](connection)
        metadata.create_all(connection)
        if found is None:
            connection.execute(sa.insert(_version).values(id=1, version=SCHEMA_VERSION))
        elif found < SCHEMA_VERSION:
            connection.execute(sa.update(_version).values(version=SCHEMA_VERSION))


def forget_engines() -> None:
    """Close every engine (tests, and a process about to fork)."""
    with _lock:
        _migrated.clear()
    forget_state_engines()
