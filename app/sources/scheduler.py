"""The background scheduler: while the web app (or `zhiku serve`) runs, every source whose
schedule is due is synced, one at a time, in one daemon thread per process.

Sources are re-read from their store at every look, so a source added by the CLI, another
browser session or the API is picked up without a restart. A sync that raises is logged and
recorded as the scheduler's last error; the next source goes on. Two processes running a
scheduler over one data home do not sync one source twice at once (the sync's lock refuses the
second, which skips it). Every sync goes through the service (`Service.sync_source`): one that
changes something is in the audit log, as the person who asked for it (`sync_now(who=...)`) or
as the scheduler.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from app._ingesting import SCHEDULER
from app.access import Principal
from app.service import Service
from app.sources.model import Source, SourceError, SourceStore
from app.sources.sync import due_sources
from ingest import Embedder
from ingest.settings import Settings
from ingest.store import StoreError

log = logging.getLogger(__name__)


@dataclass
class Scheduler:
    settings: Settings
    embedder: Callable[[], Embedder]
    poll_s: float | None = None  # seconds between looks; None: SOURCE_POLL_S
    running_source: Source | None = None  # the source being synced now
    last_error: str | None = None  # the latest failed sync, in Chinese, for the page
    busy: set[str] = field(default_factory=set)  # ids of sources synced by `sync_now` now
    service: Service | None = None  # checks and audits the syncs; None: one of its own
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        if self.alive and not self._stop.is_set():
            return  # running (one stopping is replaced: its loop ends at its next look)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zhiku-sources", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _service(self) -> Service:
        if self.service is None:
            self.service = Service(self.settings)  # only checks and audits: no model of its own
        return self.service

    def sync_now(
        self, source: Source, trigger: str = "manual", who: Principal | None = None
    ) -> None:
        """Sync one source in a thread of its own (the page's 立即同步, a source just added),
        for `who` (None: the scheduler)."""
        if source.id in self.busy:
            return
        self.busy.add(source.id)

        def run() -> None:
            try:
                self._service().sync_source(
                    who or SCHEDULER, source, trigger=trigger, embedder=self.embedder()
                )
            except SourceError:
                pass  # already being synced
            except Exception as exc:
                log.exception("sync of %s failed", source.location)
                self.last_error = f"{source.location}:{getattr(exc, 'zh', None) or exc!r}"[:300]
            finally:
                self.busy.discard(source.id)

        threading.Thread(target=run, name=f"zhiku-sync-{source.id}", daemon=True).start()

    def run_due(self) -> int:
        """Sync every due source once; how many were synced."""
        store = SourceStore(self.settings)
        done = 0
        for source in due_sources(store):
            if self._stop.is_set():
                break
            if source.id in self.busy:
                continue
            self.running_source = source
            try:
                self._service().sync_source(
                    SCHEDULER, source, trigger="schedule", embedder=self.embedder(),
                    cancel=self._stop, only_if_due=True,
                )  # fmt: skip
                done += 1
            except SourceError:
                continue  # being synced elsewhere right now, or synced since the list was read
            except (StoreError, OSError) as exc:
                log.exception("scheduled sync of %s failed", source.location)
                self.last_error = f"{source.location}:{getattr(exc, 'zh', exc)}"
            except Exception as exc:  # a bug in one sync must not end the schedule
                log.exception("scheduled sync of %s failed", source.location)
                self.last_error = f"{source.location}:{exc!r}"[:300]
            finally:
                self.running_source = None
        return done

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_due()
            except Exception:  # reading the store failed: try again at the next look
                log.exception("the source scheduler's look failed")
            self._stop.wait(self.settings.source_poll_s if self.poll_s is None else self.poll_s)
