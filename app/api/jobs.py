"""Background ingestion jobs: an upload or a re-ingest runs after its request has returned, and
`GET /v1/jobs/{id}` shows its progress and per-file results.

One job runs at a time per server (ingestion fills both cores on its own; two at once would only
make both slower), the others wait in order. The uploaded bytes are saved under the data home
before the request returns, so a job holds only paths. Jobs are kept in the state database
(`app/state/jobs.py`): any server sharing it reports any job, and a job whose server was killed
is marked failed with that reason instead of staying "running" for ever.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from app.access import Principal
from app.api.schemas import FileResult, JobOut, file_result
from app.service import ImportedFile, Service, ServiceError
from app.state import jobs as records
from app.state.jobs import JobRecord
from ingest import FileOutcome, Progress, SavedUpload
from ingest.store import StoreError

log = logging.getLogger("zhiku.api")
_SAVE_EVERY_S = 1.0  # progress counters are written at most this often (a file done: at once)

Job = JobRecord


def job_out(job: JobRecord) -> JobOut:
    return JobOut(
        id=job.id,
        kind=job.kind,  # type: ignore[arg-type]
        kb=job.kb,
        status=job.state,  # type: ignore[arg-type]
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        files_total=job.files_total,
        files_done=job.files_done,
        chunks_planned=job.chunks_planned,
        chunks_embedded=job.chunks_embedded,
        files=[FileResult(**f) for f in job.files],
        error=job.error,
        error_zh=job.error_zh,
    )


class _JobProgress(Progress):
    """Writes the job's progress, and reads back whether any server asked to cancel it."""

    def __init__(self, jobs: Jobs, job: JobRecord, cancel: threading.Event) -> None:
        self.jobs = jobs
        self.job = job
        self.cancel = cancel
        self.saved_at = 0.0

    def _save(self, now: bool = False) -> None:
        if now or time.monotonic() - self.saved_at >= _SAVE_EVERY_S:
            self.jobs.save(self.job)
            self.saved_at = time.monotonic()
            try:
                if records.cancel_requested(self.jobs.heart.engine, self.job.id):
                    self.cancel.set()
            except Exception:  # the database away for a moment: asked again at the next step
                log.exception("could not read job %s", self.job.id)

    def start(self, files: int) -> None:
        self.job.files_total = max(self.job.files_total, files)
        self._save()

    def file_done(self, outcome: FileOutcome) -> None:
        self.job.files_done += 1
        self._save(now=True)

    def chunks_planned(self, chunks: int) -> None:
        self.job.chunks_planned += chunks
        self._save()

    def chunks_embedded(self, chunks: int) -> None:
        self.job.chunks_embedded += chunks
        self._save()


class Jobs:
    """This server's ingestion jobs, and every server's as stored."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.heart = records.heartbeat(service.settings)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="zhiku-ingest")

    def save(self, job: JobRecord) -> None:
        self.heart.save(job)

    def get(self, job_id: str) -> JobRecord | None:
        return self.heart.get(job_id)

    def cancel(self, job_id: str) -> JobRecord | None:
        """Ask the job's server (this one or another) to stop it: the files it committed stay,
        the others are reported not ingested; uploading them again resumes."""
        records.request_cancel(self.heart.engine, job_id)
        return self.get(job_id)

    def _add(self, job: JobRecord, work: Callable[[JobRecord, threading.Event], None]) -> JobRecord:
        job.owner = self.heart.owner
        records.save_job(
            self.heart.engine, job
        )  # visible to every server before the request returns
        self._pool.submit(self._run, job, work)
        return job

    def _run(self, job: JobRecord, work: Callable[[JobRecord, threading.Event], None]) -> None:
        cancel = threading.Event()
        if records.cancel_requested(self.heart.engine, job.id):  # cancelled while queued
            job.state, job.finished_at = "cancelled", time.time()
            self.save(job)
            return
        job.state, job.started_at = "running", time.time()
        self.save(job)
        try:
            work(job, cancel)
            job.state = "cancelled" if cancel.is_set() else "done"
        except (StoreError, ServiceError) as exc:
            job.state, job.error, job.error_zh = "failed", exc.en, exc.zh
        except Exception as exc:  # a job never takes the server down; the log has the trace
            log.exception("ingestion job %s failed", job.id)
            job.state = "failed"
            job.error = f"internal error ({type(exc).__name__}: {exc})"
            job.error_zh = f"内部错误（{type(exc).__name__}：{exc}）"
        finally:
            job.finished_at = time.time()
            self.save(job)

    def upload(self, who: Principal, kb: str, saved: list[SavedUpload]) -> JobRecord:
        """Ingest uploads already saved; the rejected ones are reported failed at once."""
        files = []
        for upload in saved:
            if upload.path is None:
                rejection = upload.rejection
                files.append(
                    file_result(
                        ImportedFile(
                            upload.name,
                            "",
                            "failed",
                            0,
                            0,
                            rejection.en if rejection else "not saved",
                            rejection.zh if rejection else "未保存",
                        )
                    )
                )
            else:
                files.append(
                    FileResult(name=upload.name, stored_name=upload.stored_name, status="pending")
                )
        job = JobRecord(
            secrets.token_hex(8),
            "upload",
            kb,
            [f.model_dump() for f in files],
            files_total=len(saved),
        )

        def work(job: JobRecord, cancel: threading.Event) -> None:
            progress = _JobProgress(self, job, cancel)
            results = self.service.ingest_saved(who, kb, saved, progress, cancel)
            job.files = [file_result(r).model_dump() for r in results]
            job.files_done = len(results)

        return self._add(job, work)

    def reingest(self, who: Principal, kb: str, doc_id: str) -> JobRecord:
        self.service.require(who, "write", kb)
        doc = self.service.document(who, kb, doc_id)
        pending = FileResult(name=doc.origin, stored_name=doc.origin, status="pending")
        job = JobRecord(secrets.token_hex(8), "reingest", kb, [pending.model_dump()], files_total=1)

        def work(job: JobRecord, cancel: threading.Event) -> None:
            progress = _JobProgress(self, job, cancel)
            outcome = self.service.reingest_document(who, kb, doc_id, progress)
            job.files = [
                FileResult(
                    name=doc.origin,
                    stored_name=doc.origin,
                    status=outcome.status,
                    documents=outcome.documents,
                    chunks=outcome.chunks,
                    reason=outcome.reason_en,
                    reason_zh=outcome.reason_zh,
                ).model_dump()
            ]
            job.files_done = 1

        return self._add(job, work)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


__all__ = ["Job", "Jobs", "job_out"]
