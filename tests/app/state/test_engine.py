"""The state engine: tables created once, a database of a newer zhiku refused with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from support import make_settings

from app.state import SCHEMA_VERSION, StateError, open_state
from app.state import engine as state_engine


@pytest.fixture(autouse=True)
def _fresh_engines() -> None:
    state_engine.forget_engines()


def test_a_new_home_gets_a_versioned_sqlite_database(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home")
    engine = open_state(settings)
    assert (tmp_path / "home" / "state.sqlite").is_file()
    with engine.connect() as connection:
        version = connection.execute(sa.text("SELECT version FROM zhiku_schema")).scalar_one()
    assert version == SCHEMA_VERSION
    assert open_state(settings) is engine  # one engine per database


def test_opening_again_is_idempotent(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home")
    open_state(settings)
    state_engine.forget_engines()
    engine = open_state(settings)
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT count(*) FROM zhiku_schema")).scalar_one()
    assert rows == 1


def test_a_database_of_a_newer_zhiku_is_refused(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home")
    engine = open_state(settings)
    with engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE zhiku_schema SET version = :v"), {"v": SCHEMA_VERSION + 1}
        )
    state_engine.forget_engines()
    with pytest.raises(StateError) as raised:
        open_state(settings)
    assert "newer" in raised.value.en and "升级" in raised.value.zh
