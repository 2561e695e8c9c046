"""Ingestion jobs in the state database (`app/state/jobs.py`): a job written by one server is
read by another, and a job whose server stopped is marked failed with the reason, never left
"running"; on SQLite and on PostgreSQL."""

from __future__ import annotations

import time

from app.state import open_state
from app.state.jobs import (
    JobRecord,
    beat,
    cancel_requested,
    fail_lost_jobs,
    get_job,
    list_jobs,
    request_cancel,
    save_job,
)
from ingest.settings import Settings

FILES = [{"name": "a.txt", "stored_name": "a.txt", "status": "pending"}]


def test_a_job_comes_back_as_saved(state_settings: Settings) -> None:
    engine = open_state(state_settings)
    job = JobRecord("j1", "upload", "default", list(FILES), owner="server-a", files_total=1)
    save_job(engine, job)
    job.state, job.files_done = "running", 1
    job.files = [{**FILES[0], "status": "added", "chunks": 3}]
    save_job(engine, job)
    again = get_job(engine, "j1")
    assert again is not None
    assert (again.state, again.files_done, again.files[0]["chunks"]) == ("running", 1, 3)
    assert get_job(engine, "nope") is None
    assert [j.id for j in list_jobs(engine, "default")] == ["j1"]
    assert list_jobs(engine, "other") == []


def test_a_job_whose_server_stopped_is_failed_with_the_reason(state_settings: Settings) -> None:
    engine = open_state(state_settings)
    lost = JobRecord("lost", "upload", "default", list(FILES), owner="gone:1", state="running")
    alive = JobRecord("alive", "upload", "default", list(FILES), owner="here:2", state="running")
    done = JobRecord("done", "upload", "default", list(FILES), owner="gone:1", state="done")
    for job in (lost, alive, done):
        save_job(engine, job)
    time.sleep(1.2)
    beat(engine, "here:2")  # the living server refreshes its own jobs only
    assert fail_lost_jobs(engine, stale_after_s=1.0) == 1
    failed = get_job(engine, "lost")
    assert failed is not None and failed.state == "failed" and failed.finished_at
    assert "gone:1" in (failed.error or "") and "stopped" in (failed.error or "")
    assert "已停止" in (failed.error_zh or "")
    assert get_job(engine, "alive").state == "running"  # type: ignore[union-attr]
    assert get_job(engine, "done").state == "done"  # type: ignore[union-attr]
    assert fail_lost_jobs(engine, stale_after_s=1.0) == 0  # once


def test_reading_a_lost_job_fails_it(state_settings: Settings) -> None:
    engine = open_state(state_settings)
    save_job(engine, JobRecord("lost", "reingest", "kb", list(FILES), owner="gone", state="queued"))
    time.sleep(0.6)
    assert get_job(engine, "lost", stale_after_s=0.5).state == "failed"  # type: ignore[union-attr]


def test_a_cancel_asked_anywhere_reaches_the_owner(state_settings: Settings) -> None:
    engine = open_state(state_settings)
    job = JobRecord("j", "upload", "kb", list(FILES), owner="b", state="running")
    save_job(engine, job)
    assert request_cancel(engine, "j")  # through another server
    save_job(engine, job)  # the owner's next progress write does not clear the request
    assert cancel_requested(engine, "j")
    job.state = "cancelled"
    save_job(engine, job)
    assert not request_cancel(engine, "j")  # a finished job has nothing to stop
    assert not request_cancel(engine, "nope")
