"""Sources in the state database (`app/state/sources.py` behind `SourceStore`): two app servers
over one database see each other's sources and history, a sync recorded while another server
changes the schedule loses neither, one sync of a source runs at a time across servers and a
killed server's lease runs out, an earlier version's `sources/<kb>.json` is imported once, and a
deleted knowledge base takes its sources along; on SQLite and on PostgreSQL alike."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import sqlalchemy as sa
from support import REPO, make_settings

from app.sources import PageState, Schedule, Source, SourceError, SourceStore, SyncRecord
from app.sources import sync_source as run_sync
from app.sources.model import KEPT_HISTORY, source_id
from app.state import open_state
from app.state import sources as records
from ingest.settings import Settings

KB = "手册"


def web_source(kb: str, url: str, schedule: Schedule | None = None) -> Source:
    return Source(
        id=source_id(kb, url), kb=kb, kind="site", location=url,
        schedule=schedule or Schedule(), created_at="2026-12-06T10:00:00+00:00",
    )  # fmt: skip


def sync_record(added: int, started: str = "2026-12-06T10:00:00+00:00") -> SyncRecord:
    return SyncRecord(started_at=started, seconds=1.5, trigger="schedule", added=added)


@pytest.fixture
def shared_url(state_settings: Settings, tmp_path: Path) -> str:
    """One database two servers use: the PostgreSQL of the test, or one SQLite file."""
    return state_settings.state_url or f"sqlite:///{tmp_path / 'shared-state.sqlite'}"


def server(tmp_path: Path, name: str, url: str, **overrides: object) -> Settings:
    """An app server of its own (its own data home) over the shared state database."""
    return make_settings(tmp_path / name, state_url=url, **overrides)


def test_two_servers_see_each_others_sources_and_history(tmp_path: Path, shared_url: str) -> None:
    one = SourceStore(server(tmp_path, "one", shared_url))
    two = SourceStore(server(tmp_path, "two", shared_url))
    page = one.add(web_source(KB, "https://example.com/help/", Schedule.parse(every="2h")))
    folder = two.add(
        replace(web_source("其他", "/srv/docs"), kind="folder", schedule=Schedule(watch=True))
    )
    assert [s.id for s in two.list(KB)] == [page.id] and two.kbs() == sorted([KB, "其他"])
    assert [s.id for s in one.list()] == [s.id for s in two.list()]
    assert two.get("/srv/docs").schedule.watch  # a watched folder is shared like any source

    pages = {"https://example.com/help/": PageState(etag='"v1"', links=("a.html",))}
    two.record(page, pages, sync_record(3))
    seen = one.get(page.id)
    assert seen.pages == pages and [r.added for r in seen.history] == [3]
    with pytest.raises(SourceError) as twice:  # added once, whichever server tries again
        one.add(folder)
    assert "已经是" in twice.value.zh

    one.update(replace(page, schedule=Schedule.parse(at="03:00"), max_pages=20))
    changed = two.get(page.id)
    assert changed.schedule.at == "03:00" and changed.max_pages == 20
    assert changed.pages == pages and len(changed.history) == 1  # settings only
    assert two.remove(page) and not one.remove(page)
    assert [s.id for s in one.list()] == [folder.id]


def test_the_history_keeps_the_last_syncs(state_settings: Settings) -> None:
    store = SourceStore(state_settings)
    source = store.add(web_source(KB, "https://example.com/"))
    for n in range(KEPT_HISTORY + 5):
        store.record(source, None, sync_record(n))
    history = store.get(source.id).history
    assert [r.added for r in history] == list(range(5, KEPT_HISTORY + 5))


def test_a_sync_recorded_while_another_server_changes_settings_loses_nothing(
    tmp_path: Path, shared_url: str
) -> None:
    one = SourceStore(server(tmp_path, "one", shared_url))
    two = SourceStore(server(tmp_path, "two", shared_url))
    source = one.add(web_source(KB, "https://example.com/"))
    rounds = 20
    errors: list[BaseException] = []

    def recording() -> None:
        try:
            for n in range(rounds):
                pages = {f"https://example.com/{n}": PageState(etag=str(n))}
                one.record(source, pages, sync_record(n))
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    def updating() -> None:
        try:
            for n in range(rounds):
                two.update(replace(source, schedule=Schedule(every_s=60 * (n + 1)), max_depth=n))
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=recording), threading.Thread(target=updating)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    final = two.get(source.id)
    assert [r.added for r in final.history] == list(range(rounds))  # every sync, in order
    assert final.pages == {f"https://example.com/{rounds - 1}": PageState(etag=str(rounds - 1))}
    assert final.schedule == Schedule(every_s=60 * rounds) and final.max_depth == rounds - 1


def test_one_sync_of_a_source_at_a_time_across_servers(tmp_path: Path, shared_url: str) -> None:
    # a lease of 2 s renewed every half second: held for longer than it lasts by a live sync
    one_settings = server(tmp_path, "one", shared_url, job_stale_s=2.0)
    one, two = SourceStore(one_settings), SourceStore(server(tmp_path, "two", shared_url))
    source = one.add(web_source(KB, "https://example.com/", Schedule.parse(every="1h")))
    with one.syncing(source) as current:
        assert current == source
        time.sleep(3.0)
        for store in (one, two):  # this server, and another
            with pytest.raises(SourceError) as refused, store.syncing(source):
                pass
            assert "正在同步中" in refused.value.zh and "already running" in refused.value.en
        # the sync runner refuses at once, before fetching or embedding anything
        with pytest.raises(SourceError, match="already running"):
            run_sync(one_settings, two, source)
    with two.syncing(source):  # freed when the sync ends
        holder = records.lease_holder(two.engine, source.id)
        assert holder is not None and holder[0].startswith(socket.gethostname())
    assert records.lease_holder(two.engine, source.id) is None

    # synced by one server since another read the list of due sources: not synced again
    two.record(source, None, sync_record(1, started=time.strftime("%Y-%m-%dT%H:%M:%S+00:00",
                                                                  time.gmtime())))  # fmt: skip
    with pytest.raises(SourceError, match="not due"):
        run_sync(one_settings, one, source, trigger="schedule", only_if_due=True)
    two.remove(source)
    with pytest.raises(SourceError, match="removed"), one.syncing(source):
        pass


HOLDER = """
import sys, time
from app.sources import SourceStore
from ingest.settings import get_settings
store = SourceStore(get_settings())
with store.syncing(store.get(sys.argv[1])):
    print("holding", flush=True)
    time.sleep(600)
