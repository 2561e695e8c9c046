"""An upload its app lost: the process stopped (restarted, killed) while the upload ran.

Its job stays in the state database, marked failed by the stale-job check once its server has
not been heard of for `JOB_STALE_S`; the files it saved under the data home (`save_uploads`,
before ingestion) stay too. The knowledge-base page shows which of them the knowledge base holds
(committed before the stop) and which it does not, and 继续导入 ingests exactly the latter
(`ImportJob.resume`; ingestion goes by content hash, so nothing is doubled). Until the job is
marked failed, it is shown as running on another server, and the panel polls it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

from app.access import Principal
from app.service import Service
from app.state.jobs import UNFINISHED, JobRecord, heartbeat
from app.ui.imports import REPORTED, ImportJob, running_import
from app.ui.markdown import escape_markdown as md
from ingest import SavedUpload

POLL_S = 2.0  # how often a job running elsewhere is looked at again
DISMISSED = "dismissed"  # in a job's `extra`: its panel was closed
RESUMED_BY = "resumed_by"  # in a job's `extra`: the job that ingests its rest


@dataclass(frozen=True)
class Interrupted:
    """A lost upload, file by file (names as uploaded)."""

    record: JobRecord
    committed: list[str]  # in the knowledge base
    remaining: list[SavedUpload]  # saved under the data home, not in the knowledge base
    lost: list[tuple[str, str]]  # (name, why): never saved (or gone since), so not resumable


def _upload_jobs(service: Service, who: Principal, kb_name: str) -> tuple[list[JobRecord], str]:
    """The knowledge base's upload jobs not closed yet, newest first, and this server's id."""
    jobs = [
        job
        for job in service.upload_jobs(who, kb_name)  # lost ones marked failed first
        if not any((job.extra or {}).get(mark) for mark in (REPORTED, DISMISSED, RESUMED_BY))
    ]
    return jobs, heartbeat(service.settings).owner


def running_elsewhere(service: Service, who: Principal, kb_name: str) -> JobRecord | None:
    """An upload into the knowledge base that another server runs (or ran, until its
    heartbeat goes stale)."""
    return _elsewhere_in(*_upload_jobs(service, who, kb_name), kb_name)


def _elsewhere_in(jobs: list[JobRecord], owner: str, kb_name: str) -> JobRecord | None:
    mine = running_import(kb_name)
    mine_id = mine.record.id if mine is not None and mine.record is not None else None
    return next(
        (j for j in jobs if j.state in UNFINISHED and j.owner != owner and j.id != mine_id), None
    )


def interrupted_upload(service: Service, who: Principal, kb_name: str) -> Interrupted | None:
    """The newest upload into the knowledge base that failed without its page reporting it
    (its app stopped), split by what the knowledge base holds now."""
    jobs, _ = _upload_jobs(service, who, kb_name)
    return _interrupted_in(service, who, jobs, kb_name)


def _interrupted_in(
    service: Service, who: Principal, jobs: list[JobRecord], kb_name: str
) -> Interrupted | None:
    record = next((job for job in jobs if job.state == "failed"), None)
    return split(service, who, kb_name, record) if record is not None else None


def split(service: Service, who: Principal, kb_name: str, record: JobRecord) -> Interrupted:
    committed: list[str] = []
    remaining: list[SavedUpload] = []
    lost: list[tuple[str, str]] = []
    saved: list[tuple[str, str]] = []
    for entry in record.files:
        name, stored = str(entry.get("name") or ""), str(entry.get("stored_name") or "")
        if not stored:  # rejected when saved, or the app stopped before it was saved
            lost.append((name, str(entry.get("reason_zh") or "") or "文件未保存,请重新上传"))
        else:
            saved.append((name, stored))
    states = service.upload_states(who, kb_name, [stored for _, stored in saved])
    for (name, _), (state, path) in zip(saved, states, strict=True):
        if state == "committed":
            committed.append(name)
        elif state == "saved":
            remaining.append(SavedUpload(name, path))
        else:
            lost.append((name, "保存的文件已不在数据目录,请重新上传"))
    return Interrupted(record, committed, remaining, lost)


def close(
    service: Service, who: Principal, record: JobRecord, mark: str, value: object = True
) -> None:
    """Keep on the job that its panel is done with (closed, or resumed by another job)."""
    service.close_job(who, record.kb, record.id, mark, value)


# ----- the panels -----------------------------------------------------------------------------


def lost_upload_panel(
    service: Service, who: Principal, kb_name: str, resume: Callable[[Interrupted], None]
) -> None:
    """An upload another server runs (polled until it ends), or one its app lost, with the
    split and 继续导入 (`resume` starts the job that ingests the rest)."""
    jobs, owner = _upload_jobs(service, who, kb_name)
    if _elsewhere_in(jobs, owner, kb_name) is not None:
        _elsewhere(service, who, kb_name)
        return
    lost = _interrupted_in(service, who, jobs, kb_name)
    if lost is not None:
        _interrupted(service, who, lost, resume)


@st.fragment(run_every=POLL_S)
def _elsewhere(service: Service, who: Principal, kb_name: str) -> None:
    job = running_elsewhere(service, who, kb_name)
    if job is None:  # ended, or found lost: the whole page shows what became of it
        st.rerun()
    assert job is not None
    with st.container(border=True):
        st.info(
            f"另一个应用进程正在导入 {job.files_total} 个文件(已完成 {job.files_done} 个)。"
            "如果那个进程已经停止,超过一段时间没有响应后,这里会显示哪些文件已导入,"
            "并可以继续导入其余文件。",
            icon=":material/sync:",
        )


def _interrupted(
    service: Service, who: Principal, lost: Interrupted, resume: Callable[[Interrupted], None]
) -> None:
    with st.container(border=True, key="zk-interrupted-upload"):
        reason = md(lost.record.error_zh or lost.record.error or "")
        st.warning(f"上次导入没有完成:{reason}", icon=":material/sync_problem:")
        if lost.committed:
            st.markdown(
                f"**已导入知识库**({len(lost.committed)} 个):"
                + "、".join(md(name) for name in lost.committed)
            )
        if lost.remaining:
            st.markdown(
                f"**尚未导入**({len(lost.remaining)} 个):"
                + "、".join(md(upload.name) for upload in lost.remaining)
            )
        for name, why in lost.lost:
            st.markdown(f"**无法继续导入**:{md(name)} — {md(why)}")
        row = st.container(horizontal=True)
        if lost.remaining and row.button(
            f"继续导入其余 {len(lost.remaining)} 个文件",
            type="primary",
            icon=":material/play_arrow:",
            key="kb_resume_upload",
            help="已导入的文件不会重复导入。",
        ):
            resume(lost)
        if row.button("关闭", icon=":material/close:", key="kb_close_interrupted"):
            close(service, who, lost.record, DISMISSED)
            st.rerun()


def resume_upload(
    service: Service, who: Principal, lost: Interrupted, error_zh: Callable[[Exception], str]
) -> ImportJob:
    job = ImportJob.resume(
        service, who, lost.record.kb, lost.remaining, error_zh, resumes=lost.record.id
    )
    assert job.record is not None
    close(service, who, lost.record, RESUMED_BY, job.record.id)
    return job
