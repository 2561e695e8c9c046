"""Watched folders in the web app: which folders a knowledge base is bound to, and the
background watchers that keep it in step with them while the app runs.

Bindings are kept per knowledge base under the data home (`<ZHIKU_HOME>/watched/<kb>.json`),
so they survive a restart; each watcher is `ingest.watch.watch` in a daemon thread (a full sync
first, which the content-hash idempotence makes cheap for a folder already ingested, then every
quiet change). One `Watchers` registry per app process holds them; every browser session reads
the same watchers, and a watcher that raised keeps its error until someone restarts it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ingest._embed import Embedder
from ingest._insert import IngestReport, Progress
from ingest._store import validate_kb_name
from ingest.settings import Settings
from ingest.store import ModelMismatch, StoreError, list_kbs
from ingest.watch import WatchState, watch

log = logging.getLogger(__name__)

WATCHED_DIR = "watched"
FORMAT_VERSION = 1
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


def _bindings_file(settings: Settings, kb_name: str) -> Path:
    return settings.zhiku_home / WATCHED_DIR / f"{validate_kb_name(kb_name)}.json"


def load_bindings(settings: Settings, kb_name: str) -> list[Binding]:
    """The folders `kb_name` is bound to; a file edited by hand into something else is read
    as far as it makes sense."""
    path = _bindings_file(settings, kb_name)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        entries = raw.get("folders", []) if isinstance(raw, dict) else []
    except (OSError, ValueError):
        return []
    out = []
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("path"), str):
            out.append(Binding(Path(entry["path"]), str(entry.get("bound_at", ""))))
    return out


def all_bindings(settings: Settings) -> dict[str, list[Binding]]:
    """Every knowledge base's bindings (those with at least one folder)."""
    folder = settings.zhiku_home / WATCHED_DIR
    if not folder.is_dir():
        return {}
    out = {}
    for path in sorted(folder.glob("*.json")):
        try:
            bindings = load_bindings(settings, path.stem)
        except StoreError:  # a file whose name is no knowledge-base name
            continue
        if bindings:
            out[path.stem] = bindings
    return out


def _save(settings: Settings, kb_name: str, bindings: list[Binding]) -> None:
    path = _bindings_file(settings, kb_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "version": FORMAT_VERSION,
        "folders": [{"path": str(b.folder), "bound_at": b.bound_at} for b in bindings],
    }
    partial = path.with_name(f"{path.name}.{os.getpid()}.part")
    partial.write_text(json.dumps(body, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(partial, path)


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
    """Bind a folder to a knowledge base (kept across restarts). Raises BindingError."""
    bindings = load_bindings(settings, kb_name)
    folder = check_folder(settings, raw, bindings)
    bindings.append(Binding(folder, datetime.now(UTC).isoformat(timespec="seconds")))
    _save(settings, kb_name, bindings)
    return folder


def unbind_folder(settings: Settings, kb_name: str, folder: Path) -> bool:
    """Forget a binding; the documents already ingested from it stay. Whether it was bound."""
    bindings = load_bindings(settings, kb_name)
    kept = [b for b in bindings if b.folder != folder]
    if len(kept) == len(bindings):
        return False
    _save(settings, kb_name, kept)
    return True


def delete_kb_watched(settings: Settings, kb_name: str) -> None:
    """A deleted knowledge base watches nothing any more."""
    _bindings_file(settings, kb_name).unlink(missing_ok=True)


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
                on_report=self._trim,
            )
        except Exception as exc:  # shown on the page with a restart button; the app goes on
            log.exception("watcher of %s for %s stopped", self.folder, self.kb_name)
            self.error = error_zh(exc, self.folder)

    def _trim(self, report: IngestReport) -> None:
        # the page shows the last sync; a watcher that runs for weeks must not grow without end
        del self.state.reports[:-KEPT_REPORTS]

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
