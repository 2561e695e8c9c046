"""One engine for the app's records, created once per URL, its schema created or checked at start.

SQLite is the default because it needs no setup; PostgreSQL is for several app servers sharing one
truth (SQLite on a network share is not an option: its locking is unsafe there). Tables are
declared with SQLAlchemy Core on `metadata` by the modules that own them; this module only makes
sure they exist and that the database is not from a newer zhiku.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
import sqlalchemy.dialects.postgresql
from sqlalchemy.engine import Connection, Engine

from app.state.owners import add_author_column
from ingest.settings import Settings

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

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


class StateError(RuntimeError):
    def __init__(self, en: str, zh: str) -> None:
        super().__init__(en)
        self.en = en
        self.zh = zh


def state_url(settings: Settings) -> str:
    """The SQLAlchemy URL of the state database; a bare `postgresql://` means psycopg 3."""
    url = settings.state_url.strip()
    if url:
        for bare in ("postgresql://", "postgres://"):
            if url.startswith(bare):
                return "postgresql+psycopg://" + url[len(bare) :]
        return url
    return f"sqlite:///{(Path(settings.zhiku_home) / 'state.sqlite').resolve()}"


def _sqlite_connect(dbapi_connection: object, _record: object) -> None:
    # pysqlite's own BEGIN comes late (at the first write) and is always DEFERRED; SQLAlchemy's
    # documented recipe is to switch it off and emit BEGIN in the "begin" event (below), so that
    # a write transaction can take the write lock first (a DEFERRED one that read and then
    # writes fails at once when another process wrote meanwhile, the busy timeout unused).
    dbapi_connection.isolation_level = None  # type: ignore[attr-defined]
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    # WAL: readers never wait for the writer; the busy timeout makes writers of several
    # processes (web app, API, CLI) take turns instead of failing at once.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    write = connection.get_execution_options().get("zhiku_write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _create(url: str) -> Engine:
    if url.startswith("sqlite"):
        database = sa.engine.make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})
        sa.event.listen(engine, "connect", _sqlite_connect)
        sa.event.listen(engine, "begin", _sqlite_begin)
    else:
        engine = sa.create_engine(url, pool_pre_ping=True)
    return engine


def open_state(settings: Settings) -> Engine:
    """The engine of `settings`' state database, its tables created and its version checked."""
    url = state_url(settings)
    with _lock:
        engine = _engines.get(url)
        if engine is not None:
            return engine
        engine = _create(url)
        try:
            _migrate(engine)
        except sa.exc.OperationalError as exc:
            engine.dispose()
            raise StateError(
                f"cannot open the state database {engine.url.render_as_string()}: {exc.orig}",
                f"无法打开状态数据库 {engine.url.render_as_string()}:{exc.orig}",
            ) from exc
        _engines[url] = engine
        return engine


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: on SQLite it holds the write lock from its start (writers
    of several processes take turns); on PostgreSQL a plain transaction (rows that must not
    change under it are locked with SELECT … FOR UPDATE)."""
    with engine.connect() as connection:
        connection.execution_options(zhiku_write=True)
        with connection.begin():
            yield connection


def insert_or_ignore(table: sa.Table, connection: Connection) -> sa.Insert:
    """INSERT … ON CONFLICT DO NOTHING in the connection's dialect: two servers adding the same
    row at once both succeed, and the row is there once."""
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).on_conflict_do_nothing()


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
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