"""


def test_the_lease_of_a_killed_server_runs_out(tmp_path: Path, shared_url: str) -> None:
    here = SourceStore(server(tmp_path, "here", shared_url))
    source = here.add(web_source(KB, "https://example.com/"))
    env = {
        **os.environ,
        "ZHIKU_HOME": str(tmp_path / "killed"),
        "STATE_URL": shared_url,
        "JOB_STALE_S": "6",
        "PYTHONPATH": str(REPO),
    }
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, source.id], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        holder.kill()  # no chance to free its lease
        holder.wait(30)
        owner, until = records.lease_holder(here.engine, source.id) or ("", 0.0)
        assert owner and until > time.time()  # renewed by the living server: not run out yet
        with pytest.raises(SourceError, match="already running"), here.syncing(source):
            pass
        time.sleep(max(0.0, until - time.time()) + 0.2)
        with here.syncing(source):  # run out: taken
            assert records.lease_holder(here.engine, source.id)[0] != owner  # type: ignore[index]
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(30)


def legacy_file(home: Path, kb: str, sources: list[Source]) -> Path:
    """A `sources/<kb>.json` as an earlier version wrote it."""
    path = home / "sources" / f"{kb}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    entries = []
    for source in sources:
        entry = asdict(source)
        entry["pages"] = {url: asdict(state) for url, state in source.pages.items()}
        entries.append(entry)
    path.write_text(json.dumps({"version": 1, "sources": entries}, ensure_ascii=False), "utf-8")
    (home / "sources" / f"{kb}.json.lock").touch()
    return path


def test_an_earlier_versions_sources_are_imported_once(state_settings: Settings) -> None:
    home = state_settings.zhiku_home
    old = replace(
        web_source(KB, "https://example.com/", Schedule.parse(every="1d")),
        pages={"https://example.com/": PageState(etag='"x"', gone=1, gone_status=404)},
        history=(sync_record(4), sync_record(0)),
        max_depth=2,
    )
    other = replace(web_source("其他", "/srv/docs"), kind="folder", schedule=Schedule(watch=True))
    path = legacy_file(home, KB, [old])
    legacy_file(home, "其他", [other])
    damaged = home / "sources" / "坏的.json"
    damaged.write_text("{not json", encoding="utf-8")

    store = SourceStore(state_settings)
    assert store.list(KB) == [old] and store.list("其他") == [other]
    assert not path.exists() and path.with_name(f"{KB}.json.imported").is_file()
    assert not (home / "sources" / f"{KB}.json.lock").exists()
    assert damaged.is_file() and store.list("坏的") == []  # left for a person, nothing lost

    # a second process that read the file before the first renamed it: nothing twice
    path.write_text(path.with_name(f"{KB}.json.imported").read_text("utf-8"), "utf-8")
    store.record(old, None, sync_record(7))
    again = SourceStore(state_settings)
    assert len(again.list(KB)) == 1 and [r.added for r in again.get(old.id).history] == [4, 0, 7]


def test_deleting_a_knowledge_base_removes_its_sources(state_settings: Settings) -> None:
    store = SourceStore(state_settings)
    gone = store.add(web_source(KB, "https://example.com/"))
    kept = store.add(web_source("其他", "https://example.org/"))
    for source in (gone, kept):
        store.record(source, None, sync_record(1))
    imported = legacy_file(state_settings.zhiku_home, KB, [])
    SourceStore(state_settings)  # imports (nothing) and renames it
    store.delete_kb(KB)
    assert store.list(KB) == [] and store.kbs() == ["其他"]
    assert len(store.get(kept.id).history) == 1
    with open_state(state_settings).connect() as connection:
        syncs = connection.execute(sa.select(records.source_syncs.c.source_id)).scalars().all()
    assert syncs == [kept.id]  # the deleted one's history went with it
    assert not imported.with_name(f"{KB}.json.imported").exists()
    store.delete_kb(KB)  # again: nothing there, no error
