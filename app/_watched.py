"""Watched folders in the web app: folder sources (`app/sources`) whose schedule is `watch`,
and the background watchers that keep their knowledge bases in step with them while the app runs.

A binding is a source like any other (kept by `SourceStore`, listed by `zhiku sources list`,
removed with the knowledge base); only what starts its syncs differs: each watcher is
`ingest.watch.watch` in a daemon thread (a full sync first, which the content-hash idempotence
makes cheap for a folder already ingested, then every quiet change), and each of its syncs is
recorded in the source's history. One `Watchers` registry per app process holds them; every
browser session reads the same watchers, and a watcher that raised keeps its error until someone
restarts it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app._ingesting import changed_anything, changes, outcome_of
from app.access import Principal
from app.sources.model import Schedule, Source, SourceError, SourceStore, source_id
from app.sources.sync import new_source, record_of
from app.state.audit import AuditLog
from ingest import Embedder, IngestReport, Progress
from ingest.settings import Settings
from ingest.store import ModelMismatch, StoreError, list_kbs, validate_kb_name
from ingest.watch import WatchState, watch

log = logging.getLogger(__name__)

# where bindings were kept before they were sources; read once, moved into the sources, removed
LEGACY_DIR = "watched"
# the web app's folder watchers act for the data home, as the scheduler does
WATCHER = Principal("watcher", "admin", origin="watch")
KEPT_REPORTS = 10  # syncs whose per-file outcomes a watcher keeps
# how often a watcher checks that its binding is still there: another process deleting the
# knowledge base (`zhiku kb delete`, the API) or unbinding the folder removes it
BINDING_POLL_S = 2.0


class BindingError(ValueError):
    """A folder that cannot be bound; `zh` says why, for the page."""

    def __init__(self, zh: str) -> None:
        super().__init__(zh)
        self.zh = zh


@dataclass(frozen=True)
class Binding:
    folder: Path  # resolved
    bound_at: str  # ISO time, UTC
    source_id: str = ""


def _binding(source: Source) -> Binding:
    return Binding(Path(source.location), source.created_at, source.id)


def _is_watched(source: Source) -> bool:
    return source.kind == "folder" and source.schedule.watch


def _move_legacy(settings: Settings) -> None:
    """Bindings kept in `watched/<kb>.json` by earlier versions become watched folder sources
    (their files are removed once moved; a file that cannot be read is left for a person)."""
    folder = settings.zhiku_home / LEGACY_DIR
    if not folder.is_dir():
        return
    store = SourceStore(settings)
    for path in sorted(folder.glob("*.json")):
        try:
            kb = validate_kb_name(path.stem)
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (StoreError, OSError, ValueError):
            continue
        entries = raw.get("folders", []) if isinstance(raw, dict) else []
        for entry in entries:
            if not (isinstance(entry, dict) and isinstance(entry.get("path"), str)):
                continue
            source = Source(
                id=source_id(kb, entry["path"]), kb=kb, kind="folder", location=entry["path"],
                schedule=Schedule(watch=True), created_at=str(entry.get("bound_at", "")),
            )  # fmt: skip
            with suppress(SourceError):  # moved already (a second process got there first)
                store.add(source)
        path.unlink(missing_ok=True)
    with suppress(OSError):  # something else in it: left alone
        folder.rmdir()


def load_bindings(settings: Settings, kb_name: str) -> list[Binding]:
    """The folders `kb_name` watches."""
    _move_legacy(settings)
    return [_binding(s) for s in SourceStore(settings).list(kb_name) if _is_watched(s)]


def all_bindings(settings: Settings) -> dict[str, list[Binding]]:
    """Every knowledge base's bindings (those with at least one folder)."""
    _move_legacy(settings)
    out: dict[str, list[Binding]] = {}
    for source in SourceStore(settings).list():
        if _is_watched(source):
            out.setdefault(source.kb, []).append(_binding(source))
    return out


