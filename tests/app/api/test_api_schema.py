"""Schemathesis against the OpenAPI spec the server publishes: requests generated from every
operation's schema (valid and not) never get a 5xx, and every error is JSON. In process (the
ASGI app over the real model and a real knowledge base, no LLM), a bounded, fixed set of
examples per operation."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from support import SMALL_CORPUS, build_kb, make_settings

from app.api import create_app
from app.service import Service
from ingest._embed import Embedder

pytestmark = pytest.mark.timeout(600)

# The schema is read when the module loads (schemathesis' lazy `from_fixture` does not run on
# pytest 9); the knowledge base behind it is built by the fixture below, before any request.
_HOME = Path(tempfile.mkdtemp(prefix="zhiku-schema-")) / "home"
_SETTINGS = make_settings(_HOME, max_file_mb=1.0, max_upload_mb=2.0)
_SERVICE = Service(_SETTINGS)
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(_SETTINGS, _SERVICE))


@pytest.fixture(scope="module", autouse=True)
def knowledge_base(embedder: Embedder) -> Iterator[None]:
    build_kb(_SETTINGS, embedder, SMALL_CORPUS, name="default")
    yield
    _SERVICE.close()
    shutil.rmtree(_HOME.parent, ignore_errors=True)


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # the same examples every run: a failure here is reproducible
)
def test_no_generated_request_gets_a_server_error(case: schemathesis.Case) -> None:
    response = case.call()
    assert response.status_code < 500, (case.method, case.formatted_path, response.text[:500])
    if response.status_code >= 400:
        assert "error" in response.json(), response.text[:500]
