"""The state engine: tables created once, a database of a newer zhiku refused with the reason;
on SQLite under the data home and on PostgreSQL alike."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from support import make_settings

from app.state import SCHEMA_VERSION, StateError, open_state, state_url
from app.state import engine as state_engine
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
