"""Search, knowledge bases, documents, uploads and jobs: `/v1/search`, `/v1/knowledge_bases/...`
and `/v1/jobs/{id}`."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, File, Path, Request, UploadFile, status

from app.api.auth import Who
from app.api.errors import ApiError
from app.api.jobs import Jobs, job_out
from app.api.schemas import (
    ChunkOut,
    Deleted,
    DocumentOut,
    JobOut,
    KbCreate,
    KbOut,
    SearchRequest,
    SearchResponse,
    chunk_out,
    document_out,
    hit_out,
    kb_out,
)
from app.service import Service
from ingest.store import validate_kb_name

router = APIRouter(prefix="/v1")


def _service(request: Request) -> Service:
    return request.app.state.service


def _jobs(request: Request) -> Jobs:
    return request.app.state.jobs


@router.post("/search", response_model=SearchResponse, tags=["search"])
def search(body: SearchRequest, request: Request, who: Who) -> SearchResponse:
    """Hybrid search: passages with their dense, keyword and fused scores, best first."""
    service = _service(request)
    kb = validate_kb_name(body.kb or service.settings.default_kb)
    hits = service.search(who, kb, body.query, body.k)
    timings = hits[0].timings if hits else {}
    return SearchResponse(
        kb=kb, query=body.query, passages=[hit_out(h) for h in hits], timings=timings
    )


@router.get("/knowledge_bases", response_model=list[KbOut], tags=["knowledge bases"])
def list_knowledge_bases(request: Request, who: Who) -> list[KbOut]:
    return [kb_out(k) for k in _service(request).knowledge_bases(who)]


@router.post(
    "/knowledge_bases",
    response_model=KbOut,
    status_code=status.HTTP_201_CREATED,
    tags=["knowledge bases"],
)
def create_knowledge_base(body: KbCreate, request: Request, who: Who) -> KbOut:
    name = validate_kb_name(body.name)
    return kb_out(_service(request).create_kb(who, name))


@router.get("/knowledge_bases/{kb}", response_model=KbOut, tags=["knowledge bases"])
def get_knowledge_base(kb: str, request: Request, who: Who) -> KbOut:
    return kb_out(_service(request).kb_info(who, kb))


@router.delete("/knowledge_bases/{kb}", response_model=Deleted, tags=["knowledge bases"])
def delete_knowledge_base(kb: str, request: Request, who: Who) -> Deleted:
    """Delete a knowledge base with its documents and uploaded files."""
    _service(request).delete_kb(who, kb)
    return Deleted(deleted=kb)


@router.get("/knowledge_bases/{kb}/documents", response_model=list[DocumentOut], tags=["documents"])
def list_documents(kb: str, request: Request, who: Who) -> list[DocumentOut]:
    return [document_out(d) for d in _service(request).documents(who, kb)]


@router.post(
    "/knowledge_bases/{kb}/documents",
    response_model=JobOut,
    status_code=status.HTTP_202_ACCEPTED,
    tags=["documents"],
)
async def upload_documents(
    kb: str,
    request: Request,
    who: Who,
    files: Annotated[list[UploadFile], File(description="one or more files")],
) -> JobOut:
    """Upload files (multipart, field `files`): they are saved now, under sanitised names
    (a path in a name is dropped), and ingested by a background job; `GET /v1/jobs/{id}`
    has its progress and, per file, what happened or why not. The knowledge base is created
    when it does not exist. Limits: MAX_FILE_MB per file, MAX_UPLOAD_MB per request."""
    name = validate_kb_name(kb)
    if not files:
        raise ApiError(400, "no_files", "no files in the upload", "上传中没有文件")
    received = [(f.filename or "", await f.read()) for f in files]
    service = _service(request)
    saved = await anyio.to_thread.run_sync(service.save_files, who, name, received)
    return job_out(_jobs(request).upload(who, name, saved))


@router.get(
    "/knowledge_bases/{kb}/documents/{doc_id}", response_model=DocumentOut, tags=["documents"]
)
def get_document(kb: str, doc_id: str, request: Request, who: Who) -> DocumentOut:
    return document_out(_service(request).document(who, kb, doc_id))


@router.delete(
    "/knowledge_bases/{kb}/documents/{doc_id}", response_model=Deleted, tags=["documents"]
)
def delete_document(kb: str, doc_id: str, request: Request, who: Who) -> Deleted:
    """Remove a document (and its uploaded copy, when nothing else comes from it)."""
    _service(request).remove_document(who, kb, doc_id)
    return Deleted(deleted=doc_id)


@router.post(
    "/knowledge_bases/{kb}/documents/{doc_id}/reingest",
    response_model=JobOut,
    status_code=status.HTTP_202_ACCEPTED,
    tags=["documents"],
)
def reingest_document(kb: str, doc_id: str, request: Request, who: Who) -> JobOut:
    """Ingest a document's file again (a background job), even when it is unchanged."""
    return job_out(_jobs(request).reingest(who, kb, doc_id))


@router.get(
    "/knowledge_bases/{kb}/passages/{chunk_id}", response_model=ChunkOut, tags=["documents"]
)
def get_passage(
    kb: str,
    chunk_id: Annotated[int, Path(ge=0, le=2**63 - 1)],
    request: Request,
    who: Who,
) -> ChunkOut:
    return chunk_out(_service(request).passage(who, kb, chunk_id))


@router.post("/jobs/{job_id}/cancel", response_model=JobOut, tags=["documents"])
def cancel_job(job_id: str, request: Request, who: Who) -> JobOut:
    """Stop a job, whichever server runs it: the files it committed stay, the others are
    reported not ingested (uploading them again resumes: unchanged files are skipped)."""
    job = _jobs(request).get(job_id)
    if job is None or not who.can_read(job.kb):
        raise ApiError(404, "job_not_found", f"no job {job_id!r}", f"没有任务 {job_id!r}")
    _service(request).require(who, "write", job.kb)
    return job_out(_jobs(request).cancel(job_id) or job)


@router.get("/jobs/{job_id}", response_model=JobOut, tags=["documents"])
def get_job(job_id: str, request: Request, who: Who) -> JobOut:
    job = _jobs(request).get(job_id)
    if job is None or not who.can_read(job.kb):
        raise ApiError(404, "job_not_found", f"no job {job_id!r}", f"没有任务 {job_id!r}")
    return job_out(job)


__all__ = ["router"]
