"""What only the Milvus store has to prove: a write that dies between its steps stays invisible
and is repaired, writers in different processes take turns through the lease kept in Milvus,
a dead writer's lease expires, and a reindex switches collections in one step. Against the real
Milvus core on 127.0.0.1 (skipped, with the reason, when it cannot start)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from test_store import (
    SPEC,
    TEXT_A,
    TEXT_B,
    make_doc,
    ocr_layout,
    prepared,
    put,
    scanned_doc,
    unit,
)

from ingest._tokenize import keyword_query
from ingest.settings import Settings
from ingest.store import KnowledgeBase, StoreError
from ingest.store.milvus.lease import Lease
from ingest.store.milvus.schema import connect

REPO = Path(__file__).resolve().parents[2]


def milvus_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests' / 'ingest'}{os.pathsep}{REPO / 'tests'}",
        "VECTOR_STORE": "milvus",
        "MILVUS_URI": settings.milvus_uri,
        "MILVUS_INDEX_TYPE": "FLAT",
        "ZHIKU_HOME": str(settings.zhiku_home),
    }
    env.update(extra)
    return env


def dies_at_the_commit(kb: KnowledgeBase, monkeypatch: pytest.MonkeyPatch) -> None:
    """The next write raises where it would upsert its document rows: a crash before its
    commit, after its chunks and pages are written (undone by monkeypatch.undo())."""
    client = kb.client  # type: ignore[attr-defined]
    real_upsert = client.upsert

    def upsert(collection: str, rows: list[dict], **kw: object) -> object:
        if rows and rows[0].get("kind") == "doc":
            raise ConnectionError("the process died here")  # injected: a crash mid-write
        return real_upsert(collection, rows, **kw)

    monkeypatch.setattr(client, "upsert", upsert)


def test_a_write_that_dies_before_its_commit_stays_invisible_and_is_repaired(
    milvus_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with KnowledgeBase.open(milvus_settings, "crash", create=True) as kb:
        put(kb, make_doc("a", TEXT_A))
        old = [c.id for c in kb.document_chunks("a")]
        dies_at_the_commit(kb, monkeypatch)
        with pytest.raises(ConnectionError):
            put(kb, make_doc("a", TEXT_B))
        monkeypatch.undo()
        # the new chunks are in Milvus, but no reader sees them
        assert [c.id for c in kb.document_chunks("a")] == old
        assert {i for i, _ in kb.dense_search(unit(TEXT_A), 100)} == set(old)
        assert kb.keyword_search(keyword_query("倒排索引"), 5) == []
        collection = kb.active()["chunks"]
        left = kb.client.query(collection, filter='doc_id == "a"', output_fields=["count(*)"])
        assert left[0]["count(*)"] > len(old), "the dead write's chunks are still stored"
        # the next writer, or `kb check`, undoes it from its intent, as SQLite rolls back
        assert kb.check() == []
        left = kb.client.query(collection, filter='doc_id == "a"', output_fields=["count(*)"])
        assert left[0]["count(*)"] == len(old)
        assert [c.id for c in kb.document_chunks("a")] == old
        assert put(kb, make_doc("a", TEXT_B)) == {"a": "updated"}
        assert kb.check() == []


def test_ocr_boxes_of_a_write_that_dies_before_its_commit_stay_invisible(
    milvus_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The boxes are rows of the document's version like its pages: a dead write's boxes are
    never returned, and recovery removes them."""
    old, new = ocr_layout(5), ocr_layout(4000, width=2480)  # the new one in several rows
    with KnowledgeBase.open(milvus_settings, "crash", create=True) as kb:
        put(kb, scanned_doc("s", TEXT_A, old))
        kept = kb.client.query(kb.catalog, filter='kind == "layout"', output_fields=["key"])
        dies_at_the_commit(kb, monkeypatch)
        with pytest.raises(ConnectionError):
            put(kb, scanned_doc("s", TEXT_A, new))
        monkeypatch.undo()
        stored = kb.client.query(kb.catalog, filter='kind == "layout"', output_fields=["key"])
        assert len(stored) > len(kept), "the dead write's boxes are stored"
        assert kb.page_layout("s", 1) == old
        assert kb.check() == []  # recovery ran first
        stored = kb.client.query(kb.catalog, filter='kind == "layout"', output_fields=["key"])
        assert {r["key"] for r in stored} == {r["key"] for r in kept}
        assert put(kb, scanned_doc("s", TEXT_A, new)) == {"s": "updated"}
        assert kb.page_layout("s", 1) == new


