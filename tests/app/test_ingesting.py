"""What the machine's own files, folders and sources change, through the service: `zhiku ingest`,
`zhiku kb remove`, `kb check --repair`, a watched folder and the syncs of sources each leave an
audit row (who, what, the outcome) and keep their output; the right to write (or create) the
knowledge base is checked first, and a refusal changes nothing."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from support import make_settings

from app.access import Principal
from app.cli_people import CLI_USER
from app.service import Forbidden, Service
from app.sources import Schedule, SourceStore, new_source
from app.sources.scheduler import Scheduler
from app.state.audit import AuditEntry, AuditLog
from ingest._embed import Embedder
from ingest.settings import Settings, get_settings
from ingest.store import KnowledgeBase, kb_exists

LOCAL = Principal.local("test")


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "city.txt").write_text("杭州概况\n杭州的市花是桂花，市树是香樟。", encoding="utf-8")
    (folder / "gpt.md").write_text("# GPT\n\nGPT-1 的参数量为 1.17 亿。", encoding="utf-8")
    return folder


def rows(settings: Settings, action: str, kb: str | None = None) -> list[AuditEntry]:
    """The audit rows of `action`, oldest first."""
    return [e for e in reversed(AuditLog(settings).entries(kb=kb)) if e.action == action]


def detail(entry: AuditEntry) -> dict[str, Any]:
    return json.loads(entry.detail or "{}")


def test_zhiku_ingest_is_audited_and_still_skips_unchanged_files(zhiku: Any, docs: Path) -> None:
    first = zhiku("ingest", str(docs))
    assert first.exit_code == 0, first.output
    assert "added 2" in first.output and "city.txt" in first.output
    again = zhiku("ingest", str(docs))
    assert again.exit_code == 0 and "skipped 2" in again.output and "added 0" in again.output
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    failing = zhiku("ingest", str(docs))
    assert failing.exit_code == 2 and "broken.pdf" in failing.output

    settings = get_settings()
    # the knowledge base did not exist: made as `create_kb` makes one, by the CLI's user
    made = rows(settings, "create_kb", "default")
    assert [(e.actor, e.origin) for e in made] == [("local", "cli")]
    ingested = rows(settings, "ingest", "default")
    assert [(e.actor, e.origin, e.outcome) for e in ingested] == [
        ("local", "cli", "ok"),
        ("local", "cli", "ok"),
        ("local", "cli", "failed"),  # a file failed: the row says so
    ]
    counts = [(detail(e)["added"], detail(e)["skipped"], detail(e)["failed"]) for e in ingested]
    assert counts == [(2, 0, 0), (0, 2, 0), (0, 2, 1)]
    assert {detail(e)["paths"][0] for e in ingested} == {str(docs)}
    assert sorted(Path(c.split(" ", 1)[1]).name for c in detail(ingested[0])["changed"]) == [
        "city.txt",
        "gpt.md",
    ]
    assert detail(ingested[1])["changed"] == []  # unchanged files are counted, not listed


def test_zhiku_kb_remove_is_audited(zhiku: Any, docs: Path) -> None:
    assert zhiku("ingest", str(docs), "--kb", "notes").exit_code == 0
    removed = zhiku("kb", "remove", "city.txt", "no-such-doc", "--kb", "notes")
    assert removed.exit_code == 2 and "removed 1 documents" in removed.output
    assert "no document matches" in removed.output
    [row] = rows(get_settings(), "remove_documents", "notes")
    assert (row.actor, row.origin, row.outcome) == ("local", "cli", "ok")
    assert detail(row)["selectors"] == ["city.txt", "no-such-doc"]
    assert len(detail(row)["documents"]) == 1 and detail(row)["unmatched"] == ["no-such-doc"]
    with KnowledgeBase.open(get_settings(), "notes") as kb:
        assert [Path(d.source).name for d in kb.documents()] == ["gpt.md"]


def test_zhiku_kb_check_repair_is_audited_when_it_repairs(
    zhiku: Any, docs: Path, tmp_path: Path
) -> None:
    assert zhiku("ingest", str(docs)).exit_code == 0
    consistent = zhiku("kb", "check", "--repair")
    assert consistent.exit_code == 0 and "repaired" not in consistent.output
    assert rows(get_settings(), "repair_kb") == []  # nothing repaired, nothing to audit
    db = tmp_path / "home" / "kbs" / "default" / "kb.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM chunks_fts WHERE rowid = (SELECT min(id) FROM chunks)")
    assert zhiku("kb", "check").exit_code == 1  # a check alone changes nothing
    assert rows(get_settings(), "repair_kb") == []
    repaired = zhiku("kb", "check", "--repair")
    assert repaired.exit_code == 0 and "repaired" in repaired.output
    assert "consistent (2 documents" in repaired.output
    [row] = rows(get_settings(), "repair_kb", "default")
    assert (row.actor, row.origin) == ("local", "cli") and detail(row)["repaired"]


@pytest.fixture
def people(tmp_path: Path, embedder: Embedder) -> Service:
    settings = make_settings(tmp_path / "home", llm_backend="none")
    service = Service(settings, embedder)
    service.create_person(LOCAL, "ed", "correct horse battery", "editor")
    service.create_person(LOCAL, "rita", "correct horse battery", "reader")
    service.create_kb(LOCAL, "alpha")
    service.grant(LOCAL, "rita", "alpha", "read")
    return service


def person(service: Service, name: str) -> Principal:
    return service.accounts.principal_for(service.accounts.require(name))


def test_ingesting_needs_write_and_a_new_knowledge_base_needs_create(
    people: Service, docs: Path
) -> None:
    settings, rita, ed = people.settings, person(people, "rita"), person(people, "ed")
    with pytest.raises(Forbidden):  # a reader of alpha
        people.ingest_local(rita, "alpha", [docs])
    with pytest.raises(Forbidden):  # a reader never creates one either
        people.ingest_local(rita, "brand-new", [docs])
    with pytest.raises(Forbidden):  # an editor without a grant on alpha
        people.ingest_local(ed, "alpha", [docs])
    with pytest.raises(Forbidden):
        people.remove_matching(ed, "alpha", ["city.txt"])
    assert not kb_exists(settings, "brand-new")
    with KnowledgeBase.open(settings, "alpha") as kb:
        assert kb.documents() == []
    refused = [(e.actor, e.action, e.kb) for e in reversed(AuditLog(settings).entries())]
    assert ("rita", "refused:create", "brand-new") in refused
    assert ("ed", "refused:write", "alpha") in refused
    assert rows(settings, "ingest") == []

    # an editor may create one by ingesting into it, and then writes it
    report = people.ingest_local(ed, "eds", [docs])
    assert report.totals()["added"] == 2 and person(people, "ed").can_write("eds")
    assert [(e.actor, e.kb) for e in rows(settings, "ingest")] == [("ed", "eds")]


def test_a_watched_folder_audits_the_syncs_that_change_something(
    people: Service, docs: Path
) -> None:
    seen: list[int] = []

    def once() -> None:
        stop = threading.Event()
        stop.set()  # set from the start: one sync of the folder, then it returns
        people.watch_folders(
            CLI_USER, "alpha", [docs], quiet_s=0, on_report=lambda r: seen.append(1), stop=stop
        )

    once()
    once()  # nothing changed: reported, not audited
    (docs / "city.txt").unlink()
    once()
    watched = rows(people.settings, "watch", "alpha")
    assert len(seen) == 3
    assert [(e.actor, detail(e)["added"], detail(e)["removed"]) for e in watched] == [
        ("local", 2, 0),
        ("local", 0, 1),
    ]


def test_a_sync_that_changes_something_is_audited_with_who_started_it(
    people: Service, docs: Path, embedder: Embedder
) -> None:
    settings = people.settings
    store = SourceStore(settings)
    source = store.add(new_source("alpha", str(docs), schedule=Schedule.parse(every="1s")))
    with pytest.raises(Forbidden):  # a reader of alpha syncs nothing into it
        people.sync_source(person(people, "rita"), source)
    assert store.get(source.id).history == ()

    people.sync_source(CLI_USER, store.get(source.id))
    people.sync_source(CLI_USER, store.get(source.id))  # nothing changed: not audited
    (docs / "new.txt").write_text("年假制度\n员工每年有 15 天带薪年假。", encoding="utf-8")
    time.sleep(1.1)  # a schedule of every second is due again: the scheduler fires it
    assert Scheduler(settings, lambda: embedder).run_due() == 1
    synced = rows(settings, "sync", "alpha")
    assert [(e.actor, e.target, detail(e)["trigger"], detail(e)["added"]) for e in synced] == [
        ("local", str(docs.resolve()), "manual", 2),
        ("scheduler", str(docs.resolve()), "schedule", 1),
    ]
    assert len(store.get(source.id).history) == 3  # every sync is in its history all the same


def test_zhiku_sources_sync_is_audited(zhiku: Any, docs: Path) -> None:
    added = zhiku("sources", "add", str(docs), "--kb", "folder")
    assert added.exit_code == 0 and "added 2" in added.output
    synced = zhiku("sources", "sync", "--kb", "folder")
    assert synced.exit_code == 0 and "unchanged 2" in synced.output
    [row] = rows(get_settings(), "sync", "folder")
    assert (row.actor, row.origin, detail(row)["added"]) == ("local", "cli", 2)
