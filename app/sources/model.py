"""Sources as data: a folder, a web page or a site bound to a knowledge base, with an optional
schedule, what its last syncs learnt of each page, and its history.

Kept in the state database (`app/state/sources.py`: SQLite under the data home, or the PostgreSQL
of `STATE_URL` that several app servers share) behind `SourceStore`, the one place that reads or
writes them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from app.state import open_state
from app.state import sources as records
from app.state.jobs import server_id
from ingest.settings import Settings
from ingest.store import validate_kb_name
from ingest.web import Known, Validators

SourceKind = Literal["folder", "page", "site"]
log = logging.getLogger(__name__)

SOURCES_DIR = "sources"  # where an earlier version kept them, a JSON file per knowledge base
KEPT_HISTORY = 50  # syncs a source remembers
KEPT_ITEMS = 200  # per-URL lines a sync record keeps (the counts are always whole)

_EVERY = re.compile(r"^\s*(\d+)\s*(s|m|min|h|d)\s*$", re.IGNORECASE)
_AT = re.compile(r"^\s*([01]?\d|2[0-3]):([0-5]\d)\s*$")
_UNIT_S = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


class SourceError(ValueError):
    """A source that cannot be added or found; English for the CLI, Chinese for the page."""

    def __init__(self, en: str, zh: str) -> None:
        super().__init__(en)
        self.en = en
        self.zh = zh


@dataclass(frozen=True)
class Schedule:
    """Every `every_s` seconds, daily at `at` ("HH:MM", local time), or, for a folder, `watch`:
    followed by the file system's change events while the app runs (a full sync at its start,
    then each quiet change); none of them: by hand."""

    every_s: int | None = None
    at: str | None = None
    watch: bool = False

    @classmethod
    def parse(
        cls, every: str | None = None, at: str | None = None, watch: bool = False
    ) -> Schedule:
        if sum(map(bool, (every, at, watch))) > 1:
            raise SourceError(
                "give one of --every, --at or --watch",
                "只能选择「每隔」「每天定时」「监视变化」之一",
            )
        if watch:
            return cls(watch=True)
        if every:
            match = _EVERY.match(every)
            if not match or int(match.group(1)) == 0:
                raise SourceError(
                    f"not an interval: {every!r} (say 30m, 2h or 1d)",
                    f"无法识别的间隔:{every!r}(例如 30m、2h、1d)",
                )
            return cls(every_s=int(match.group(1)) * _UNIT_S[match.group(2).lower()])
        if at:
            match = _AT.match(at)
            if not match:
                raise SourceError(
                    f"not a time of day: {at!r} (say 03:00)", f"无法识别的时间:{at!r}(例如 03:00)"
                )
            return cls(at=f"{int(match.group(1)):02d}:{match.group(2)}")
        return cls()

    @property
    def manual(self) -> bool:
        return self.every_s is None and self.at is None and not self.watch

    def describe(self) -> str:
        if self.every_s is not None:
            for unit, seconds in (("d", 86400), ("h", 3600), ("m", 60)):
                if self.every_s % seconds == 0:
                    return f"every {self.every_s // seconds}{unit}"
            return f"every {self.every_s}s"
        if self.watch:
            return "on every change (while the app runs)"
        return f"daily at {self.at}" if self.at else "manual"

    def describe_zh(self) -> str:
        if self.every_s is not None:
            for unit, seconds in (("天", 86400), ("小时", 3600), ("分钟", 60)):
                if self.every_s % seconds == 0:
                    return f"每 {self.every_s // seconds} {unit}"
            return f"每 {self.every_s} 秒"
        if self.watch:
            return "文件变化时"
        return f"每天 {self.at}" if self.at else "手动"

    def next_run(self, last: datetime | None, now: datetime) -> datetime | None:
        """When the next sync is due (aware datetimes); None for a manual source and for a
        watched folder (its watcher, not the clock, starts its syncs). A source never synced
        is due at once."""
        if self.manual or self.watch:
            return None
        if last is None:
            return now
        if self.every_s is not None:
            return last + timedelta(seconds=self.every_s)
        assert self.at is not None
        hour, minute = (int(p) for p in self.at.split(":"))
        local_last = last.astimezone()
        due = local_last.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if due <= local_last:
            due += timedelta(days=1)
        return due.astimezone(UTC)


@dataclass(frozen=True)
class PageState:
    """What the syncs of a web source know of one URL it holds."""

    etag: str | None = None
    last_modified: str | None = None
    kind: str | None = None
    links: tuple[str, ...] = ()
    gone: int = 0  # syncs in a row that answered 404/410
    gone_status: int | None = None

    def known(self) -> Known:
        return Known(Validators(self.etag, self.last_modified), self.kind, self.links)

    @classmethod
    def of(cls, known: Known) -> PageState:
        v = known.validators
        return cls(v.etag, v.last_modified, known.kind, tuple(known.links))


@dataclass(frozen=True)
class SyncItem:
    url: str  # or a file's path
    status: str  # added / updated / removed / failed (skipped ones are counted, not listed)
    reason_en: str = ""
    reason_zh: str = ""


@dataclass(frozen=True)
class SyncRecord:
    started_at: str  # ISO, UTC
    seconds: float
    trigger: str  # "manual", "schedule", "cli", "api"
    added: int = 0
    updated: int = 0
    removed: int = 0
    failed: int = 0
    skipped: int = 0
    items: tuple[SyncItem, ...] = ()
    error_en: str = ""  # why the sync stopped before its end (nothing was removed then)
    error_zh: str = ""

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)


@dataclass(frozen=True)
class Source:
    id: str
    kb: str
    kind: SourceKind
    location: str  # the URL, or the folder's resolved path
    schedule: Schedule = field(default_factory=Schedule)
    created_at: str = ""
    max_depth: int | None = None  # a site's crawl limits; None: the settings'
    max_pages: int | None = None
    pages: dict[str, PageState] = field(default_factory=dict)
    history: tuple[SyncRecord, ...] = ()

    @property
    def last_sync(self) -> SyncRecord | None:
        return self.history[-1] if self.history else None

    def next_run(self, now: datetime | None = None) -> datetime | None:
        last = self.last_sync
        started = datetime.fromisoformat(last.started_at) if last else None
        return self.schedule.next_run(started, now or datetime.now(UTC))

    def due(self, now: datetime | None = None) -> bool:
        now = now or datetime.now(UTC)
        when = self.next_run(now)
        return when is not None and when <= now


def source_id(kb: str, location: str) -> str:
    return hashlib.sha1(f"{kb}\n{location}".encode()).hexdigest()[:10]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ----- storage ----------------------------------------------------------------------------


def _to_json(source: Source) -> dict[str, Any]:
    data = asdict(source)
    data["pages"] = {url: asdict(state) for url, state in source.pages.items()}
    return data


def _from_json(data: dict[str, Any]) -> Source:
    pages = {
        url: PageState(**{**state, "links": tuple(state.get("links", ()))})
        for url, state in data.get("pages", {}).items()
    }
    history = tuple(
        SyncRecord(**{**r, "items": tuple(SyncItem(**i) for i in r.get("items", ()))})
        for r in data.get("history", ())
    )
    return Source(
        id=data["id"],
        kb=data["kb"],
        kind=data["kind"],
        location=data["location"],
        schedule=Schedule(**data.get("schedule", {})),
        created_at=data.get("created_at", ""),
        max_depth=data.get("max_depth"),
        max_pages=data.get("max_pages"),
        pages=pages,
        history=history,
    )


def _read_legacy(path: Path) -> list[dict[str, Any]]:
    """The sources of an earlier version's `sources/<kb>.json`, each checked by reading it."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for entry in raw.get("sources", []) if isinstance(raw, dict) else []:
        try:
            out.append(_to_json(_from_json(entry)))
        except (KeyError, TypeError, ValueError):
            continue  # an entry edited by hand into something else: nothing usable in it
    return out