def test_rows_of_no_version_are_found_and_repaired(milvus_settings: Settings) -> None:
    with KnowledgeBase.open(milvus_settings, "stray", create=True) as kb:
        put(kb, make_doc("a", TEXT_A))
        put(kb, make_doc("b", TEXT_B))
        # rows no intent explains (say, written by hand): b's catalog row removed
        from ingest.store.milvus.schema import row_key

        kb.client.delete(kb.catalog, ids=[row_key("doc", "b")])
        problems = kb.check()
        assert any("chunks of no committed document version" in p for p in problems)
        assert any("pages of no committed document version" in p for p in problems)
        assert {kb.chunks([i])[i].doc_id for i, _ in kb.dense_search(unit(TEXT_B), 100)} == {"a"}
        repaired = kb.repair()
        assert any("removed" in line for line in repaired)
        assert kb.check() == []


_WRITER = """
import json, sys, time
from ingest.settings import Settings
from ingest.store import KnowledgeBase
from test_store import SPEC, TEXT_A, make_doc, prepared

who, rounds, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with KnowledgeBase.open(Settings(), "shared", create=True) as kb:
    for n in range(rounds):
        with kb.writer(SPEC) as writer:
            began = time.time()
            doc = make_doc(f"{who}-{n}", TEXT_A + who + str(n), source=f"/data/{who}-{n}.txt")
            writer.put_file(doc.source, doc.sha256, doc.size, [(doc, prepared(doc))])
            time.sleep(0.2)
            with open(log, "a") as out:
                out.write(json.dumps([who, began, time.time()]) + "\\n")
"""


def test_two_writer_processes_take_turns_through_the_lease(
    milvus_settings: Settings, tmp_path: Path
) -> None:
    KnowledgeBase.open(milvus_settings, "shared", create=True).close()
    log = tmp_path / "turns.jsonl"
    env = milvus_env(milvus_settings)
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, who, "4", str(log)], env=env, cwd=tmp_path)
        for who in ("p1", "p2")
    ]
    for process in writers:
        assert process.wait(timeout=240) == 0
    turns = sorted(json.loads(line) for line in log.read_text().splitlines())
    assert len(turns) == 8
    spans = sorted((began, ended) for _, began, ended in turns)
    for (_, first_end), (second_start, _) in itertools.pairwise(spans):
        assert second_start >= first_end, "two writers were inside the lease at once"
    with KnowledgeBase.open(milvus_settings, "shared") as kb:
        assert kb.counts()["documents"] == 8
        assert kb.check() == []


_HOLDER = """
import sys, time
from ingest.settings import Settings
from ingest.store import KnowledgeBase
from test_store import SPEC

with KnowledgeBase.open(Settings(), "held", create=True) as kb:
    with kb.writer(SPEC):
        print("holding", flush=True)
        time.sleep(600)
"""


def test_a_busy_writer_is_waited_for_and_a_dead_one_passed_by(
    milvus_settings: Settings, tmp_path: Path
) -> None:
    settings = milvus_settings.model_copy(update={"lock_timeout_s": 0.5, "milvus_lease_s": 3.0})
    KnowledgeBase.open(settings, "held", create=True).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER],
        env=milvus_env(settings, MILVUS_LEASE_S="3.0"),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        with KnowledgeBase.open(settings, "held") as kb:
            with pytest.raises(StoreError, match="being written by another process"):
                put(kb, make_doc("a", TEXT_A))
            holder.kill()  # SIGKILL: the lease is never released, only no longer renewed
            holder.wait()
            patient = settings.model_copy(update={"lock_timeout_s": 30.0})
        with KnowledgeBase.open(patient, "held") as kb:
            started = time.monotonic()
            assert put(kb, make_doc("a", TEXT_A)) == {"a": "added"}
            assert time.monotonic() - started < 30
            assert kb.check() == []
    finally:
        holder.kill()
        holder.wait()


