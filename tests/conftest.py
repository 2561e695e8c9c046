"""Shared fixtures: a throwaway data home per test, and the real embedding model loaded once.

Models are converted once into the repository's `.zhiku/models` (the folder `make run` uses), so
a fresh clone pays the conversion a single time for both the app and the tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from milvus_server import MilvusServer
from postgres_server import PostgresServer
from support import REPO, SHARED, SMALL_CORPUS, build_kb, make_settings

from app.state import engine as state_engine
from ingest._embed import Embedder, load_embedder
from ingest.settings import Settings

# Fixed runtimes for everything the tests start (the app under AppTest, servers and CLIs in
# subprocesses), as tests/support.py's settings: what `zhiku prepare` measured on this machine
# (`auto`) must not change what they load.
os.environ.setdefault("QUERY_RUNTIME", "onnx")
os.environ.setdefault("PASSAGE_RUNTIME", "onnx-int8")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "home")


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return load_embedder(make_settings(REPO / ".zhiku"))


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """`../shared` beside the repository: present here and in CI, absent on users' machines."""
    if not SHARED.is_dir():
        pytest.skip("../shared is not present (it only exists on the development machines)")
    yield SHARED


@pytest.fixture(scope="session")
def small_kb_settings(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Settings:
    """A knowledge base of three short documents, ingested once per test session."""
    home = tmp_path_factory.mktemp("small") / "home"
    settings = make_settings(home)
    build_kb(settings, embedder, SMALL_CORPUS, name=settings.default_kb)
    return settings


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusServer]:
    """The real Milvus core on 127.0.0.1, once per session (skips when it cannot start)."""
    server = MilvusServer(tmp_path_factory.mktemp("milvus"))
    if not server.start():
        pytest.skip(f"Milvus cannot run here: {server.why_not}")
    yield server
    server.stop()


@pytest.fixture
def milvus_settings(tmp_path: Path, milvus_server: MilvusServer) -> Iterator[Settings]:
    """Settings of the Milvus store on the test server; every collection is dropped after."""
    yield make_settings(
        tmp_path / "home",
        vector_store="milvus",
        milvus_uri=milvus_server.uri,
        milvus_index_type="FLAT",
    )
    milvus_server.drop_all()


@pytest.fixture(params=["faiss", "milvus"])
def store_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The same test against each store."""
    if request.param == "milvus":
        return request.getfixturevalue("milvus_settings")
    return settings


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """Debian's PostgreSQL on 127.0.0.1, once per session (skips when it cannot start)."""
    server = PostgresServer()
    if not server.start():
        pytest.skip(f"PostgreSQL cannot run here: {server.why_not}")
    yield server
    state_engine.forget_engines()
    server.stop()


@pytest.fixture
def postgres_settings(tmp_path: Path, postgres_server: PostgresServer) -> Iterator[Settings]:
    """Settings whose state lives in a fresh PostgreSQL database, dropped after the test."""
    url = postgres_server.create_database()
    yield make_settings(tmp_path / "home", state_url=url)
    state_engine.forget_engines()
    postgres_server.drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def state_settings(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Settings]:
    """The same test against each state engine: SQLite under the data home, and PostgreSQL."""
    if request.param == "postgresql":
        yield request.getfixturevalue("postgres_settings")
        return
    yield settings
    state_engine.forget_engines()


@pytest.fixture
def zhiku(tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Run `zhiku ...` in-process against a throwaway data home (the embedder fixture keeps the
    model loaded, so the commands reuse it); no politeness pause between web requests."""
    from typer.testing import CliRunner

    from app.cli import cli
    from ingest.settings import get_settings

    monkeypatch.setenv("ZHIKU_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ZHIKU_MODELS_DIR", str(REPO / ".zhiku" / "models"))
    monkeypatch.setenv("LLM_BACKEND", "none")
    monkeypatch.setenv("WEB_DELAY_S", "0")
    monkeypatch.chdir(tmp_path)  # no developer .env is read
    runner = CliRunner()

    def run(*args: str) -> Any:
        get_settings.cache_clear()
        return runner.invoke(cli, list(args), catch_exceptions=False)

    yield run
    get_settings.cache_clear()