_unreadable_warned: set[Path] = set()


class SourceStore:
    """The sources of one data home, in its state database (`app/state/sources.py`), so that
    every app server, the CLI and the API over one database share them, their history and the
    sync lease. Each change is one transaction of its own.

    Sources an earlier version kept in `<ZHIKU_HOME>/sources/<kb>.json` are moved into the
    database the first time a store opens on that data home (the file is then renamed
    `<kb>.json.imported`)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = open_state(settings)
        # a sync's lease outlives a silent server as long as an ingestion job does
        self.lease_s = settings.job_stale_s
        self.legacy_folder = settings.zhiku_home / SOURCES_DIR
        self._import_legacy()

    def _import_legacy(self) -> None:
        if not self.legacy_folder.is_dir():
            return
        for path in sorted(self.legacy_folder.glob("*.json")):
            try:
                validate_kb_name(path.stem)
                rows = _read_legacy(path)
            except FileNotFoundError:
                continue  # another process imported it meanwhile
            except (OSError, ValueError) as exc:
                if path not in _unreadable_warned:  # left for a person; said once per process
                    _unreadable_warned.add(path)
                    log.warning("sources file %s could not be imported: %s", path, exc)
                continue
            records.import_sources(self.engine, rows, KEPT_HISTORY)
            with suppress(FileNotFoundError):  # another process renamed it first
                path.rename(path.with_name(f"{path.name}.imported"))
            Path(f"{path}.lock").unlink(missing_ok=True)  # the file lock an earlier version used

    def kbs(self) -> list[str]:
        return records.source_kbs(self.engine)

    def list(self, kb: str | None = None) -> list[Source]:
        if kb is not None:
            kb = validate_kb_name(kb)
        return [_from_json(row) for row in records.list_sources(self.engine, kb)]

    def get(self, ident: str, kb: str | None = None) -> Source:
        """A source by its id (or an unambiguous prefix of it) or its location."""
        matches = [s for s in self.list(kb) if s.id.startswith(ident) or s.location == ident]
        if len(matches) != 1:
            raise SourceError(
                f"no source {ident!r}" if not matches else f"{ident!r} names several sources",
                f"没有找到来源 {ident!r}" if not matches else f"{ident!r} 对应多个来源",
            )
        return matches[0]

    def _by_id(self, source_id: str) -> Source | None:
        found = records.list_sources(self.engine, source_id=source_id)
        return _from_json(found[0]) if found else None

    def add(self, source: Source) -> Source:
        validate_kb_name(source.kb)
        if not records.add_source(self.engine, _to_json(source), KEPT_HISTORY):
            raise SourceError(
                f"{source.location} is already a source of {source.kb!r}",
                f"{source.location} 已经是知识库 {source.kb!r} 的来源",
            )
        return source

    def update(self, source: Source) -> None:
        """Replace a source's settings (schedule, limits), keeping its pages and history."""
        records.update_settings(
            self.engine, source.id, asdict(source.schedule), source.max_depth, source.max_pages
        )

    def remove(self, source: Source) -> bool:
        return records.remove_source(self.engine, source.id)

    def delete_kb(self, kb: str) -> None:
        """A deleted knowledge base has no sources any more (nor an earlier version's file)."""
        kb = validate_kb_name(kb)
        records.delete_kb_sources(self.engine, kb)
        for name in (f"{kb}.json", f"{kb}.json.imported", f"{kb}.json.lock"):
            (self.legacy_folder / name).unlink(missing_ok=True)

    def record(self, source: Source, pages: dict[str, PageState] | None, sync: SyncRecord) -> None:
        """Store a finished sync: the pages' new state (None: unchanged) and its record."""
        pages_json = None if pages is None else {url: asdict(s) for url, s in pages.items()}
        records.record_sync(self.engine, source.id, pages_json, asdict(sync), KEPT_HISTORY)

    @contextmanager
    def syncing(self, source: Source) -> Iterator[Source]:
        """Hold the source's sync lease while the block runs, renewed a few times per lease
        so it never runs out under a live sync; yields the source as stored now (pages and
        history as the last sync, on whichever server, left them). Raises SourceError when
        another sync of it holds the lease, on this server or another, or when it is gone."""
        owner = server_id()
        taken = records.take_lease(self.engine, source.id, owner, self.lease_s)
        if taken == "held":
            raise SourceError(
                f"a sync of {source.location} is already running", f"{source.location} 正在同步中"
            )
        current = self._by_id(source.id) if taken == "taken" else None
        if current is None:
            raise SourceError(
                f"no source {source.id!r} (removed)", f"没有找到来源 {source.id!r}(已删除)"
            )
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(self.lease_s / 6):  # as often as jobs beat
                try:
                    if not records.renew_lease(self.engine, source.id, owner, self.lease_s):
                        log.warning("the sync lease of %s was lost", source.location)
                        return
                except Exception:  # the database away for a moment: the next renewal tries
                    log.exception("the sync lease of %s could not be renewed", source.location)

        renewer = threading.Thread(target=renew, name=f"zhiku-lease-{source.id}", daemon=True)
        renewer.start()
        try:
            yield current
        finally:
            stop.set()
            renewer.join()
            try:
                records.free_lease(self.engine, source.id, owner)
            except Exception:  # it runs out by itself
                log.exception("the sync lease of %s could not be freed", source.location)
