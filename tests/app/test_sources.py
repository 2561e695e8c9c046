"""Sources kept in sync: a site on a real HTTP server on 127.0.0.1 (tests/web_site.py) changes
between syncs; each sync applies exactly the changes, with conditional requests, and an outage
removes nothing. Also the `zhiku sources` and `zhiku ingest URL` commands as a user runs them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support import make_settings
from web_site import WebSite, html

from app.access import Principal
from app.service import Service
from app.sources import Schedule, SourceStore, new_source, sync_source
from app.sources.scheduler import Scheduler
from app.state.audit import AuditLog
from ingest._embed import Embedder
from ingest.settings import Settings, get_settings
from ingest.store import KnowledgeBase
from ingest.web import Fetcher

REPO = Path(__file__).resolve().parents[2]
KB = "site"

PAGES = {
    "a": ("退货政策", "<h1>退货政策</h1><p>商品签收后七天内可以无理由退货,运费由买家承担。</p>"),
    "b": ("发票说明", "<h1>发票说明</h1><p>电子发票在订单完成后二十四小时内发送到注册邮箱。</p>"),
    "c": ("会员积分", "<h1>会员积分</h1><p>每消费一元累积一个积分,积分在每年年底清零。</p>"),
}


def index(names: list[str]) -> str:
    items = "".join(
        f'<li><a href="{n}.html">{PAGES.get(n, ("新页", ""))[0]}</a></li>' for n in names
    )
    return html("客服中心", f"<h1>客服中心</h1><p>常见的客服问题都在这里。</p><ul>{items}</ul>")


def fetcher() -> Fetcher:
    return Fetcher(user_agent="zhiku-test", timeout_s=2.0, delay_s=0.0)


@pytest.fixture
def site() -> Iterator[WebSite]:
    with WebSite() as served:
        served.put("/help/", index(["a", "b", "c"]))
        for name, (title, body) in PAGES.items():
            served.put(f"/help/{name}.html", html(title, body))
        yield served


def docs_by_url(settings: Settings) -> dict[str, str]:
    with KnowledgeBase.open(settings, KB) as kb:
        return {d.source: kb.page_text(d.doc_id, 0) or "" for d in kb.documents()}


def test_sync_applies_exactly_the_changes_and_an_outage_removes_nothing(
    tmp_path: Path, embedder: Embedder, site: WebSite
) -> None:
    settings = make_settings(tmp_path / "home", source_remove_after=2, llm_backend="none")
    store = SourceStore(settings)
    source = store.add(new_source(KB, site.url("/help/"), crawl=True))

    def sync() -> object:
        current = store.get(source.id)
        return sync_source(settings, store, current, embedder=embedder, fetcher=fetcher())

    first = sync()
    assert (first.added, first.updated, first.removed, first.failed) == (4, 0, 0, 0)
    pages = ("/help/", "/help/a.html", "/help/b.html", "/help/c.html")
    assert set(docs_by_url(settings)) == {site.url(p) for p in pages}

    # nothing changed: every page answered 304, nothing sent whole again, nothing re-embedded
    full = dict(site.full)
    quiet = sync()
    assert (quiet.added, quiet.updated, quiet.removed, quiet.failed) == (0, 0, 0, 0)
    assert quiet.skipped == 4 and dict(site.full) == full
    assert all(site.not_modified[p] == 1 for p in ("/help/", "/help/a.html", "/help/c.html"))

    # a page changed, one added, one removed (404, and no longer linked)
    site.put(
        "/help/a.html",
        html("退货政策", "<h1>退货政策</h1><p>商品签收后十五天内可以无理由退货。</p>"),
    )
    site.put(
        "/help/d.html",
        html("配送时间", "<h1>配送时间</h1><p>偏远地区的订单配送需要五到七个工作日。</p>"),
    )
    site.put("/help/", index(["a", "b", "d"]))
    site.remove("/help/c.html")
    changed = sync()
    assert (changed.added, changed.updated, changed.removed) == (1, 2, 0)
    by_status = {(i.status, i.url.rsplit("/", 1)[1]) for i in changed.items}
    assert ("added", "d.html") in by_status and ("updated", "a.html") in by_status
    # gone once: counted, not removed (the threshold is two syncs in a row)
    assert ("failed", "c.html") in by_status
    pending = next(i for i in changed.items if i.url.endswith("c.html"))
    assert "1 more sync" in pending.reason_en and "再确认 1 次" in pending.reason_zh
    texts = docs_by_url(settings)
    assert "十五天" in texts[site.url("/help/a.html")] and site.url("/help/c.html") in texts

    # the site is down for a sync: nothing removed, nothing changed, the reason recorded
    site.down = True
    outage = sync()
    assert outage.removed == 0 and outage.added == outage.updated == 0
    assert "503" in outage.error_en and "503" in outage.error_zh
    assert docs_by_url(settings) == texts
    assert store.get(source.id).pages[site.url("/help/c.html")].gone == 1  # not counted

    # back: c.html answers 404 a second time in a row → removed; the rest unchanged
    site.down = False
    back = sync()
    assert (back.added, back.updated, back.removed) == (0, 0, 1)
    after = docs_by_url(settings)
    assert site.url("/help/c.html") not in after and len(after) == 4
    with KnowledgeBase.open(settings, KB) as kb:
        assert kb.check() == []

    history = store.get(source.id).history
    assert [(r.added, r.updated, r.removed) for r in history] == [
        (4, 0, 0), (0, 0, 0), (1, 2, 0), (0, 0, 0), (0, 0, 1)
    ]  # fmt: skip

    # answered from the synced pages, citing their URLs
    service = Service(settings, embedder=embedder)
    hit = service.search(Principal.local("test"), KB, "偏远地区配送要几天?")[0]
    assert hit.chunk.source == site.url("/help/d.html")
    assert (
        "十五天" in service.search(Principal.local("test"), KB, "签收后多久可以退货")[0].chunk.text
    )


def test_schedules() -> None:
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    every = Schedule.parse(every="30m")
    assert every.every_s == 1800 and every.describe() == "every 30m"
    assert every.next_run(None, now) == now  # never synced: due at once
    assert every.next_run(now, now) == now + timedelta(minutes=30)
    daily = Schedule.parse(at="3:05")
    assert daily.at == "03:05"
    following = daily.next_run(now, now)
    assert following is not None and following > now
    local = following.astimezone()
    assert (local.hour, local.minute) == (3, 5) and following - now <= timedelta(days=1)
    assert Schedule.parse().manual and Schedule().next_run(now, now) is None
    for bad in ("0m", "soon", "5x"):
        with pytest.raises(ValueError):
            Schedule.parse(every=bad)
    with pytest.raises(ValueError):
        Schedule.parse(at="25:00")


def test_the_command_line(zhiku, site: WebSite, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = zhiku("ingest", site.url("/help/a.html"), "--kb", "one")
    assert result.exit_code == 0, result.output
    assert "added" in result.output and "/help/a.html" in result.output
    again = zhiku("ingest", site.url("/help/a.html"), "--kb", "one")
    assert again.exit_code == 0 and "added 0" in again.output and "skipped 1" in again.output

    result = zhiku("sources", "add", site.url("/help/"), "--kb", KB, "--crawl", "--every", "2h")
    assert result.exit_code == 0, result.output
    assert "every 2h" in result.output and "added 4" in result.output
    # the new knowledge base was made through the service, as the CLI's own act
    made = [e for e in AuditLog(get_settings()).entries(kb=KB) if e.action == "create_kb"]
    assert [(e.actor, e.origin) for e in made] == [("local", "cli")]
    listed = zhiku("sources", "list")
    assert "site" in listed.output and "every 2h" in listed.output
    source_id = SourceStore(get_settings()).list(KB)[0].id
    site.remove("/help/b.html")
    synced = zhiku("sources", "sync", source_id)
    assert synced.exit_code == 0, synced.output
    assert "failed 1" in synced.output and "b.html" in synced.output
    history = zhiku("sources", "history", source_id)
    assert history.exit_code == 0 and "cli" in history.output
    check = zhiku("kb", "check", "--kb", KB)
    assert check.exit_code == 0, check.output
    bad = zhiku("sources", "add", "ftp://nowhere", "--kb", KB)
    assert bad.exit_code != 0 and "not a web address" in bad.output
    assert len(docs_by_url(get_settings())) == 4
    removed = zhiku("sources", "remove", source_id, "--purge")
    assert removed.exit_code == 0 and "its 4 documents" in removed.output
    purged = [e for e in AuditLog(get_settings()).entries(kb=KB) if e.action == "remove_documents"]
    acts = [(e.actor, e.origin, len(json.loads(e.detail or "{}")["documents"])) for e in purged]
    assert acts == [("local", "cli", 4)]  # through the service, as the CLI's own act
    assert docs_by_url(get_settings()) == {}
    assert zhiku("sources", "list").output.startswith("no sources")


def test_the_scheduler_fires_a_due_schedule(
    tmp_path: Path, embedder: Embedder, site: WebSite
) -> None:
    settings = make_settings(tmp_path / "home", web_delay_s=0.0, llm_backend="none")
    store = SourceStore(settings)
    timed = store.add(new_source(KB, site.url("/help/a.html"), schedule=Schedule.parse(every="1s")))
    by_hand = store.add(new_source(KB, site.url("/help/b.html")))  # manual: never fired
    scheduler = Scheduler(settings, lambda: embedder, poll_s=0.2)
    scheduler.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(store.get(timed.id).history) < 2:
            time.sleep(0.2)
    finally:
        scheduler.stop()
    history = store.get(timed.id).history
    assert len(history) >= 2 and all(r.trigger == "schedule" for r in history)
    assert (history[0].added, history[1].added, history[1].skipped) == (1, 0, 1)
    assert store.get(by_hand.id).history == ()
    assert scheduler.last_error is None and not scheduler.alive


def test_a_folder_is_a_source_too(tmp_path: Path, embedder: Embedder) -> None:
    settings = make_settings(tmp_path / "home", llm_backend="none")
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "规定.txt").write_text("报销规定\n\n出差结束后三十天内提交报销单。", encoding="utf-8")
    store = SourceStore(settings)
    source = store.add(new_source(KB, str(folder), schedule=Schedule.parse(at="03:00")))
    assert source.kind == "folder" and source.location == str(folder.resolve())
    first = sync_source(settings, store, source, embedder=embedder)
    assert (first.added, first.removed) == (1, 0)
    (folder / "新规定.txt").write_text("加班规定\n\n工作日加班可以申请调休。", encoding="utf-8")
    (folder / "规定.txt").unlink()
    second = sync_source(settings, store, store.get(source.id), embedder=embedder)
    assert (second.added, second.removed) == (1, 1)
    # the folder gone (a drive unmounted): the sync stops with why, nothing is removed
    moved = folder.rename(tmp_path / "elsewhere")
    third = sync_source(settings, store, store.get(source.id), embedder=embedder)
    assert third.removed == 0 and "not there" in third.error_en
    with KnowledgeBase.open(settings, KB) as kb:
        assert [Path(d.source).name for d in kb.documents()] == ["新规定.txt"]
    assert moved.is_dir()
    with pytest.raises(ValueError, match="nor a folder"):
        new_source(KB, str(tmp_path / "nowhere"))