def check_folder(settings: Settings, raw: str, bound: list[Binding]) -> Path:
    """The resolved folder `raw` names, or BindingError with the reason in Chinese."""
    text = raw.strip().strip('"').strip("'")
    if not text:
        raise BindingError("请输入文件夹的路径。")
    path = Path(text).expanduser()
    if not path.is_absolute():
        raise BindingError(f"请输入完整路径(以 / 开头),而不是相对路径:{text}")
    try:
        path = path.resolve()
    except (OSError, RuntimeError) as exc:
        raise BindingError(f"无法解析这个路径:{text}({exc})") from exc
    if not path.exists():
        raise BindingError(f"文件夹不存在:{path}")
    if not path.is_dir():
        raise BindingError(f"这不是文件夹,而是一个文件:{path}。单个文件请用上方的上传导入。")
    if not os.access(path, os.R_OK | os.X_OK):
        raise BindingError(f"没有读取这个文件夹的权限:{path}")
    try:
        with os.scandir(path) as entries:
            next(entries, None)
    except OSError as exc:
        raise BindingError(f"无法读取这个文件夹:{path}({exc.strerror or exc})") from exc
    home = settings.zhiku_home.resolve()
    if home == path or home.is_relative_to(path) or path.is_relative_to(home):
        raise BindingError(
            f"不能绑定知库自己的数据目录或包含它的文件夹:{path}(数据目录是 {home})。"
        )
    for binding in bound:
        if binding.folder == path:
            raise BindingError(f"这个文件夹已经绑定到这个知识库:{path}")
        if path.is_relative_to(binding.folder):
            raise BindingError(f"它在已绑定的文件夹 {binding.folder} 之内,已经在监视中。")
        if binding.folder.is_relative_to(path):
            raise BindingError(
                f"它包含已绑定的文件夹 {binding.folder}:请先解除那个绑定,再绑定上一级文件夹。"
            )
    return path


def bind_folder(settings: Settings, kb_name: str, raw: str) -> Path:
    """Bind a folder to a knowledge base: a folder source followed on every change (kept across
    restarts). Raises BindingError."""
    store = SourceStore(settings)
    _move_legacy(settings)
    # every folder source of the knowledge base counts, watched or synced on a clock
    folders = [_binding(s) for s in store.list(kb_name) if s.kind == "folder"]
    folder = check_folder(settings, raw, folders)
    try:
        store.add(new_source(kb_name, str(folder), schedule=Schedule(watch=True)))
    except SourceError as exc:
        raise BindingError(exc.zh) from exc
    return folder


def unbind_folder(settings: Settings, kb_name: str, folder: Path) -> bool:
    """Forget a binding; the documents already ingested from it stay. Whether it was bound."""
    store = SourceStore(settings)
    for source in store.list(kb_name):
        if _is_watched(source) and Path(source.location) == folder:
            return store.remove(source)
    return False


def delete_kb_watched(settings: Settings, kb_name: str) -> None:
    """A deleted knowledge base watches nothing any more (watchers of other processes see the
    bindings go within `BINDING_POLL_S`)."""
    store = SourceStore(settings)
    for source in store.list(kb_name):
        if _is_watched(source):
            store.remove(source)


def record_sync(settings: Settings, kb_name: str, folder: Path, report: IngestReport) -> None:
    """A watcher's sync in its source's history, as the scheduler's syncs are, and in the audit
    log when it changed something (as the watcher: whoever bound the folder is in the log's
    `bind_folder` row)."""
    store = SourceStore(settings)
    for source in store.list(kb_name):
        if _is_watched(source) and Path(source.location) == folder:
            started = datetime.now(UTC) - timedelta(seconds=report.seconds)
            when = started.isoformat(timespec="seconds")
            store.record(source, None, record_of(report, when, report.seconds, "watch", None))
            break
    if changed_anything(report):
        AuditLog(settings).record(
            WATCHER,
            "sync",
            kb_name,
            str(folder),
            outcome=outcome_of(report),
            detail={"trigger": "watch", **changes(report)},
        )


def error_zh(exc: BaseException, folder: Path) -> str:
    """Why a watcher stopped, for the page (the English detail stays in the log)."""
    if isinstance(exc, ModelMismatch):
        return exc.rejection.zh
    if isinstance(exc, StoreError):
        return exc.zh
    if isinstance(exc, FileNotFoundError):
        return f"文件夹不存在了:{folder}(移走、改名或所在的磁盘未连接)"
    if isinstance(exc, PermissionError):
        return f"没有读取这个文件夹的权限:{folder}"
    if isinstance(exc, OSError):
        return f"无法监视这个文件夹:{folder}({exc.strerror or exc})"
    return f"监视出错:{exc!r}"[:300]


# ----- the watchers -------------------------------------------------------------------------


