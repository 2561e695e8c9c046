"""Watched folders: files that appear or change are ingested once they have been quiet for a
while, files that go are pruned, moves are both.

watchdog reports raw events; what they mean is decided when a path has been quiet for
`quiet_s` seconds, from what is on disk then, not from the event kinds: an editor that saves by
writing a temporary file and renaming it over the original, a copy still being written, a file
deleted and recreated all come down to "this path exists now (ingest it) or not (prune it)". A
file whose size or modification time still changes is left for another quiet period. Editors'
temporary and lock files are never looked at.
"""

from __future__ import annotations

import errno
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from ingest._embed import Embedder
from ingest._insert import FileOutcome, IngestReport, Progress, discover, ingest_paths
from ingest._reasons import Rejection
from ingest._store import KnowledgeBase
from ingest.settings import Settings

log = logging.getLogger(__name__)

# Editors' and browsers' scratch files: vim (.swp, .swx, 4913, ~), Office (~$…), LibreOffice
# (.~lock…#), emacs (#…#, .#…), downloads in progress, and any hidden file.
_TEMPORARY = re.compile(
    r"(^[.~#])|(~$)|(^4913$)|(\.(sw[a-p]|swx|tmp|temp|part|partial|crdownload|download|lock)$)"
    r"|(#$)",
    re.IGNORECASE,
)


def is_temporary(path: Path) -> bool:
    """Whether `path` (or a folder it is in, below the watched root) is scratch, never data."""
    return bool(_TEMPORARY.search(path.name))


@dataclass
class _Touched:
    since: float  # monotonic time of the last event
    stat: tuple[int, int] | None  # (size, mtime_ns) when it was last touched


@dataclass
class WatchState:
    """What the watcher has seen and done; the CLI prints it, a UI can show it."""

    pending: int = 0  # paths changed and not yet ingested (including those being synced)
    last_sync: float | None = None  # wall-clock time of the last finished sync
    reports: list[IngestReport] = field(default_factory=list)
    syncing: bool = False  # a sync is running now
    # set it to have the watcher sync everything again at its next poll ("sync now")
    resync: threading.Event = field(default_factory=threading.Event)


class _Collector(FileSystemEventHandler):
    def __init__(self, roots: Sequence[Path]) -> None:
        self.roots = roots
        self.touched: dict[Path, _Touched] = {}
        self.lock = threading.Lock()

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return  # reading a file changes nothing
        if event.is_directory and event.event_type == "modified":
            return  # an entry came or went: that entry has its own event
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            if raw:
                self.touch(Path(str(raw)))

    def touch(self, path: Path) -> None:
        if self._ignored(path):
            return
        with self.lock:
            self.touched[path] = _Touched(time.monotonic(), _stat(path))

    def _ignored(self, path: Path) -> bool:
        for root in self.roots:
            try:
                parts = path.relative_to(root).parts
            except ValueError:
                continue
            return any(is_temporary(Path(part)) for part in parts)
        return True  # outside every watched root

    def due(self, quiet_s: float) -> list[Path]:
        """Paths quiet for `quiet_s` whose size and time stopped changing; the others wait."""
        now = time.monotonic()
        ready = []
        with self.lock:
            for path, touched in list(self.touched.items()):
                if now - touched.since < quiet_s:
                    continue
                current = _stat(path)
                if current != touched.stat:  # still being written: another quiet period
                    self.touched[path] = _Touched(now, current)
                    continue
                del self.touched[path]
                ready.append(path)
        return ready


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns) if path.is_file() else (-1, 0)


