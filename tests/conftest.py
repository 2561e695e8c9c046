"""Shared fixtures: a throwaway data home per test, and the real embedding model loaded once.

Models are converted once into the repository's `.zhiku/models` (the folder `make run` uses), so
a fresh clone pays the conversion a single time for both the app and the tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest._embed import Embedder, load_embedder
from ingest.settings import Settings

REPO = Path(__file__).resolve().parents[1]
MODELS_DIR = REPO / ".zhiku" / "models"
SHARED = REPO.parent / "shared"


def make_settings(home: Path, **overrides: object) -> Settings:
    """Settings that ignore the developer's .env and environment-specific defaults."""
    values: dict[str, object] = {
        "zhiku_home": home,
        "zhiku_models_dir": MODELS_DIR,
        "llm_backend": "none",
        "lock_timeout_s": 10.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


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
