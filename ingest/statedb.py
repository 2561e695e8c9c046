"""The connection to the state database (`STATE_URL`): one SQLAlchemy engine per URL in a process,
shared by the app's records (`app.state`) and the library's originals (`ingest._blobs`).

SQLite (the default, `<ZHIKU_HOME>/state.sqlite`) needs no setup; PostgreSQL is for several app
servers sharing one truth (SQLite on a network share is not an option: its locking is unsafe
there). Each owner declares its tables on a `MetaData` of its own and creates them; this module
only makes and keeps the engines.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ingest.settings import Settings

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def state_url(settings: Settings) -> str:
    """The SQLAlchemy URL of the state database; a bare `postgresql://` means psycopg 3."""
    url = settings.state_url.strip()
    if url:
        for bare in ("postgresql://", "postgres://"):
            if url.startswith(bare):
                return "postgresql+psycopg://" + url[len(bare) :]
        return url
    return f"sqlite:///{(Path(settings.zhiku_home) / 'state.sqlite').resolve()}"


def is_postgresql(settings: Settings) -> bool:
    return state_url(settings).startswith("postgresql")


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


def state_engine(settings: Settings) -> Engine:
    """The engine of `settings`' state database (no tables made: their owners make them)."""
    url = state_url(settings)
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = _create(url)
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


def forget_state_engines() -> None:
    """Close every engine (tests, a database about to be dropped, a process about to fork)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


__all__ = [
    "forget_state_engines",
    "insert_or_ignore",
    "is_postgresql",
    "state_engine",
    "state_url",
    "writing",
]
