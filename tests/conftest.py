"""Shared fixtures: a throwaway data home per test, and the real embedding model loaded once.

Models are converted once into the repository's `.zhiku/models` (the folder `make run` uses), so
a fresh clone pays the conversion a single time for both the app and the tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import REPO, SHARED, SMALL_CORPUS, build_kb, make_settings

from ingest._embed import Embedder, load_embedder
from ingest.settings import Settings


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
