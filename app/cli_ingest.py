"""`zhiku ingest`, `zhiku watch`, `zhiku kb remove` and `zhiku kb check --repair` through the
service: the commands are `ingest.cli`'s (the same options, progress, tables and exit codes),
and what they change they change through `Service` as the CLI's local user (`CLI_USER`), so
rights are checked and every ingestion, watched change, removal and repair is in the audit log
(`ingest` may not import the app: `app.cli` installs this with `ingest.cli.use_writes`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from app.cli_people import CLI_USER
from app.service import Service, ServiceError
from ingest import IngestReport, Progress
from ingest.cli import Writes, fail
from ingest.settings import Settings
from ingest.web import CrawlLimits, Fetcher, WebReport


@contextmanager
def _service(settings: Settings) -> Iterator[Service]:
    service = Service(settings)
    try:
        yield service
    except ServiceError as exc:  # a refusal or an unfinished deletion: one line, not a traceback
        raise fail(str(exc)) from exc
    finally:
        service.close()


class ServiceWrites(Writes):
    def ingest_paths(
        self,
        settings: Settings,
        paths: Sequence[Path],
        kb: str | None,
        *,
        prune: bool,
        reindex: bool,
        progress: Progress,
        cancel: threading.Event,
    ) -> IngestReport:
        with _service(settings) as service:
            return service.ingest_local(
                CLI_USER, kb, paths, prune=prune, reindex=reindex, progress=progress, cancel=cancel
            )

    def ingest_web(
        self,
        settings: Settings,
        urls: Sequence[str],
        kb: str | None,
        *,
        limits: CrawlLimits,
        fetcher: Fetcher,
        progress: Progress,
        cancel: threading.Event,
    ) -> WebReport:
        with _service(settings) as service:
            return service.ingest_pages(
                CLI_USER, kb, urls, limits=limits, fetcher=fetcher, progress=progress, cancel=cancel
            )

    def remove(
        self, settings: Settings, kb: str | None, selectors: Sequence[str]
    ) -> tuple[list[str], list[str]]:
        with _service(settings) as service:
            return service.remove_matching(CLI_USER, kb, selectors)

    def repair(self, settings: Settings, kb: str) -> list[str]:
        with _service(settings) as service:
            return service.repair_kb(CLI_USER, kb)

    def watch(
        self,
        settings: Settings,
        paths: Sequence[Path],
        kb: str | None,
        *,
        quiet_s: float,
        on_report: Callable[[IngestReport], None],
        stop: threading.Event,
    ) -> None:
        with _service(settings) as service:
            service.watch_folders(
                CLI_USER, kb, paths, quiet_s=quiet_s, on_report=on_report, stop=stop
            )


__all__ = ["ServiceWrites"]
