"""An upload its app lost (`app/ui/interrupted.py`, over `ImportJob` in `app/ui/imports.py`):
while it runs, its job record says where each file was saved and which are committed; once its
server is taken for lost, the files are split by what the knowledge base holds, and resuming
ingests exactly the rest. Killing the app itself is `test_browser_outlive.py`'s; here the job
of a stopped server is its record as that server left it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from support import make_settings

from app.access import Principal
from app.service import Service
from app.state import open_state
from app.state.jobs import JobRecord, get_job, new_job_id, save_job
from app.ui.imports import JobProgress, running_import
from app.ui.interrupted import interrupted_upload, resume_upload, running_elsewhere
from ingest import ingest_paths, save_uploads
from ingest._embed import Embedder
from ingest.settings import Settings
from ingest.store import KnowledgeBase

FILES = [
    (f"制度{i}.txt", f"第{i}条制度:员工第{i}年的年假为{i + 10}天。".encode()) for i in range(3)
]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "home", job_stale_s=1.0)


LOCAL = Principal.local("test")  # the pages act as the person using them


def origins(settings: Settings) -> list[str]:
    with KnowledgeBase.open(settings, "default") as kb:
        assert kb.check() == []  # what `zhiku kb check` runs
        return sorted(Path(d.origin).name for d in kb.documents())


def test_a_lost_upload_is_split_by_what_the_kb_holds_and_its_rest_resumed(
    settings: Settings, embedder: Embedder
) -> None:
    saved = save_uploads(settings, "default", FILES)
    ingest_paths(settings, [saved[0].path], "default", embedder=embedder)  # before the stop
    record = JobRecord(
        new_job_id(),
        "upload",
        "default",
        [{"name": s.name, "stored_name": s.stored_name, "status": "pending"} for s in saved]
        + [{"name": "没保存.txt", "stored_name": "", "status": "pending"}],
        owner="another-host:4242:abcdef",
        state="running",
        files_total=4,
    )
    save_job(open_state(settings), record)  # as its server last refreshed it
    service = Service(settings, embedder)
    found = running_elsewhere(service, LOCAL, "default")  # not stale yet: it may be running
    assert found is not None and found.id == record.id
    time.sleep(1.5)
    assert running_elsewhere(service, LOCAL, "default") is None
    lost = interrupted_upload(service, LOCAL, "default")
    assert lost is not None and lost.record.id == record.id
    assert lost.record.state == "failed" and "已停止" in (lost.record.error_zh or "")
    assert lost.committed == ["制度0.txt"]
    assert [u.name for u in lost.remaining] == ["制度1.txt", "制度2.txt"]
    assert lost.lost == [("没保存.txt", "文件未保存,请重新上传")]

    job = resume_upload(service, LOCAL, lost, str)
    assert job.wait(120)
    job.forget()
    assert job.error is None and job.rows is not None
    assert [(r.name, r.status) for r in job.rows] == [
        ("制度1.txt", "added"),
        ("制度2.txt", "added"),
    ]
    assert job.record is not None and job.record.extra == {"resumes": record.id}
    assert origins(settings) == ["制度0.txt", "制度1.txt", "制度2.txt"]  # nothing doubled
    assert interrupted_upload(service, LOCAL, "default") is None  # resumed: shown no more
    old = get_job(open_state(settings), record.id)
    assert old is not None and old.extra == {"resumed_by": job.record.id}


def test_a_running_upload_records_where_its_files_are_and_which_are_committed(
    settings: Settings, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What an app killed mid-upload leaves in the state database: the saved names of its
    files and the outcome of each one committed."""
    from app.ui.imports import ImportJob

    monkeypatch.setattr("ingest._insert.BATCH_CHUNKS", 1)  # one file per committed batch
    first_committed, release = threading.Event(), threading.Event()
    planned = JobProgress.chunks_planned

    def pausing(self: JobProgress, chunks: int) -> None:
        if self.done == 1 and not first_committed.is_set():
            first_committed.set()
            release.wait(timeout=120)
        planned(self, chunks)

    monkeypatch.setattr(JobProgress, "chunks_planned", pausing)
    service = Service(settings, embedder)
    job = ImportJob.start(service, LOCAL, "default", FILES, str)
    try:
        assert first_committed.wait(120)
        assert running_import("default") is job
        assert job.record is not None
        stored = get_job(open_state(settings), job.record.id)
        assert stored is not None and stored.state == "running"
        assert [(f["stored_name"], f["status"]) for f in stored.files] == [
            ("制度0.txt", "added"),
            ("制度1.txt", "pending"),
            ("制度2.txt", "pending"),
        ]
        assert stored.files_done == 1
    finally:
        release.set()
        assert job.wait(120)
        job.forget()
    assert origins(settings) == ["制度0.txt", "制度1.txt", "制度2.txt"]
    assert interrupted_upload(service, LOCAL, "default") is None  # it ended: nothing lost
