"""The administrators' routes: `GET /v1/admin/people` (people, roles, grants, disabled) and
`GET /v1/admin/audit` (the audit log, filtered, newest first, as JSON or CSV: the same export
as the web app's 成员与权限 page, audited as `export_audit`). Read only: people are changed with
`zhiku users` or on that page. The routes check nothing themselves: the service does (admin,
and not through a key that narrows the admin)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from app.api.auth import Who
from app.service import Service
from app.state.audit import AuditQuery

router = APIRouter(prefix="/v1/admin", tags=["admin"])


class PersonOut(BaseModel):
    name: str
    role: str
    disabled: bool
    grants: dict[str, str]
    created_at: str


def _service(request: Request) -> Service:
    return request.app.state.service


@router.get("/people", response_model=list[PersonOut])
def people(request: Request, who: Who) -> list[PersonOut]:
    """Everyone with an account (admin only)."""
    return [
        PersonOut(
            name=p.name,
            role=p.role,
            disabled=p.disabled,
            grants=dict(p.grants),
            created_at=p.created_at,
        )
        for p in _service(request).people(who)
    ]


@router.get("/audit")
def audit(
    request: Request,
    who: Who,
    format: Annotated[Literal["json", "csv"], Query(description="json or csv")] = "json",
    actor: str | None = None,
    action: str | None = None,
    kb: str | None = None,
    outcome: Annotated[Literal["ok", "refused", "failed"] | None, Query()] = None,
    since: Annotated[datetime | None, Query(description="from this moment (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="before this moment (ISO 8601)")] = None,
) -> Response:
    """Every row the filters select, newest first (admin only; the export is audited). A
    moment without a zone is UTC."""
    query = AuditQuery(actor, action, kb, outcome, _utc(since), _utc(until))
    export = _service(request).export_audit(who, query, format)
    return Response(
        export.data,
        media_type=export.mime if format == "json" else "text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{export.file_name}"'},
    )


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


__all__ = ["router"]
