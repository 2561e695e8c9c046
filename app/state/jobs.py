"""Ingestion jobs (uploads, re-ingestions) in the state database, so that any server reports them.

The server running a job is its `owner` and refreshes the job's `heartbeat` while it runs; a job
whose heartbeat stopped (its server was killed or lost) is marked failed with that reason by the
next server that looks at it, or by any server's periodic sweep. Per-file outcomes are a JSON list.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app.state.engine import Json, metadata, state_url, writing
from ingest.settings import Settings

log = logging.getLogger(__name__)

UNFINISHED = ("queued", "running")
FINISHED = ("done", "failed", "cancelled")
# A job whose server has not refreshed it for this long is taken for lost: several heartbeats
# missed, not one slow write.
STALE_AFTER_S = 60.0


jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("kb", sa.String(128), nullable=False, index=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("heartbeat", sa.Float, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("files_total", sa.Integer, nullable=False, default=0),
    sa.Column("files_done", sa.Integer, nullable=False, default=0),
    sa.Column("chunks_planned", sa.Integer, nullable=False, default=0),
    sa.Column("chunks_embedded", sa.Integer, nullable=False, default=0),
    sa.Column("files", Json, nullable=False),  # [{name, stored_name, status, …}]
    sa.Column("error", sa.Text),
    sa.Column("error_zh", sa.Text),
    # asked by any server; the owner stops at its next step (between two model calls)
    sa.Column("cancel_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("extra", Json),  # what a later version keeps per job (say, what resumes it)
)


def server_id() -> str:
    """This process, as a job's owner: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass
class JobRecord:
    id: str
    kind: str
    kb: str
    files: list[dict[str, Any]]
    owner: str = ""
    state: str = "queued"
    heartbeat: float = 0.0
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    files_total: int = 0
    files_done: int = 0
    chunks_planned: int = 0
    chunks_embedded: int = 0
    error: str | None = None
    error_zh: str | None = None
    extra: dict[str, Any] | None = None
    cancel_requested: bool = False


def save_job(engine: Engine, job: JobRecord) -> None:
    """Write the job as it is now (insert or replace), its heartbeat refreshed."""
    job.heartbeat = time.time()
    values = asdict(job)
    asked = values.pop("cancel_requested")  # set by whoever asks, never cleared by a save
    with writing(engine) as connection:
        updated = connection.execute(
            sa.update(jobs).where(jobs.c.id == job.id).values(**values)
        ).rowcount
        values["cancel_requested"] = asked
        if not updated:
            connection.execute(sa.insert(jobs).values(**values))


def get_job(engine: Engine, job_id: str, stale_after_s: float = STALE_AFTER_S) -> JobRecord | None:
    """The job, a lost one marked failed first."""
    fail_lost_jobs(engine, stale_after_s, job_id)
    with engine.connect() as connection:
        row = connection.execute(sa.select(jobs).where(jobs.c.id == job_id)).mappings().first()
    return JobRecord(**row) if row is not None else None


def list_jobs(engine: Engine, kb: str | None = None, limit: int = 100) -> list[JobRecord]:
    """The newest jobs first, a lost one marked failed first."""
    fail_lost_jobs(engine)
    query = sa.select(jobs).order_by(jobs.c.created_at.desc()).limit(limit)
    if kb is not None:
        query = query.where(jobs.c.kb == kb)
    with engine.connect() as connection:
        return [JobRecord(**row) for row in connection.execute(query).mappings()]


def request_cancel(engine: Engine, job_id: str) -> bool:
    """Ask the server running an unfinished job to stop it; returns whether it was unfinished."""
    with writing(engine) as connection:
        return bool(
            connection.execute(
                sa.update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state.in_(UNFINISHED))
                .values(cancel_requested=True)
            ).rowcount
        )


def cancel_requested(engine: Engine, job_id: str) -> bool:
    with engine.connect() as connection:
        return bool(
            connection.execute(
                sa.select(jobs.c.cancel_requested).where(jobs.c.id == job_id)
            ).scalar()
        )


