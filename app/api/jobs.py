"""Background ingestion jobs: an upload or a re-ingest runs after its request has returned, and
`GET /v1/jobs/{id}` shows its progress and per-file results.

One job runs at a time (ingestion fills both cores on its own; two at once would only make both
slower), the others wait in order. The uploaded bytes are saved under the data home before the
request returns, so a job holds only paths; the job list itself lives in memory and is gone
when the server stops (the documents it ingested are not).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from app.access import Principal
from app.api.schemas import FileResult, JobOut, file_result
from app.service import ImportedFile, Service, ServiceError
from ingest._insert import FileOutcome, Progress
from ingest._store import StoreError
from ingest._upload import SavedUpload

log = logging.getLogger("zhiku.api")
_KEEP_JOBS = 1000  # finished jobs remembered; the oldest are forgotten first


@dataclass
class Job:
    id: str
    kind: str
    kb: str
    files: list[FileResult]
    status: str = "queued"
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    files_total: int = 0
    files_done: int = 0
    chunks_planned: int = 0
    chunks_embedded: int = 0
    error: str | None = None
    error_zh: str | None = None

    def out(self) -> JobOut:
        return JobOut(
            id=self.id,
            kind=self.kind,  # type: ignore[arg-type]
            kb=self.kb,
            status=self.status,  # type: ignore[arg-type]
            created_at=self.created_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            files_total=self.files_total,
            files_done=self.files_done,
            chunks_planned=self.chunks_planned,
            chunks_embedded=self.chunks_embedded,
            files=list(self.files),
            error=self.error,
            error_zh=self.error_zh,
        )


class _JobProgress(Progress):
    def __init__(self, job: Job) -> None:
        self.job = job

    def start(self, files: int) -> None:
        self.job.files_total = max(self.job.files_total, files)

    def file_done(self, outcome: FileOutcome) -> None:
        self.job.files_done += 1

    def chunks_planned(self, chunks: int) -> None:
        self.job.chunks_planned += chunks

    def chunks_embedded(self, chunks: int) -> None:
        self.job.chunks_embedded += chunks


class Jobs:
    def __init__(self, service: Service) -> None:
        self.service = service
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="zhiku-ingest")

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def _add(self, job: Job, work: Callable[[Job], None]) -> Job:
        with self._lock:
            self._jobs[job.id] = job
            finished = [j for j in self._jobs.values() if j.finished_at is not None]
            for old in sorted(finished, key=lambda j: j.finished_at or 0)[:-_KEEP_JOBS]:
                del self._jobs[old.id]
        self._pool.submit(self._run, job, work)
        return job

    def _run(self, job: Job, work: Callable[[Job], None]) -> None:
        job.status, job.started_at = "running", time.time()
        try:
            work(job)
            job.status = "done"
        except (StoreError, ServiceError) as exc:
            job.status, job.error, job.error_zh = "failed", exc.en, exc.zh
        except Exception as exc:  # a job never takes the server down; the log has the trace
            log.exception("ingestion job %s failed", job.id)
            job.status = "failed"
            job.error = f"internal error ({type(exc).__name__}: {exc})"
            job.error_zh = f"内部错误（{type(exc).__name__}：{exc}）"
        finally:
            job.finished_at = time.time()

    def upload(self, who: Principal, kb: str, saved: list[SavedUpload]) -> Job:
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
        job = Job(secrets.token_hex(8), "upload", kb, files, files_total=len(saved))

        def work(job: Job) -> None:
            results = self.service.ingest_saved(who, kb, saved, _JobProgress(job))
            job.files = [file_result(r) for r in results]
            job.files_done = len(results)

        return self._add(job, work)

    def reingest(self, who: Principal, kb: str, doc_id: str) -> Job:
        self.service.require(who, "write", kb)
        doc = self.service.document(who, kb, doc_id)
        pending = FileResult(name=doc.origin, stored_name=doc.origin, status="pending")
        job = Job(secrets.token_hex(8), "reingest", kb, [pending], files_total=1)

        def work(job: Job) -> None:
            outcome = self.service.reingest_document(who, kb, doc_id, _JobProgress(job))
            job.files = [
                FileResult(
                    name=doc.origin,
                    stored_name=doc.origin,
                    status=outcome.status,
                    documents=outcome.documents,
                    chunks=outcome.chunks,
                    reason=outcome.reason_en,
                    reason_zh=outcome.reason_zh,
                )
            ]
            job.files_done = 1

        return self._add(job, work)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


__all__ = ["Job", "Jobs"]