def sync(
    settings: Settings,
    kb_name: str | None,
    paths: Sequence[Path],
    roots: Sequence[Path],
    embedder: Embedder | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> IngestReport:
    """Bring the knowledge base in line with `paths` (files or folders) as they are now: what
    exists is ingested (unchanged files are skipped), what is gone, and every document that
    came from under a gone folder, is removed. Only documents under `roots` are ever pruned.
    Setting `cancel` stops it at the next file or model call, before pruning."""
    found, _ = discover([p for p in paths if p.exists()])
    existing = [f for f in found if not _scratch(f, roots)]
    report = (
        ingest_paths(
            settings, existing, kb_name, progress=progress, embedder=embedder, cancel=cancel
        )
        if existing
        else IngestReport()
    )
    if report.cancelled:
        return report
    # a path gone, or a folder synced whole: documents from under it whose files are gone
    gone = _gone_origins(settings, kb_name, [p for p in paths if not p.is_file()], roots)
    if gone:
        kb = KnowledgeBase.open(settings, kb_name, create=True)
        try:
            with kb.writer(None) as writer:
                writer.remove_origins(gone)
        finally:
            kb.close()
        for origin in gone:
            report.outcomes.append(FileOutcome(origin, "removed", reason=Rejection("gone")))
    return report


def _scratch(path: Path, roots: Sequence[Path]) -> bool:
    for root in roots:
        if path.is_relative_to(root):
            return any(is_temporary(Path(part)) for part in path.relative_to(root).parts)
    return is_temporary(path)


def _gone_origins(
    settings: Settings, kb_name: str | None, under: Sequence[Path], roots: Sequence[Path]
) -> list[str]:
    """Origins whose files no longer exist, at or below one of `under`, inside the roots."""
    if not under:
        return []
    kb = KnowledgeBase.open(settings, kb_name, create=True)
    try:
        origins = kb.origins()
    finally:
        kb.close()
    out = []
    for origin in origins:
        path = Path(origin)
        if path.exists() or not any(path.is_relative_to(root) for root in roots):
            continue
        if any(path == g or path.is_relative_to(g) for g in under):
            out.append(origin)
    return out


def watch(
    settings: Settings,
    paths: Sequence[Path],
    kb_name: str | None = None,
    *,
    quiet_s: float = 2.0,
    on_report: Callable[[IngestReport], None] = lambda r: None,
    stop: threading.Event | None = None,
    embedder: Embedder | None = None,
    progress: Progress | None = None,
    state: WatchState | None = None,
    poll_s: float = 0.25,
    cancel: threading.Event | None = None,
) -> WatchState:
    """Watch folders (and files) until `stop` is set or Ctrl+C: first one full sync (new,
    changed and gone files since the last run), then every quiet change as it comes. `stop`
    set from the start means one sync; `cancel` also stops a sync under way at its next file
    or model call (what is committed stays; a watcher being shut down passes its `stop`)."""
    roots = [Path(p).resolve() for p in paths]
    for root in roots:
        if not root.exists():
            raise FileNotFoundError(errno.ENOENT, "no such file or folder to watch", str(root))
    # A watched folder that vanishes whole is more often a drive unmounted or a folder moved
    # than a decision to delete everything: the watcher stops saying so, nothing is pruned.
    folders = [root for root in roots if root.is_dir()]
    stop = stop or threading.Event()
    state = state or WatchState()
    collector = _Collector(roots)
    observer = Observer()
    for root in roots:
        folder = root if root.is_dir() else root.parent
        observer.schedule(collector, str(folder), recursive=root.is_dir())
    observer.start()  # before the first sync: nothing written during it is missed

    def check_folders() -> None:
        for folder in folders:
            if not folder.is_dir():
                raise FileNotFoundError(errno.ENOENT, "the watched folder is gone", str(folder))

    def run_sync(targets: Sequence[Path]) -> None:
        check_folders()
        state.syncing = True
        try:
            report = sync(settings, kb_name, targets, roots, embedder, progress, cancel=cancel)
        finally:
            state.syncing = False
        state.last_sync = time.time()
        if report.outcomes:
            state.reports.append(report)
            on_report(report)

    try:
        run_sync(roots)
        while not stop.wait(poll_s):
            check_folders()  # a moved folder sends no event of its own to every observer
            if state.resync.is_set():
                state.resync.clear()
                with collector.lock:  # a full sync covers whatever was touched so far
                    collector.touched.clear()
                    state.pending = 0
                run_sync(roots)
            ready = collector.due(quiet_s)
            with collector.lock:
                state.pending = len(collector.touched) + len(ready)
            if ready:
                run_sync(ready)
                with collector.lock:
                    state.pending = len(collector.touched)
    finally:
        observer.stop()
        observer.join(timeout=5)
    return state
