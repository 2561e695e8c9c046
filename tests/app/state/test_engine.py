"""The state engine: tables created once, a database of a newer zhiku refused with the reason, an
older one brought up to date (version 3: authors of conversations and evaluation cases, a step
that can run twice); on SQLite under the data home and on PostgreSQL alike."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from support import make_settings

from app.state import SCHEMA_VERSION, StateError, open_state, state_url
from app.state import engine as state_engine
from app.state.accounts import Accounts
from app.state.conversations import create_conversation, list_conversations
from app.state.engine import Json
from app.state.owners import Owner
from ingest.settings import Settings


@pytest.fixture(autouse=True)
def _fresh_engines() -> None:
    state_engine.forget_engines()


def test_a_new_home_gets_a_sqlite_database_under_it(tmp_path: Path) -> None:
    open_state(make_settings(tmp_path / "home"))
    assert (tmp_path / "home" / "state.sqlite").is_file()


def test_a_new_database_is_versioned(state_settings: Settings) -> None:
    engine = open_state(state_settings)
    with engine.connect() as connection:
        version = connection.execute(sa.text("SELECT version FROM zhiku_schema")).scalar_one()
    assert version == SCHEMA_VERSION
    assert open_state(state_settings) is engine  # one engine per database


def test_opening_again_is_idempotent(state_settings: Settings) -> None:
    open_state(state_settings)
    state_engine.forget_engines()
    engine = open_state(state_settings)
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT count(*) FROM zhiku_schema")).scalar_one()
    assert rows == 1


def test_a_database_of_a_newer_zhiku_is_refused(state_settings: Settings) -> None:
    engine = open_state(state_settings)
    with engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE zhiku_schema SET version = :v"), {"v": SCHEMA_VERSION + 1}
        )
    state_engine.forget_engines()
    with pytest.raises(StateError) as raised:
        open_state(state_settings)
    assert "newer" in raised.value.en and "升级" in raised.value.zh


def test_a_bare_postgresql_url_means_psycopg(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home", state_url="postgresql://zk@db:5432/zhiku")
    assert state_url(settings) == "postgresql+psycopg://zk@db:5432/zhiku"


def test_an_unreachable_server_is_named(tmp_path: Path) -> None:
    from milvus_server import free_port

    url = f"postgresql://zk@127.0.0.1:{free_port()}/zhiku"
    with pytest.raises(StateError) as raised:
        open_state(make_settings(tmp_path / "home", state_url=url))
    assert "cannot open the state database" in raised.value.en and "无法打开" in raised.value.zh


def _version_2_database(settings: Settings) -> None:
    """The conversations and evaluation cases of a zhiku of schema version 2 (no author, and
    no people table yet in a database that began at version 1), one row each."""
    old = sa.MetaData()
    sa.Table(
        "zhiku_schema",
        old,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("version", sa.Integer),
    )
    sa.Table(
        "conversations",
        old,
        sa.Column("kb", sa.String(128), primary_key=True),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
        sa.Column("serial", sa.Integer, nullable=False),
    )
    sa.Table(
        "eval_cases",
        old,
        sa.Column("kb", sa.String(128), primary_key=True),
        sa.Column("qid", sa.String(64), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("case", Json, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    settings.zhiku_home.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(state_url(settings))
    with engine.begin() as connection:
        old.create_all(connection)
        now = "2026-12-01T10:00:00+00:00"
        connection.execute(old.tables["zhiku_schema"].insert().values(id=1, version=2))
        connection.execute(
            old.tables["conversations"]
            .insert()
            .values(kb="default", id="c1", title="旧对话", created_at=now, updated_at=now, serial=1)
        )
        connection.execute(
            old.tables["eval_cases"]
            .insert()
            .values(kb="default", qid="fb-1", position=1, case={"qid": "fb-1"}, updated_at=0.0)
        )
    engine.dispose()


def _authored(engine: sa.Engine, table: str) -> tuple[bool, bool, list[object]]:
    """Whether `table` has its author column and index, and its rows' authors."""
    inspector = sa.inspect(engine)
    column = "author_id" in {c["name"] for c in inspector.get_columns(table)}
    index = f"{table}_by_author" in {i["name"] for i in inspector.get_indexes(table)}
    with engine.connect() as connection:
        authors = connection.execute(sa.text(f"SELECT author_id FROM {table}")).scalars().all()
    return column, index, authors


def _version(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.text("SELECT version FROM zhiku_schema")).scalar_one()


def test_a_version_2_database_gets_authors_and_the_step_can_run_again(
    state_settings: Settings,
) -> None:
    _version_2_database(state_settings)
    engine = open_state(state_settings)
    assert _version(engine) == SCHEMA_VERSION == 3
    for table in ("conversations", "eval_cases"):
        assert _authored(engine, table) == (True, True, [None])  # the old rows: nobody's
    # nobody's are the admins': an admin's listing has them, a person's does not
    assert [c.id for c in list_conversations(engine, "default", Owner(1, ownerless=True))] == ["c1"]
    assert list_conversations(engine, "default", Owner(1)) == []
    # the step again on a database that has its column (say one whose version row was put
    # back) changes nothing and fails nothing
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE zhiku_schema SET version = 2"))
    state_engine.forget_engines()
    again = open_state(state_settings)
    assert _version(again) == 3
    for table in ("conversations", "eval_cases"):
        assert _authored(again, table) == (True, True, [None])
    # and the column holds a person's id like a new database's
    person = Accounts(state_settings).create("ed", "correct horse battery", "reader")
    create_conversation(again, "default", "c2", "新", "2026-12-07T10:00:00+00:00", person.id)
    assert [c.id for c in list_conversations(again, "default", Owner(person.id))] == ["c2"]
