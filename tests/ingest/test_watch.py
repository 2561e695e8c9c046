"""`zhiku watch`: a knowledge base kept in step with a folder while files are created, edited,
deleted, renamed and half-written, ends equal to a fresh ingest of the folder."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import make_settings

from ingest._embed import Embedder
from ingest._insert import ingest_paths
from ingest._store import KnowledgeBase
from ingest.settings import Settings
from ingest.watch import WatchState, is_temporary, watch

QUIET_S = 0.6


def contents(settings: Settings, kb: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """source → (sha256, chunk texts): what a search can find."""
    with KnowledgeBase.open(settings, kb) as base:
        assert base.check() == []
        return {
            d.source: (d.sha256, tuple(c.text for c in base.document_chunks(d.doc_id)))
            for d in base.documents()
        }


def wait_for(condition: Callable[[], bool], timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the watcher")
        time.sleep(0.2)


@pytest.fixture
def watching(tmp_path: Path, embedder: Embedder) -> Iterator[tuple[Settings, Path, WatchState]]:
    settings = make_settings(tmp_path / "home")
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("杭州的市花是桂花。", encoding="utf-8")
    (folder / "b.md").write_text("# 预算\n\n研发部预算三百万元。", encoding="utf-8")
    (folder / "d.txt").write_text("冷却塔每季度检查一次。", encoding="utf-8")
    state = WatchState()
    stop = threading.Event()
    thread = threading.Thread(
        target=watch,
        args=(settings, [folder], "w"),
        kwargs={"quiet_s": QUIET_S, "stop": stop, "embedder": embedder, "state": state},
        daemon=True,
    )
    thread.start()
    wait_for(lambda: state.last_sync is not None)
    yield settings, folder, state
    stop.set()
    thread.join(timeout=30)
    assert not thread.is_alive()


def test_watched_folder_ends_equal_to_a_fresh_ingest(
    watching: tuple[Settings, Path, WatchState], embedder: Embedder
) -> None:
    settings, folder, state = watching
    assert {Path(s).name for s in contents(settings, "w")} == {"a.txt", "b.md", "d.txt"}
    (folder / "c.txt").write_text("新文件：宁波是港口城市。", encoding="utf-8")  # create
    (folder / "a.txt").write_text("杭州的市花是桂花，市树是香樟。", encoding="utf-8")  # modify
    (folder / "b.md").unlink()  # delete
    (folder / "sub").mkdir()
    (folder / "d.txt").rename(folder / "sub" / "e.txt")  # move into a new folder
    scratch = (".a.txt.swp", "~$报告.docx", "下载中.pdf.crdownload", "4913", "notes.txt~")
    for name in scratch:
        (folder / name).write_bytes(b"\x00\x01 scratch, never ingested")
    # a file written in two parts with a pause shorter than the quiet period
    with (folder / "half.txt").open("w", encoding="utf-8") as f:
        f.write("前半部分，")
        f.flush()
        time.sleep(QUIET_S / 2)
        f.write("后半部分写完了。")
    # an editor's save: a temporary file renamed over the original
    (folder / ".c.txt.tmp").write_text("新文件：宁波是港口城市，舟山也是。", encoding="utf-8")
    (folder / ".c.txt.tmp").replace(folder / "c.txt")

    expected = {"a.txt", "c.txt", "e.txt", "half.txt"}
    wait_for(
        lambda: (
            state.pending == 0
            and {Path(s).name for s in contents(settings, "w")} == expected
            and "舟山" in "".join(t for _, ts in contents(settings, "w").values() for t in ts)
        )
    )
    time.sleep(QUIET_S * 2)  # nothing else is still coming
    for name in scratch:  # gone, as the editors' own files go; a plain ingest would try them
        (folder / name).unlink()
    fresh = make_settings(settings.zhiku_home.parent / "fresh")
    report = ingest_paths(fresh, [folder], "f", embedder=embedder)
    assert report.exit_code == 0, [o.reason_en for o in report.outcomes]
    assert contents(settings, "w") == contents(fresh, "f")
    assert any(o.status == "removed" for r in state.reports for o in r.outcomes)
    failed = [o for r in state.reports for o in r.outcomes if o.status == "failed"]
    assert failed == []  # no scratch file was ever tried


def test_deleting_a_folder_prunes_every_document_under_it(
    watching: tuple[Settings, Path, WatchState],
) -> None:
    settings, folder, _ = watching
    (folder / "sub").mkdir()
    (folder / "sub" / "x.txt").write_text("子目录里的文件。", encoding="utf-8")
    wait_for(lambda: any(Path(s).name == "x.txt" for s in contents(settings, "w")))
    for path in (folder / "sub").iterdir():
        path.unlink()
    (folder / "sub").rmdir()
    wait_for(lambda: not any(Path(s).name == "x.txt" for s in contents(settings, "w")))
    assert {Path(s).name for s in contents(settings, "w")} == {"a.txt", "b.md", "d.txt"}


@pytest.mark.parametrize(
    ("name", "scratch"),
    [
        ("report.docx", False),
        ("~$report.docx", True),
        (".report.docx.swp", True),
        ("report.docx.tmp", True),
        ("#notes.txt#", True),
        (".~lock.表格.xlsx#", True),
        ("电影.mp4.part", True),
        ("数据.csv", False),
    ],
)
def test_scratch_files_are_recognised(name: str, scratch: bool) -> None:
    assert is_temporary(Path(name)) is scratch


def test_files_deleted_while_not_watching_are_pruned_at_start(
    tmp_path: Path, embedder: Embedder
) -> None:
    settings = make_settings(tmp_path / "home")
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "keep.txt").write_text("留下的文件。", encoding="utf-8")
    (folder / "gone.txt").write_text("监视停止时被删除的文件。", encoding="utf-8")
    assert ingest_paths(settings, [folder], "w", embedder=embedder).exit_code == 0
    (folder / "gone.txt").unlink()
    stop = threading.Event()
    stop.set()  # the first sync only
    state = watch(settings, [folder], "w", stop=stop, embedder=embedder)
    assert {Path(s).name for s in contents(settings, "w")} == {"keep.txt"}
    assert [o.status for r in state.reports for o in r.outcomes if "gone" in o.path] == ["removed"]


def test_a_watched_folder_that_vanishes_whole_stops_the_watcher_and_keeps_its_documents(
    tmp_path: Path, embedder: Embedder
) -> None:
    # an unmounted drive or a moved folder looks like "everything deleted": nothing is pruned
    settings = make_settings(tmp_path / "home")
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("杭州的市花是桂花。", encoding="utf-8")
    state = WatchState()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            watch(settings, [folder], "w", quiet_s=QUIET_S, embedder=embedder, state=state)
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_for(lambda: state.last_sync is not None)
    folder.rename(tmp_path / "elsewhere")
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert len(failure) == 1 and isinstance(failure[0], FileNotFoundError)
    assert {Path(s).name for s in contents(settings, "w")} == {"a.txt"}
    with pytest.raises(FileNotFoundError):  # and a watch never starts on a missing folder
        watch(settings, [folder], "w", embedder=embedder)


def test_sync_now_resyncs_the_whole_folder(
    watching: tuple[Settings, Path, WatchState],
) -> None:
    settings, _, state = watching
    synced = state.last_sync
    state.resync.set()
    wait_for(lambda: state.last_sync != synced and not state.resync.is_set())
    assert {Path(s).name for s in contents(settings, "w")} == {"a.txt", "b.md", "d.txt"}
