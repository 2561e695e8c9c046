"""Crash safety of the Milvus store: real ingestion processes SIGKILLed at random moments while
they write to the real Milvus core, at least 20 times. After every kill `zhiku kb check` must
pass and every document must be whole in its old version, whole in its new one, or absent:
never both, never a part. A killed writer's lease is passed by after MILVUS_LEASE_S (short
here), and what it left half-written is finished or undone by the next writer or the check."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from milvus_server import MilvusServer
from test_crash import TRIGGERS, expected_chunks, write_corpus
from typer.testing import CliRunner
from zygote_client import KB, MODELS, Zygote

from app.cli import cli
from ingest.settings import Settings, get_settings
from ingest.store import KnowledgeBase


def interrupted_writes(settings: Settings) -> int:
    """Writes a killed process left half-done (their intents are still in the catalog)."""
    with KnowledgeBase.open(settings, KB, create=True) as kb:
        return len(kb._catalog_query('kind == "intent"', ["key"]))


def check_consistent(settings: Settings, versions: dict[str, list[list[str]]]) -> None:
    get_settings.cache_clear()
    env = {
        "ZHIKU_HOME": str(settings.zhiku_home),
        "VECTOR_STORE": "milvus",
        "MILVUS_URI": settings.milvus_uri,
        "MILVUS_LEASE_S": str(settings.milvus_lease_s),
    }
    result = CliRunner().invoke(cli, ["kb", "check", "--kb", KB], env=env)
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    with KnowledgeBase.open(settings, KB) as kb:
        docs = kb.documents()
        sources = [d.source for d in docs]
        assert len(sources) == len(set(sources)), "a document is stored twice"
        for doc in docs:
            stored = [c.text for c in kb.document_chunks(doc.doc_id)]
            assert stored in versions[doc.source], f"{doc.source} is half present"
            assert len(stored) == doc.chunks


@pytest.fixture
def server(milvus_server: MilvusServer) -> Iterator[MilvusServer]:
    yield milvus_server
    milvus_server.drop_all()


def test_killed_milvus_ingestions_leave_a_consistent_store(
    zygote: Zygote, server: MilvusServer, tmp_path: Path
) -> None:
    milvus_server = server
    rng = random.Random(20261201)
    home, corpus = tmp_path / "home", tmp_path / "corpus"
    corpus.mkdir()
    overrides = {
        "vector_store": "milvus",
        "milvus_uri": milvus_server.uri,
        "milvus_index_type": "FLAT",
        "milvus_lease_s": 2.0,  # a killed writer holds the lease this long
        "lock_timeout_s": 20.0,
    }
    settings = Settings(_env_file=None, zhiku_home=home, zhiku_models_dir=MODELS, **overrides)
    names = [f"doc{i:02d}.txt" for i in range(5)]
    write_corpus(corpus, rng, names)
    versions: dict[str, list[list[str]]] = {}

    def remember() -> None:
        for path in corpus.iterdir():
            versions.setdefault(str(path.resolve()), []).append(expected_chunks(path, settings))

    remember()
    kills, attempts, rounds, mid_write = 0, 0, 0, 0
    # Kills land at random moments; the run goes on until at least 3 of them hit a Milvus write
    # in progress (how many do depends on how fast embedding and writing are on this machine).
    while kills < 20 or mid_write < 3:
        attempts += 1
        assert attempts < 400, f"{kills} kills in {attempts} runs, {mid_write} inside a write"
        trigger = TRIGGERS[attempts % len(TRIGGERS)]
        outcome = zygote.run(
            home,
            [corpus],
            trigger=trigger,
            trigger_index=rng.randint(1, 3),
            delay_ms=rng.uniform(0, 1500 if trigger == "start" else 250),
            settings=overrides,
        )
        if outcome["killed"]:
            kills += 1
            mid_write += interrupted_writes(settings) > 0
            check_consistent(settings, versions)
            continue
        assert outcome["exit"] == 0, outcome
        check_consistent(settings, versions)
        rounds += 1
        edited = rng.sample(sorted(p.name for p in corpus.iterdir()), 2)
        write_corpus(corpus, rng, [*edited, f"new{rounds:02d}.txt"])
        (corpus / sorted(p.name for p in corpus.iterdir())[0]).unlink()
        remember()
        # no kill at all in 200 runs is a broken kill switch; kills that land but seldom inside
        # a Milvus write (a fast machine writes quickly) go on to the bound of 400 runs above
        assert kills > 0 or attempts < 200, "kills never landed"
    final = zygote.run(home, [corpus], settings=overrides)
    assert final == {**final, "killed": False, "exit": 0}
    check_consistent(settings, versions)
    with KnowledgeBase.open(settings, KB) as kb:
        current = {str(p.resolve()): expected_chunks(p, settings) for p in corpus.iterdir()}
        assert {d.source for d in kb.documents()} == set(current)
        for source, chunks in current.items():
            [doc] = [d for d in kb.documents() if d.source == source]
            assert [c.text for c in kb.document_chunks(doc.doc_id)] == chunks
    assert rounds >= 1, "no round of edits was exercised"
    assert mid_write >= 3, f"only {mid_write} kills landed inside a Milvus write"