def test_a_reindex_switches_to_a_new_collection_in_one_step(milvus_settings: Settings) -> None:
    with KnowledgeBase.open(milvus_settings, "re", create=True) as kb:
        put(kb, make_doc("a", TEXT_A))
        put(kb, make_doc("b", TEXT_B))
        before = kb.active()["chunks"]
        with kb.writer(SPEC) as writer:
            rows = [
                (doc, prepared(doc, size=40), origin, ingested)
                for doc, origin, ingested in writer.stored_documents()
            ]
            assert writer.replace_all(rows) == 2
        after = kb.active(fresh=True)["chunks"]
        assert after != before and not kb.client.has_collection(before)
        assert kb.check() == []
        target = kb.document_chunks("b")[0]
        [(hit, _)] = kb.dense_search(unit(target.text), 1)
        assert kb.chunks([hit])[hit].text == target.text
        assert kb.page_text("a", 0) == TEXT_A


def test_a_writer_killed_around_switching_collections_leaves_nothing_for_check(
    milvus_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between creating a chunk collection and making it the active one (the knowledge base's
    first write, or a reindex) and between the switch and dropping the old collection."""
    from ingest.store.milvus.write import MilvusWriter

    real_activate = MilvusWriter._activate

    def dies_at_the_switch(self: MilvusWriter, name: str, epoch: int) -> None:
        raise ConnectionError("the process died here")  # injected: a crash mid-write

    monkeypatch.setattr(MilvusWriter, "_activate", dies_at_the_switch)
    with KnowledgeBase.open(milvus_settings, "switch", create=True) as kb:
        with pytest.raises(ConnectionError):
            put(kb, make_doc("a", TEXT_A))
        monkeypatch.undo()
        assert kb.check() == [] and kb.documents() == []
        put(kb, make_doc("a", TEXT_A))
        before = kb.active(fresh=True)["chunks"]

        def dies_after_the_switch(self: MilvusWriter, name: str, epoch: int) -> None:
            real_activate(self, name, epoch)
            raise ConnectionError("the process died here")

        monkeypatch.setattr(MilvusWriter, "_activate", dies_after_the_switch)
        with pytest.raises(ConnectionError), kb.writer(SPEC) as writer:
            rows = [(doc, prepared(doc, size=40), o, t) for doc, o, t in writer.stored_documents()]
            writer.replace_all(rows)
        monkeypatch.undo()
        assert kb.check() == []
        assert kb.active(fresh=True)["chunks"] != before
        assert not kb.client.has_collection(before)
        assert [d.doc_id for d in kb.documents()] == ["a"]


def test_hybrid_search_with_milvus_rankers(milvus_settings: Settings) -> None:
    with KnowledgeBase.open(milvus_settings, "hy", create=True) as kb:
        put(kb, make_doc("a", TEXT_A))
        put(kb, make_doc("b", TEXT_B))
        target = kb.document_chunks("b")[0]
        for ranker in ("rrf", "weighted"):
            hits = kb.hybrid_search(
                unit(target.text), keyword_query("倒排索引"), 3, ranker, 0.4, 20
            )
            assert hits and hits[0][0] in {c.id for c in kb.document_chunks("b")}


def test_the_default_index_is_accepted_and_a_refused_one_is_named_at_creation(
    milvus_settings: Settings,
) -> None:
    """The real core refuses HNSW: a knowledge base is not created with it, and the reason
    names the setting, before any file is read; the default (AUTOINDEX) takes writes."""
    from ingest.store.milvus.kb import list_kbs

    default = milvus_settings.model_copy(
        update={"milvus_index_type": Settings.model_fields["milvus_index_type"].default}
    )
    assert default.milvus_index_type == "AUTOINDEX"
    with KnowledgeBase.open(default, "auto", create=True) as kb:
        put(kb, make_doc("a", TEXT_A))
        assert [d.doc_id for d in kb.documents()] == ["a"]
        assert {i for i, _ in kb.dense_search(unit(TEXT_A), 5)} == {
            c.id for c in kb.document_chunks("a")
        }
    hnsw = milvus_settings.model_copy(update={"milvus_index_type": "HNSW"})
    with pytest.raises(StoreError) as refused:
        KnowledgeBase.open(hnsw, "hnsw", create=True)
    assert "MILVUS_INDEX_TYPE=HNSW" in refused.value.en and "AUTOINDEX" in refused.value.en
    assert "MILVUS_INDEX_TYPE=HNSW" in refused.value.zh
    assert list_kbs(hnsw) == ["auto"]  # nothing created, no probe left behind
    client = connect(milvus_settings)
    assert not [c for c in client.list_collections() if c.startswith("zk_probe_")]
    client.close()


def test_a_holder_renewing_its_lease_never_vanishes_from_the_others_view(
    milvus_settings: Settings,
) -> None:
    """An upserted row is missing from a Strong query made between the upsert's delete and its
    insert; a lease row renewed that way lets a newcomer in beside its holder."""
    with KnowledgeBase.open(milvus_settings, "renewing", create=True) as kb, kb.lease() as held:
        stop = threading.Event()

        def renew_without_pause() -> None:
            while not stop.is_set():
                held._write(choosing=False)

        renewer = threading.Thread(target=renew_without_pause)
        renewer.start()
        try:
            onlooker = Lease(kb.client, kb.catalog, kb.name, 60.0, 2.0)
            unseen = sum(
                held.holder not in {holder for holder, _ in onlooker.others()} for _ in range(300)
            )
            newcomer = Lease(kb.client, kb.catalog, kb.name, 60.0, 2.0)
            with pytest.raises(StoreError, match="being written by another process"):
                newcomer.acquire()
        finally:
            stop.set()
            renewer.join()
        assert unseen == 0
        assert [holder for holder, _ in onlooker.others()] == [held.holder]  # its rows are gone


def test_a_holder_that_stopped_renewing_renews_before_it_commits_or_gives_up(
    milvus_settings: Settings,
) -> None:
    with KnowledgeBase.open(milvus_settings, "starved", create=True) as kb:
        held = Lease(kb.client, kb.catalog, kb.name, 3.0, 2.0)
        held.acquire()
        try:
            held._stop.set()  # a renewer starved of CPU
            assert held._renewer is not None
            held._renewer.join()
            time.sleep(2.2)  # two thirds of the lease: the commit renews first
            held.check()
            onlooker = Lease(kb.client, kb.catalog, kb.name, 3.0, 2.0)
            assert [holder for holder, _ in onlooker.others()] == [held.holder]
            held._beat = time.time() - 3.2  # a whole lease: another may have passed it by
            with pytest.raises(StoreError, match="lost the write lease"):
                # the renewal would succeed, but too late: it must not write on
                held.check()
        finally:
            held.release()


def test_a_document_being_updated_stays_in_every_search_made_meanwhile(
    milvus_settings: Settings,
) -> None:
    """Its catalog row's upsert hides the row from a query made between the upsert's delete
    and insert; a search then must not drop the document."""
    with KnowledgeBase.open(milvus_settings, "updated", create=True) as kb:
        put(kb, make_doc("b", TEXT_B))
        of_b = {i for i, _ in kb.dense_search(unit(TEXT_B), 100)}
        put(kb, make_doc("a", TEXT_A))
        stop = threading.Event()

        def update_again_and_again() -> None:
            with KnowledgeBase.open(milvus_settings, "updated") as writer_kb:
                n = 0
                while not stop.is_set():
                    n += 1
                    put(writer_kb, make_doc("a", TEXT_A + f"第{n}版。"))

        writer = threading.Thread(target=update_again_and_again)
        writer.start()
        try:
            # chunk ids, not documents: the version a search saw may be gone when it is read
            found = [{i for i, _ in kb.dense_search(unit(TEXT_B), 100)} for _ in range(300)]
        finally:
            stop.set()
            writer.join()
        assert all(ids >= of_b for ids in found)
        assert sum(not ids - of_b for ids in found) == 0  # never a search without a's chunks