def beat(engine: Engine, owner: str) -> None:
    """Refresh the heartbeat of every unfinished job of `owner`."""
    with writing(engine) as connection:
        connection.execute(
            sa.update(jobs)
            .where(jobs.c.owner == owner, jobs.c.state.in_(UNFINISHED))
            .values(heartbeat=time.time())
        )


def fail_lost_jobs(
    engine: Engine, stale_after_s: float = STALE_AFTER_S, job_id: str | None = None
) -> int:
    """Mark failed, with the reason, every unfinished job whose server stopped refreshing it;
    returns how many."""
    now = time.time()
    where = [jobs.c.state.in_(UNFINISHED), jobs.c.heartbeat < now - stale_after_s]
    if job_id is not None:
        where.append(jobs.c.id == job_id)
    with engine.connect() as connection:  # a read first: the usual case changes nothing
        lost = connection.execute(sa.select(jobs.c.id, jobs.c.owner).where(*where)).all()
    for lost_id, owner in lost:
        seconds = f"{stale_after_s:.0f}"
        with writing(engine) as connection:
            connection.execute(
                sa.update(jobs)
                .where(jobs.c.id == lost_id, *where)
                .values(
                    state="failed",
                    finished_at=now,
                    error=(
                        f"the server running this job ({owner}) stopped: no sign of it for "
                        f"{seconds} s; files not reported done were not ingested, run it again"
                    ),
                    error_zh=(
                        f"运行此任务的服务器（{owner}）已停止：超过 {seconds} 秒没有响应；"
                        "未标记完成的文件没有导入，请重新运行"
                    ),
                )
            )
    return len(lost)


class Heartbeat:
    """One process's side of the jobs: saves its jobs under its own owner id, refreshes their
    heartbeat every sixth of `JOB_STALE_S` and fails the jobs of servers that stopped (so a lost
    job is reported even when nobody reads it). One per process and database (`heartbeat`)."""

    def __init__(self, engine: Engine, stale_after_s: float) -> None:
        self.engine = engine
        self.owner = server_id()
        self.stale_after_s = stale_after_s
        fail_lost_jobs(engine, stale_after_s)  # left by a server that is gone, or this one
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zhiku-jobs-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.stale_after_s / 6):
            try:
                beat(self.engine, self.owner)
                fail_lost_jobs(self.engine, self.stale_after_s)
            except Exception:  # the database away for a moment: the next beat tries again
                log.exception("jobs heartbeat failed")

    def stop(self) -> None:
        self._stop.set()

    def save(self, job: JobRecord) -> None:
        """Write `job` as this process's; a failure is logged, the job goes on (its next save
        writes it)."""
        job.owner = self.owner
        try:
            save_job(self.engine, job)
        except Exception:
            log.exception("could not save job %s", job.id)

    def get(self, job_id: str) -> JobRecord | None:
        return get_job(self.engine, job_id, self.stale_after_s)


_hearts: dict[str, Heartbeat] = {}
_hearts_lock = threading.Lock()


def heartbeat(settings: Settings) -> Heartbeat:
    """This process's heartbeat on `settings`' state database."""
    from app.state.engine import open_state

    url = state_url(settings)
    with _hearts_lock:
        found = _hearts.get(url)
        if found is None or found.engine is not open_state(settings):
            if found is not None:  # its engine was closed (tests): a new one beats instead
                found.stop()
            found = _hearts[url] = Heartbeat(open_state(settings), settings.job_stale_s)
        return found


def new_job_id() -> str:
    return secrets.token_hex(8)


__all__ = [
    "STALE_AFTER_S",
    "UNFINISHED",
    "Heartbeat",
    "JobRecord",
    "beat",
    "fail_lost_jobs",
    "get_job",
    "heartbeat",
    "jobs",
    "list_jobs",
    "new_job_id",
    "save_job",
    "server_id",
]
