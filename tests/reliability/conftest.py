"""Fixtures of the reliability suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from zygote_client import Zygote


@pytest.fixture(scope="session")
def zygote(embedder: object) -> Iterator[Zygote]:
    """One process that has loaded the model and forks real ingestions (the embedder fixture
    makes sure the model is converted first)."""
    spawner = Zygote()
    yield spawner
    spawner.close()