@dataclass
class FolderWatcher:
    """One bound folder followed by `ingest.watch.watch` in a daemon thread."""

    settings: Settings
    kb_name: str
    folder: Path
    embedder: Embedder
    progress: Progress = field(default_factory=Progress)  # of the sync under way
    state: WatchState = field(default_factory=WatchState)
    error: str | None = None  # why the thread stopped, in Chinese; None while it runs
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self.state = WatchState()
        self.error = None
        self._stop.set()  # the guard of an earlier run, if any, ends
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"zhiku-watch-{self.kb_name}", daemon=True
        )
        self._thread.start()
        threading.Thread(
            target=self._guard, name=f"zhiku-watch-guard-{self.kb_name}", daemon=True
        ).start()

    def _guard(self) -> None:
        """Stop when the binding goes, whoever removed it: a knowledge base deleted by another
        process is not brought back by this watcher's next sync, even with no page open to
        run `Watchers.ensure`."""
        stop = self._stop
        while not stop.wait(BINDING_POLL_S):
            if self.folder not in {b.folder for b in load_bindings(self.settings, self.kb_name)}:
                log.info(
                    "%s is no longer bound to %s: its watcher stops", self.folder, self.kb_name
                )
                stop.set()

    def _run(self) -> None:
        try:
            watch(
                self.settings,
                [self.folder],
                self.kb_name,
                quiet_s=self.settings.watch_quiet_s,
                stop=self._stop,
                cancel=self._stop,  # unbinding or deleting does not wait for a long sync
                embedder=self.embedder,
                progress=self.progress,
                state=self.state,
                on_report=self._on_report,
            )
        except Exception as exc:  # shown on the page with a restart button; the app goes on
            log.exception("watcher of %s for %s stopped", self.folder, self.kb_name)
            self.error = error_zh(exc, self.folder)

    def _on_report(self, report: IngestReport) -> None:
        # the page shows the last sync; a watcher that runs for weeks must not grow without end
        del self.state.reports[:-KEPT_REPORTS]
        try:
            record_sync(self.settings, self.kb_name, self.folder, report)
        except Exception:  # the history is a record of the work, never a reason to stop it
            log.exception("the sync of %s could not be recorded", self.folder)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def sync_now(self) -> None:
        self.state.resync.set()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


class Watchers:
    """The watchers of one data home in this process, one per (knowledge base, folder)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watchers: dict[tuple[str, Path], FolderWatcher] = {}

    def ensure(
        self,
        settings: Settings,
        embedder: Callable[[], Embedder],
        progress: Callable[[], Progress] = Progress,
    ) -> None:
        """Start a watcher for every binding without one, stop those whose binding or
        knowledge base is gone (unbound or deleted in another session or process). A watcher
        that stopped on an error is left stopped (its error shown) until `restart`."""
        bound = all_bindings(settings)
        # a knowledge base deleted elsewhere (`zhiku kb delete`) is not brought back by a sync
        existing = set(list_kbs(settings)) if bound else set()
        wanted = {
            (kb, b.folder) for kb, bindings in bound.items() if kb in existing for b in bindings
        }
        with self._lock:
            for key in [k for k in self._watchers if k not in wanted]:
                self._watchers.pop(key).stop(timeout=0)  # a sync stops at its next step
            for kb, folder in sorted(wanted - self._watchers.keys()):
                watcher = FolderWatcher(settings, kb, folder, embedder(), progress())
                self._watchers[(kb, folder)] = watcher
                watcher.start()

    def get(self, kb_name: str, folder: Path) -> FolderWatcher | None:
        with self._lock:
            return self._watchers.get((kb_name, folder))

    def restart(self, kb_name: str, folder: Path) -> None:
        with self._lock:
            watcher = self._watchers.get((kb_name, folder))
        if watcher is not None and not watcher.running:
            watcher.start()

    def stop(self, kb_name: str, folder: Path | None = None, timeout: float = 0.0) -> None:
        """Stop the watchers of a knowledge base (one folder, or all of them); a sync under
        way stops at its next file or model call, waited for up to `timeout` seconds."""
        with self._lock:
            keys = [k for k in self._watchers if k[0] == kb_name and folder in (None, k[1])]
            stopping = [self._watchers.pop(k) for k in keys]
        for watcher in stopping:
            watcher.stop(timeout)

    def failed(self) -> list[FolderWatcher]:
        """Watchers that stopped on an error."""
        with self._lock:
            return [w for w in self._watchers.values() if w.error is not None]

    def stop_all(self, timeout: float = 30.0) -> None:
        with self._lock:
            stopping = list(self._watchers.values())
            self._watchers.clear()
        for watcher in stopping:
            watcher.stop(timeout)
