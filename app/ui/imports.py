"""Importing files from the browser: the ingestion progress display and the result table of an
upload (saving and ingesting are service calls as the person uploading, `Service.save_files` +
`Service.ingest_files`, which check their right to write the knowledge base)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st

from app.access import Principal
from app.service import Service
from app.state.jobs import Heartbeat, JobRecord, heartbeat, new_job_id
from app.ui.markdown import escape_markdown, file_name
from ingest import (
    FileOutcome,
    Progress,
    Rejection,
    SavedUpload,
    Throughput,
    duration_zh,
)
from ingest.settings import Settings

STATUS_ZH = {
    "added": "新增",
    "updated": "更新",
    "skipped": "跳过",
    "failed": "失败",
    "removed": "移除",
    "cancelled": "已取消",
}
# Streamlit's bundled icon font: emoji would depend on the fonts of the user's system.
STATUS_ICON = {
    "added": ":green[:material/check_circle:]",
    "updated": ":blue[:material/sync:]",
    "skipped": ":gray[:material/skip_next:]",
    "failed": ":red[:material/error:]",
    "removed": ":gray[:material/delete:]",
    "cancelled": ":orange[:material/cancel:]",
}
# in an upload job's `extra`: the page that ran it reported its end (a failure included)
REPORTED = "reported"
CANCELLED_ZH = "已取消，未导入:再次上传这些文件即可导入(已完成的文件会跳过)"


def outcome_reason_zh(outcome: FileOutcome) -> str:
    return outcome.reason_zh


class _Counts(Progress):
    """What an ingest run has done so far, and the progress line and fraction drawn from it:
    files, chunks embedded of those planned, chunks/s and the time left (the same computation
    as the command line's, `ingest._throughput`)."""

    def __init__(self, display_name: Callable[[str], str] = file_name) -> None:
        self.display_name = display_name
        self.files = 0
        self.done = 0
        self.planned = 0
        self.embedded = 0
        self.shown = 0.0
        self.lines: list[str] = []
        self.started = time.monotonic()

    def start(self, files: int) -> None:
        """A run begins (a watcher reuses one display for each of its syncs); lines of files
        kept out before it (`rejected`) stay."""
        self.files = files
        self.done = self.planned = self.embedded = 0
        self.shown = 0.0
        self.started = time.monotonic()
        self.changed()

    def file_done(self, outcome: FileOutcome) -> None:
        self.done += 1
        line = f"{STATUS_ICON[outcome.status]} {escape_markdown(self.display_name(outcome.path))}:"
        line += STATUS_ZH[outcome.status]
        if outcome.status in ("added", "updated"):
            line += f"({outcome.chunks} 个段落)"
        reason = outcome_reason_zh(outcome)
        if reason:
            line += f" — {escape_markdown(reason)}"
        self.add_line(line)
        self.changed()

    def chunks_planned(self, chunks: int) -> None:
        self.planned += chunks
        self.changed()

    def chunks_embedded(self, chunks: int) -> None:
        self.embedded += chunks
        self.changed()

    def rejected(self, name: str, reason: str) -> None:
        """A file kept out before ingestion (bad name, type or size)."""
        line = f"{STATUS_ICON['failed']} {escape_markdown(name)}:{STATUS_ZH['failed']}"
        line += f" — {escape_markdown(reason)}"
        self.add_line(line)

    def add_line(self, line: str) -> None:
        self.lines.append(line)

    def changed(self) -> None:
        """Something moved (drawn at once, or read by the page's next poll)."""

    def text(self) -> str:
        text = f"已处理 {self.done}/{self.files} 个文件"
        if self.planned:
            text += f" · 已向量化 {self.embedded}/{self.planned} 个段落"
        elapsed = time.monotonic() - self.started
        chunks = Throughput.of(self.embedded, self.planned, elapsed)
        files = Throughput.of(self.done, self.files, elapsed)
        if chunks.rate is not None:
            text += f" · {chunks.rate:.1f} 段/秒"
        # Chunks are planned a batch ahead, so the files left count too: the longer estimate.
        left = [eta for eta in (chunks.eta_s, files.eta_s) if eta is not None]
        if left and self.done < self.files:
            text += f" · 预计还需 {duration_zh(max(left))}"
        return text

    def fraction(self) -> float:
        # Files finish only after their batch is embedded, so embedding progress moves the bar
        # during one large file; it never moves backwards when more chunks are planned.
        files = self.done / self.files if self.files else 0.0
        chunks = self.embedded / self.planned if self.planned else files
        self.shown = max(self.shown, min(1.0, 0.5 * files + 0.5 * chunks))
        return self.shown


class StreamlitProgress(_Counts):
    """Shows an ingest run as an overall progress bar and one status line per file, drawn as
    it goes (the run is in the script's own thread)."""

    def __init__(
        self,
        bar: st.delta_generator.DeltaGenerator,
        status: st.delta_generator.DeltaGenerator,
    ) -> None:
        super().__init__()
        self.bar = bar
        self.status = status

    def add_line(self, line: str) -> None:
        super().add_line(line)
        self.status.write(line)

    def message(self, text: str) -> None:
        self.status.caption(escape_markdown(text))

    def changed(self) -> None:
        self.bar.progress(self.fraction(), text=self.text())


class JobProgress(_Counts):
    """Records a run in a background thread; the page draws it on each poll (Streamlit draws
    only from the script's thread). Reads of a few counters need no lock: each is one int."""

    def __init__(self) -> None:
        super().__init__()
        self.note = ""  # the latest message (model loading and the like)
        self.on_file: Callable[[FileOutcome], None] | None = None

    def message(self, text: str) -> None:
        self.note = text

    def file_done(self, outcome: FileOutcome) -> None:
        super().file_done(outcome)
        if self.on_file is not None:
            self.on_file(outcome)


def rejection_zh(rejection: Rejection | None) -> str:
    return rejection.zh if rejection is not None else ""


# ----- importing uploads --------------------------------------------------------------------


@dataclass(frozen=True)
class ImportRow:
    """One uploaded file in the result table."""

    name: str  # as uploaded
    stored_name: str  # as saved, when that differs
    status: str  # added / updated / skipped / failed
    documents: int
    chunks: int
    reason: str  # Chinese

    def as_table_row(self) -> dict[str, object]:
        return {
            "文件": self.name,
            "结果": STATUS_ZH[self.status],
            "文档": self.documents,
            "段落": self.chunks,
            "说明": self.reason,
        }


def import_uploads(
    service: Service,
    who: Principal,
    kb_name: str,
    files: Sequence[tuple[str, bytes]],
    progress: _Counts,
    cancel: threading.Event | None = None,
    on_saved: Callable[[list[SavedUpload]], None] | None = None,
) -> list[ImportRow]:
    """Save uploaded files, ingest the ones that were saved, and report every file. When
    `cancel` is set the files committed so far stay and the rest are reported as cancelled.
    `on_saved` hears where the files were saved, before ingestion starts. Raises StoreError
    when the knowledge base itself cannot be written, ServiceError when `who` may not."""
    saved = service.save_files(who, kb_name, files)
    if on_saved is not None:
        on_saved(saved)
    return ingest_uploads(service, who, kb_name, saved, progress, cancel)


def ingest_uploads(
    service: Service,
    who: Principal,
    kb_name: str,
    saved: Sequence[SavedUpload],
    progress: _Counts,
    cancel: threading.Event | None = None,
) -> list[ImportRow]:
    """Ingest uploads already saved (`import_uploads`, or an interrupted upload's rest) and
    report every one."""
    for upload in saved:
        if upload.rejection is not None:
            progress.rejected(upload.name, upload.rejection.zh)
    by_path = {str(s.path): s for s in saved if s.path is not None}
    names = {path: s.name for path, s in by_path.items()}
    progress.display_name = lambda path: names.get(path, file_name(path))
    outcomes: dict[str, FileOutcome] = {}
    cancelled = False
    report = service.ingest_files(who, kb_name, saved, progress, cancel)
    if report is not None:
        outcomes = {o.path: o for o in report.outcomes}
        cancelled = report.cancelled
    rows: list[ImportRow] = []
    for upload in saved:
        if upload.rejection is not None or upload.path is None:
            rows.append(ImportRow(upload.name, "", "failed", 0, 0, rejection_zh(upload.rejection)))
            continue
        outcome = outcomes.get(str(upload.path))
        notes = []
        if upload.renamed:
            notes.append(f"已有同名的不同文件,另存为「{upload.stored_name}」")
        if outcome is None and cancelled:  # not reached, or its batch was not committed
            notes.append(CANCELLED_ZH)
            rows.append(
                ImportRow(upload.name, upload.stored_name, "cancelled", 0, 0, ";".join(notes))
            )
            continue
        if outcome is None:  # cannot happen: every saved path is reported
            rows.append(ImportRow(upload.name, upload.stored_name, "failed", 0, 0, "未处理"))
            continue
        reason = outcome_reason_zh(outcome)
        if reason:
            notes.append(reason)
        rows.append(
            ImportRow(
                upload.name,
                upload.stored_name,
                outcome.status,
                outcome.documents,
                outcome.chunks,
                ";".join(notes),
            )
        )
    return rows


def outcome_rows(
    outcomes: Sequence[FileOutcome], display_name: Callable[[str], str] = file_name
) -> list[dict[str, object]]:
    """Per-file outcomes of an ingest run as the rows of a result table (the upload's columns)."""
    return [
        {
            "文件": display_name(o.path),
            "结果": STATUS_ZH[o.status],
            "文档": o.documents,
            "段落": o.chunks,
            "说明": outcome_reason_zh(o),
        }
        for o in outcomes
    ]


# ----- an upload running in the background --------------------------------------------------


_API_STATUSES = {"pending", "added", "updated", "skipped", "failed", "removed"}


def _file_record(row: ImportRow) -> dict[str, object]:
    """An upload's outcome as a job's file record (the API's `FileResult` shape)."""
    status = row.status if row.status in _API_STATUSES else "failed"  # cancelled: not ingested
    reason = row.reason or ("已取消" if row.status == "cancelled" else "")
    return {
        "name": row.name,
        "stored_name": row.stored_name or row.name,
        "status": status,
        "documents": row.documents,
        "chunks": row.chunks,
        "reason": "cancelled" if row.status == "cancelled" else "",
        "reason_zh": reason,
    }


# the uploads running in this app process, by knowledge base: a reloaded page (a new session)
# finds its knowledge base's running upload here and shows it again, with its cancel button
_running: dict[str, ImportJob] = {}
_running_lock = threading.Lock()


def running_import(kb_name: str) -> ImportJob | None:
    with _running_lock:
        return _running.get(kb_name)


@dataclass
class ImportJob:
    """An upload ingested in a daemon thread, so the page stays live (progress, the cancel
    button) while it runs: a click arrives as a new script run, which finds the job in the
    session (or, after a reload, through `running_import`) and sets `cancel`. The run is
    `import_uploads`, unchanged. The job is kept in the state database too (`app.state.jobs`),
    so every server sharing it reports it, and a job of an app process that was killed is
    marked failed with the reason."""

    kb_name: str
    count: int
    progress: JobProgress = field(default_factory=JobProgress)
    cancel: threading.Event = field(default_factory=threading.Event)
    rows: list[ImportRow] | None = None
    error: str | None = None  # Chinese, when the knowledge base could not be written
    record: JobRecord | None = None
    _heart: Heartbeat | None = None
    _thread: threading.Thread | None = None

    @classmethod
    def start(
        cls,
        service: Service,
        who: Principal,
        kb_name: str,
        files: Sequence[tuple[str, bytes]],
        error_zh: Callable[[Exception], str],
    ) -> ImportJob:
        def work(job: ImportJob) -> list[ImportRow]:
            return import_uploads(service, who, kb_name, files, job.progress, job.cancel, job.saved)

        names = [name for name, _ in files]
        return cls._launch(service.settings, kb_name, names, work, error_zh, {})

    @classmethod
    def resume(
        cls,
        service: Service,
        who: Principal,
        kb_name: str,
        saved: Sequence[SavedUpload],
        error_zh: Callable[[Exception], str],
        resumes: str,
    ) -> ImportJob:
        """Ingest what an interrupted upload (job `resumes`) saved and did not commit."""

        def work(job: ImportJob) -> list[ImportRow]:
            job.saved(list(saved))
            return ingest_uploads(service, who, kb_name, saved, job.progress, job.cancel)

        names = [upload.name for upload in saved]
        extra: dict[str, object] = {"resumes": resumes}
        return cls._launch(service.settings, kb_name, names, work, error_zh, extra)

    @classmethod
    def _launch(
        cls,
        settings: Settings,
        kb_name: str,
        names: list[str],
        work: Callable[[ImportJob], list[ImportRow]],
        error_zh: Callable[[Exception], str],
        extra: dict[str, object],
    ) -> ImportJob:
        heart = heartbeat(settings)
        record = JobRecord(
            new_job_id(),
            "upload",
            kb_name,
            [{"name": name, "stored_name": "", "status": "pending"} for name in names],
            state="running",
            started_at=time.time(),
            files_total=len(names),
            extra=extra,
        )
        heart.save(record)
        job = cls(kb_name, len(names), record=record, _heart=heart)
        job.progress.on_file = job._file_done

        def run() -> None:
            try:
                job.rows = work(job)
                record.files = [_file_record(row) for row in job.rows]
                record.files_done = len(job.rows)
                record.state = "done"
            except Exception as exc:  # StoreError, or a bug: said on the page, the app goes on
                job.error = error_zh(exc)
                record.state, record.error, record.error_zh = "failed", str(exc), job.error
                # this page reports it: not an upload its app lost (app/ui/interrupted.py)
                record.extra = {**(record.extra or {}), REPORTED: True}
            finally:
                record.finished_at = time.time()
                heart.save(record)

        with _running_lock:
            _running[kb_name] = job
        job._thread = threading.Thread(target=run, name="zhiku-import", daemon=True)
        job._thread.start()
        return job

    def saved(self, saved: list[SavedUpload]) -> None:
        """The files are saved under the data home: recorded with the names they were saved
        as, so that an app stopped from now on leaves what resumes them."""
        assert self.record is not None and self._heart is not None
        self.record.files = [
            {
                "name": upload.name,
                "stored_name": upload.stored_name,
                "status": "pending" if upload.path is not None else "failed",
                "reason_zh": rejection_zh(upload.rejection),
            }
            for upload in saved
        ]
        self._heart.save(self.record)

    def _file_done(self, outcome: FileOutcome) -> None:
        """One file's outcome (for a new or changed file: once it is committed), kept in the
        job's record, so that every server reports the progress."""
        assert self.record is not None and self._heart is not None
        stored = Path(outcome.path).name
        for entry in self.record.files:
            if entry.get("stored_name") == stored and entry.get("status") == "pending":
                status = outcome.status if outcome.status in _API_STATUSES else "failed"
                entry.update(
                    status=status,
                    documents=outcome.documents,
                    chunks=outcome.chunks,
                    reason_zh=outcome_reason_zh(outcome),
                )
                break
        self.record.files_done += 1
        self._heart.save(self.record)

    def forget(self) -> None:
        """The page has shown the finished job: a later reload shows the document list."""
        with _running_lock:
            if _running.get(self.kb_name) is self:
                del _running[self.kb_name]

    @property
    def finished(self) -> bool:
        return self._thread is None or not self._thread.is_alive()

    def wait(self, timeout: float) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.finished
