"""The audit log on the 成员与权限 page: filters (person, action, knowledge base, outcome, dates),
the rows newest first in pages, and the export of what the filters select as CSV or JSON. The
rows come from `Service.audit_page`; an export is made by `Service.export_audit` when its button
is clicked (Streamlit's deferred download), so each download is itself in the audit log."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import streamlit as st

from app.access import Principal
from app.service import Service, ServiceError
from app.state.audit import AuditEntry, AuditQuery
from app.ui.markdown import escape_markdown as md

PAGE_SIZE = 50
ANY = ""
_PAGE = "audit_page_number"
_FILTERS = "audit_filters_seen"
REFUSED_ZH = {"write": "写入", "create": "创建", "admin": "管理"}
OUTCOME_ZH = {"ok": "成功", "refused": "拒绝", "failed": "失败"}
ACTION_ZH = {
    "login": "登录",
    "logout": "退出登录",
    "login_failed": "登录失败",
    "create_person": "创建成员",
    "set_password": "重置密码",
    "set_role": "修改角色",
    "disable": "停用成员",
    "enable": "启用成员",
    "delete_person": "删除成员",
    "grant": "授权",
    "revoke": "收回权限",
    "create_key": "创建密钥",
    "revoke_key": "吊销密钥",
    "export_audit": "导出审计日志",
    "create_kb": "新建知识库",
    "delete_kb": "删除知识库",
    "upload": "上传",
    "ingest": "导入",
    "reingest": "重新导入",
    "remove_document": "删除文档",
    "remove_documents": "删除文档",
}


def action_label(action: str) -> str:
    if action.startswith("refused:"):
        need = action.removeprefix("refused:")
        return f"被拒绝的{REFUSED_ZH.get(need, need)}（{action}）"
    zh = ACTION_ZH.get(action)
    return f"{zh}（{action}）" if zh else action


def local_time(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return iso


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time()).astimezone()  # midnight where the server is


def filters(service: Service, who: Principal) -> AuditQuery:
    facets = service.audit_facets(who)
    first, second, third = st.columns(3)
    actor = first.selectbox(
        "成员", [ANY, *facets.actors], format_func=lambda v: v or "全部", key="audit_actor"
    )
    action = second.selectbox(
        "操作",
        [ANY, *facets.actions],
        format_func=lambda v: action_label(v) if v else "全部",
        key="audit_action",
    )
    kb = third.selectbox(
        "知识库", [ANY, *facets.kbs], format_func=lambda v: v or "全部", key="audit_kb"
    )
    fourth, fifth, sixth = st.columns(3)
    outcome = fourth.selectbox(
        "结果",
        [ANY, *OUTCOME_ZH],
        format_func=lambda v: OUTCOME_ZH.get(v, "全部"),
        key="audit_outcome",
    )
    since = fifth.date_input("起始日期", value=None, key="audit_since", format="YYYY-MM-DD")
    until = sixth.date_input("结束日期", value=None, key="audit_until", format="YYYY-MM-DD")
    return AuditQuery(
        actor=actor or None,
        action=action or None,
        kb=kb or None,
        outcome=outcome or None,
        since=_day_start(since) if since else None,
        until=_day_start(until + timedelta(days=1)) if until else None,  # the end day included
    )


def rows(entries: list[AuditEntry]) -> list[dict[str, str]]:
    return [
        {
            "时间": local_time(e.at),
            "成员": e.actor,
            "操作": action_label(e.action),
            "知识库": e.kb or "",
            "对象": e.target or "",
            "结果": OUTCOME_ZH.get(e.outcome, e.outcome),
            "来源": e.origin or "",
            "详情": e.detail or "",
        }
        for e in entries
    ]


def audit_section(service: Service, who: Principal) -> None:
    try:
        query = filters(service, who)
    except ServiceError as exc:
        st.error(md(exc.zh), icon=":material/error:")
        return
    if st.session_state.get(_FILTERS) != query:  # new filters: back to the newest rows
        st.session_state[_FILTERS] = query
        st.session_state[_PAGE] = 1
    number = st.session_state.setdefault(_PAGE, 1)
    found = service.audit_page(who, query, (number - 1) * PAGE_SIZE, PAGE_SIZE)
    pages = max(1, -(-found.total // PAGE_SIZE))
    if number > pages:  # rows gone from under the filter since: the last page there is
        st.session_state[_PAGE] = number = pages
        found = service.audit_page(who, query, (number - 1) * PAGE_SIZE, PAGE_SIZE)
    st.caption(
        f"共 {found.total} 条记录，按时间从新到旧；第 {number}/{pages} 页。时间为服务器本地时间。"
    )
    if found.entries:
        st.table(rows(found.entries), hide_index=True)
    else:
        st.info("没有符合条件的记录。", icon=":material/search_off:")
    back, ahead, csv_col, json_col = st.columns(4)
    if back.button(
        "上一页", key="audit_back", disabled=number <= 1, icon=":material/chevron_left:"
    ):
        st.session_state[_PAGE] = number - 1
        st.rerun()
    if ahead.button(
        "下一页", key="audit_ahead", disabled=number >= pages, icon=":material/chevron_right:"
    ):
        st.session_state[_PAGE] = number + 1
        st.rerun()
    # made when clicked, not now: each download is audited, and none is made unasked
    for column, fmt in ((csv_col, "csv"), (json_col, "json")):
        column.download_button(
            f"导出 {fmt.upper()}",
            data=lambda fmt=fmt: service.export_audit(who, query, fmt).data,  # type: ignore[misc]
            file_name=f"zhiku-audit.{fmt}",
            mime="text/csv" if fmt == "csv" else "application/json",
            key=f"audit_export_{fmt}",
            icon=":material/download:",
            disabled=not found.total,
            on_click="ignore",
            help="导出符合当前筛选条件的全部记录；导出本身记入审计日志。",
        )


__all__ = ["ACTION_ZH", "OUTCOME_ZH", "PAGE_SIZE", "audit_section"]
