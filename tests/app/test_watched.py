"""Watched folders in the web app (`app/_watched.py`, `app/ui/watched.py`): through `AppTest`,
a knowledge base bound to a real temporary folder follows it with the real watcher and the real
embedding model; bindings survive a restart; a watcher that stops on an error says why on the
page and can be restarted.

An app restart is simulated in-process: every watcher is stopped and the process-wide cache
that holds them cleared, which is what a new server process starts from.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest
from support import MODELS_DIR, REPO, make_settings

from app._background import forget
from app._watched import BindingError, bind_folder, load_bindings
from app.ui.watched import get_watchers
from ingest._embed import Embedder
from ingest.settings import Settings
from ingest.store import KnowledgeBase

APP = REPO / "app" / "main.py"
KB_PAGE = "pages/knowledge_base.py"
TIMEOUT = 60
# Long enough that a new file is still waiting when the page is read right after it is written
# (the quiet period is what "pending" counts down); "立即同步" does not wait for it.
QUIET_S = 6.0


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedder: Embedder) -> Iterator[Path]:
    data = tmp_path / "home"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ZHIKU_HOME", str(data))
    monkeypatch.setenv("ZHIKU_MODELS_DIR", str(MODELS_DIR))
    monkeypatch.setenv("LLM_BACKEND", "none")
    monkeypatch.setenv("WATCH_QUIET_S", str(QUIET_S))
    yield data
    restart_app(make_settings(data))


@pytest.fixture
def settings(home: Path) -> Settings:
    return make_settings(home)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "合同"
    docs.mkdir()
    (docs / "年假.txt").write_text("员工每年享有十五天带薪年假。", encoding="utf-8")
    (docs / "坏文件.pdf").write_bytes(b"this is no pdf at all")
    (docs / ".~lock.年假.txt#").write_text("scratch", encoding="utf-8")
    return docs


def restart_app(settings: Settings) -> None:
    """What a new server process starts from: no watchers, no background."""
    get_watchers(settings).stop_all()
    forget(settings)


def start() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.switch_page(KB_PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def rerun(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def click(at: AppTest, label: str) -> AppTest:
    buttons = [b for b in (*at.button, *at.form_submit_button) if b.label == label]
    assert buttons, f"no button {label!r} in {[b.label for b in at.button]}"
    buttons[0].click()
    return rerun(at)


def bind(at: AppTest, path: str) -> AppTest:
    (field,) = [t for t in at.text_input if t.label == "绑定文件夹"]
    field.input(path)
    return click(at, "绑定")


def wait_page(at: AppTest, condition: Callable[[AppTest], bool], timeout: float = 180.0) -> None:
    """Rerun the page (a browser's fragment does it every few seconds) until `condition`."""
    deadline = time.monotonic() + timeout
    while not condition(rerun(at)):
        assert time.monotonic() < deadline, "the page never showed it"
        time.sleep(0.3)


def wait_for(condition: Callable[[], bool], timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def texts(elements: Any) -> str:
    return "\n".join(str(e.value) for e in elements)


def metric(at: AppTest, label: str) -> str:
    (found,) = [m for m in at.metric if m.label == label]
    return str(found.value)


def sync_table(at: AppTest) -> dict[str, tuple[str, str]]:
    """file → (result, reason) of the last sync's table."""
    tables = [d.value for d in at.dataframe if "结果" in d.value.columns]
    if not tables:
        return {}
    table = tables[0]
    return {
        f: (r, why) for f, r, why in zip(table["文件"], table["结果"], table["说明"], strict=True)
    }


def sources(settings: Settings) -> set[str]:
    with KnowledgeBase.open(settings, "default", create=True) as kb:
        assert kb.check() == []  # consistent whatever the watcher is doing
        return {Path(d.origin).name for d in kb.documents()}


def test_a_bound_folder_is_followed_while_the_app_runs(settings: Settings, folder: Path) -> None:
    at = start()
    bind(at, str(folder))
    assert "已绑定" in texts(at.success)
    # the first, full sync: the good file in, the bad one listed with its reason
    wait_page(at, lambda at: "年假.txt" in sync_table(at))
    table = sync_table(at)
    assert table["年假.txt"][0] == "新增"
    assert table["坏文件.pdf"][0] == "失败" and table["坏文件.pdf"][1]
    assert not any(name.startswith(".~lock") for name in table)
    assert sources(settings) == {"年假.txt"}
    assert metric(at, "最近同步") != "尚未同步"
    watcher = get_watchers(settings).get("default", folder)
    assert watcher is not None and watcher.running

    # a new file waits for its quiet period: the page counts it, "立即同步" takes it at once
    (folder / "报销.txt").write_text("出差结束后三十天内提交报销单。", encoding="utf-8")
    wait_for(lambda: watcher.state.pending == 1)
    assert metric(rerun(at), "待处理文件") == "1"
    click(at, "立即同步")
    wait_page(at, lambda at: "报销.txt" in sync_table(at) and metric(at, "待处理文件") == "0")
    assert sync_table(at)["报销.txt"][0] == "新增"
    assert sources(settings) == {"年假.txt", "报销.txt"}

    # a deleted file goes by itself once its quiet period is over
    (folder / "年假.txt").unlink()
    wait_page(at, lambda at: sync_table(at).get("年假.txt", ("",))[0] == "移除")
    assert sources(settings) == {"报销.txt"}

    click(at, "解除绑定")
    assert "已解除绑定" in texts(at.success)
    assert load_bindings(settings, "default") == []
    wait_for(lambda: not watcher.running)
    assert get_watchers(settings).get("default", folder) is None
    assert sources(settings) == {"报销.txt"}  # what was ingested stays
    assert "还没有绑定文件夹" in texts(at.caption)


def test_a_folder_that_cannot_be_bound_is_refused_in_chinese(
    settings: Settings, folder: Path, tmp_path: Path
) -> None:
    at = start()
    bind(at, str(tmp_path / "没有这个文件夹"))
    assert "文件夹不存在" in texts(at.error)
    bind(at, str(folder / "年假.txt"))
    assert "这不是文件夹" in texts(at.error)
    bind(at, "相对/路径")
    assert "完整路径" in texts(at.error)
    bind(at, str(settings.zhiku_home.parent))
    assert "数据目录" in texts(at.error)
    assert load_bindings(settings, "default") == []
    bind_folder(settings, "default", str(folder))
    with pytest.raises(BindingError, match="已经绑定"):
        bind_folder(settings, "default", str(folder) + "/")
    (folder / "子目录").mkdir()
    with pytest.raises(BindingError, match="之内"):
        bind_folder(settings, "default", str(folder / "子目录"))
    if os.geteuid() != 0:  # root reads every folder
        locked = tmp_path / "锁住"
        locked.mkdir(mode=0)
        with pytest.raises(BindingError, match="权限"):
            bind_folder(settings, "default", str(locked))


def test_bindings_survive_a_restart_and_a_failed_watcher_can_be_restarted(
    settings: Settings, folder: Path, tmp_path: Path
) -> None:
    at = start()
    bind(at, str(folder))
    wait_page(at, lambda at: "年假.txt" in sync_table(at))
    restart_app(settings)

    # changed while the app was down: the restarted app's first sync brings it in
    (folder / "报销.txt").write_text("住宿标准为每晚不超过五百元。", encoding="utf-8")
    at = start()
    assert folder.name in texts(at.markdown)
    wait_page(at, lambda at: "报销.txt" in sync_table(at))
    assert sources(settings) == {"年假.txt", "报销.txt"}
    restart_app(settings)

    # the folder is away when the app starts (a drive not plugged in): said, nothing removed
    away = tmp_path / "别处"
    folder.rename(away)
    at = start()
    wait_page(at, lambda at: "监视已停止" in texts(at.error))
    assert "文件夹不存在了" in texts(at.error)
    assert sources(settings) == {"年假.txt", "报销.txt"}
    away.rename(folder)
    click(at, "重新启动监视")
    wait_page(at, lambda at: "监视中" in texts(at.caption))
    assert "监视已停止" not in texts(at.error)


def test_reruns_and_other_sessions_share_one_watcher_per_folder(
    settings: Settings, folder: Path
) -> None:
    first = start()
    bind(first, str(folder))
    watcher = get_watchers(settings).get("default", folder)
    assert watcher is not None
    second = start()  # another browser tab
    for at in (first, second, first, second):
        rerun(at)
    assert get_watchers(settings).get("default", folder) is watcher
    threads = [t for t in threading.enumerate() if t.name == "zhiku-watch-default"]
    assert len(threads) == 1 and threads[0].is_alive()
    wait_page(second, lambda at: "年假.txt" in sync_table(at))  # both tabs see its syncs
    assert "年假.txt" in sync_table(rerun(first))


def test_a_knowledge_base_deleted_from_the_command_line_is_not_watched_back(
    settings: Settings, folder: Path
) -> None:
    from ingest.store import delete_kb, kb_exists

    at = start()
    bind(at, str(folder))
    wait_page(at, lambda at: "年假.txt" in sync_table(at))
    watcher = get_watchers(settings).get("default", folder)
    assert watcher is not None
    delete_kb(settings, "default")  # by another process, its bindings file left behind
    rerun(at)
    wait_for(lambda: not watcher.running)
    (folder / "新文件.txt").write_text("删除之后写入的文件。", encoding="utf-8")
    rerun(at)
    assert get_watchers(settings).get("default", folder) is None
    assert not kb_exists(settings, "default")


def test_a_watcher_stops_when_another_process_deletes_its_knowledge_base(
    settings: Settings, folder: Path, embedder: Embedder
) -> None:
    """No page open to notice: the watcher itself sees its binding go, and a file written
    afterwards does not bring the deleted knowledge base back."""
    from app._watched import Watchers
    from app.access import Principal
    from app.service import Service
    from ingest.store import kb_exists

    bind_folder(settings, "default", str(folder))
    KnowledgeBase.open(settings, "default", create=True).close()
    watchers = Watchers()  # this process's, as a web app's
    watchers.ensure(settings, lambda: embedder)
    watcher = watchers.get("default", folder.resolve())
    assert watcher is not None
    wait_for(lambda: watcher.state.last_sync is not None)
    # another process (as the CLI, the local administrator): it does not know these watchers
    Service(settings).delete_kb(Principal.local("cli"), "default")
    wait_for(lambda: not watcher.running, timeout=30)
    (folder / "新文件.txt").write_text("删除之后写入的文件。", encoding="utf-8")
    time.sleep(QUIET_S)
    assert not kb_exists(settings, "default")


# ----- a watched folder is a source -----------------------------------------------------------


def test_a_bound_folder_is_a_source_whose_syncs_are_in_its_history(
    settings: Settings, folder: Path, embedder: Embedder
) -> None:
    """One source model: the binding is listed with the other sources, the clock never fires
    it (its watcher does), each watcher sync is recorded, and unbinding removes the source."""
    from app._watched import Watchers, unbind_folder
    from app.sources.model import SourceStore
    from app.sources.sync import due_sources

    bound = bind_folder(settings, "default", str(folder))
    KnowledgeBase.open(settings, "default", create=True).close()
    store = SourceStore(settings)
    (source,) = store.list("default")
    assert (source.kind, Path(source.location), source.schedule.watch) == ("folder", bound, True)
    assert source.schedule.describe_zh() == "文件变化时"
    assert due_sources(store) == []  # never synced, yet not due: the watcher starts its syncs
    watchers = Watchers()
    watchers.ensure(settings, lambda: embedder)
    try:
        wait_for(lambda: bool(store.get(source.id).history))
        first = store.get(source.id).history[-1]
        assert (first.trigger, first.added, first.failed) == ("watch", 1, 1)
        assert {Path(i.url).name for i in first.items} == {"年假.txt", "坏文件.pdf"}
        (folder / "报销.txt").write_text("差旅报销须在三十天内提交。", encoding="utf-8")
        wait_for(lambda: len(store.get(source.id).history) == 2, timeout=QUIET_S + 180)
        second = store.get(source.id).history[-1]
        assert (second.trigger, second.added, second.removed) == ("watch", 1, 0)
        assert [Path(i.url).name for i in second.items] == ["报销.txt"]
    finally:
        watchers.stop_all()
    # both syncs changed the knowledge base: each is in the audit log, by the watcher
    from app.state.audit import AuditLog

    rows = [e for e in AuditLog(settings).entries() if e.action == "sync"]
    assert [(e.actor, e.kb, e.outcome) for e in sorted(rows, key=lambda e: e.id)] == [
        ("watcher", "default", "failed"),  # 坏文件.pdf could not be read
        ("watcher", "default", "ok"),
    ]
    assert all(e.target == str(bound) for e in rows)
    changed = [c for e in rows for c in json.loads(e.detail or "{}")["changed"]]
    assert any(c.startswith("added") and c.endswith("报销.txt") for c in changed)
    assert "报销.txt" in sources(settings)
    assert unbind_folder(settings, "default", bound)
    assert store.list("default") == [] and load_bindings(settings, "default") == []
    assert not unbind_folder(settings, "default", bound)


def test_a_folder_added_with_sources_watch_is_followed_by_the_app(
    settings: Settings, folder: Path, zhiku: Callable[..., Any]
) -> None:
    """`zhiku sources add DIR --watch` is the command line's way to bind a folder: the app's
    watchers follow it; a web page cannot be watched, and two schedules are refused."""
    zhiku_cli = zhiku
    result = zhiku_cli("sources", "add", str(folder), "--watch", "--no-sync")
    assert result.exit_code == 0, result.output
    assert "on every change" in result.output
    assert [b.folder for b in load_bindings(settings, "default")] == [folder.resolve()]
    refused = zhiku_cli("sources", "add", "https://example.com/", "--watch", "--no-sync")
    assert refused.exit_code != 0 and "only a folder can be watched" in refused.output
    both = zhiku_cli("sources", "add", str(folder.parent), "--watch", "--every", "1h")
    assert both.exit_code != 0 and "one of --every, --at or --watch" in both.output
    with pytest.raises(BindingError) as again:  # the page's form: the same folder twice
        bind_folder(settings, "default", str(folder))
    assert "已经" in again.value.zh


def test_bindings_kept_by_an_earlier_version_become_sources(
    settings: Settings, folder: Path
) -> None:
    import json

    legacy = settings.zhiku_home / "watched"
    legacy.mkdir(parents=True)
    body = {"version": 1, "folders": [{"path": str(folder), "bound_at": "2026-01-02T03:04:05"}]}
    (legacy / "default.json").write_text(json.dumps(body), encoding="utf-8")
    (binding,) = load_bindings(settings, "default")
    assert (binding.folder, binding.bound_at) == (folder, "2026-01-02T03:04:05")
    assert not legacy.exists()  # moved once, not read twice
    assert [b.folder for b in load_bindings(settings, "default")] == [folder]
