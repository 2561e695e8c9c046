"""The administrators' methods beyond people and grants (`Service` inherits them): the audit log
filtered and paged for the web app's 成员与权限 page, the names a filter offers, and its export
(CSV or JSON), itself written to the audit log. Each needs admin (`ADMINISTERING`).

Also the rule that keeps zhiku administrable: an act on people that would leave accounts but no
enabled admin (the last admin demoted, disabled or deleted) is refused, whoever asks; without an
admin nobody could manage people in the web app. Deleting the very last account is allowed: zhiku
is then the single-user program it was before accounts.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from app._service_error import ServiceError
from app.access import Need, Principal
from app.state.accounts import Accounts
from app.state.audit import AuditEntry, AuditFacets, AuditLog, AuditQuery

ADMINISTERING: dict[str, Need] = {
    "audit_page": "admin",
    "audit_facets": "admin",
    "export_audit": "admin",
}
ExportFormat = Literal["csv", "json"]
COLUMNS = ("id", "at", "actor", "action", "kb", "target", "outcome", "origin", "detail")
# A spreadsheet runs a cell starting with one of these as a formula; names typed at the login
# form reach the log (failed logins), so such a cell is written with a leading apostrophe.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEntry]  # newest first
    total: int  # rows the query selects, on every page


@dataclass(frozen=True)
class AuditExport:
    data: bytes
    rows: int
    mime: str
    file_name: str


class Administering:
    # provided by `app.service.Service`
    require: Callable[..., None]
    audit: Callable[..., None]
    audit_log: AuditLog
    accounts: Accounts

    def audit_page(
        self, who: Principal, query: AuditQuery, offset: int = 0, limit: int = 50
    ) -> AuditPage:
        """The rows `query` selects, newest first, `limit` of them from `offset`, and how many
        there are."""
        self.require(who, "admin")
        log = self.audit_log
        return AuditPage(log.entries(limit, query=query, offset=offset), log.count(query))

    def audit_facets(self, who: Principal) -> AuditFacets:
        self.require(who, "admin")
        return self.audit_log.facets()

    def export_audit(self, who: Principal, query: AuditQuery, fmt: ExportFormat) -> AuditExport:
        """Every row `query` selects, newest first, as CSV (UTF-8 with a BOM, which spreadsheets
        need to read Chinese) or JSON (as `zhiku audit --json`); the export is audited with its
        format, filters and row count."""
        self.require(who, "admin")
        if fmt not in ("csv", "json"):
            raise ServiceError(
                "bad_request", f"unknown export format {fmt!r}", f"未知的导出格式 {fmt!r}"
            )
        entries = self.audit_log.entries(query=query)
        if fmt == "json":
            text = json.dumps([e.as_dict() for e in entries], ensure_ascii=False, indent=1)
            data, mime = text.encode(), "application/json"
        else:
            data, mime = _csv(entries).encode("utf-8-sig"), "text/csv"
        self.audit(
            who,
            "export_audit",
            detail={"format": fmt, "rows": len(entries), "filters": query.as_dict()},
        )
        return AuditExport(data, len(entries), mime, f"zhiku-audit.{fmt}")

    def _keeps_an_admin(
        self, name: str, role: str | None = None, disabled: bool = False, deleted: bool = False
    ) -> None:
        """Refuse an act on `name` (a new role, disabled or deleted) that would leave people
        but no enabled admin."""
        people = self.accounts.list()
        others = [p for p in people if p.name != name]
        person = next((p for p in people if p.name == name), None)
        if person is None or person.role != "admin" or person.disabled:
            return  # not an enabled admin now: the act takes no admin away
        if not (disabled or deleted) and (role is None or role == "admin"):
            return
        if (deleted and not others) or any(p.role == "admin" and not p.disabled for p in others):
            return
        raise ServiceError(
            "conflict",
            f"{name!r} is the last enabled admin: make another person admin first",
            f"「{name}」是最后一位启用中的管理员：请先把另一位成员设为管理员",
        )


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _csv(entries: list[AuditEntry]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for entry in entries:
        row = entry.as_dict()
        writer.writerow([_cell(row[column]) for column in COLUMNS])
    return out.getvalue()


__all__ = ["ADMINISTERING", "COLUMNS", "Administering", "AuditExport", "AuditPage", "ExportFormat"]
