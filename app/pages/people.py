"""成员与权限 (admins only): the people who may log in, their roles, whether they are disabled,
their grants per knowledge base, and the audit log (filtered, paged, exported). Everything goes
through the service as the admin logged in (`create_person`, `set_role`, `set_disabled`,
`set_password`, `delete_person`, `grant`, `revoke`, `people`; the audit log's methods are in
`app/_administering.py`), which checks the right and audits each act; this page only asks and
shows. The audit log's part is `app/ui/audit_view.py`.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from app.access import ALL_KBS, Principal
from app.service import Service, ServiceError
from app.state.accounts import MIN_PASSWORD, ROLES, Person
from app.ui.audit_view import audit_section
from app.ui.login import require_page
from app.ui.markdown import escape_markdown as md
from app.ui.resources import (
    KB_KEY,
    RETURN_TO_PEOPLE_KEY,
    current_settings,
    get_service,
    hero,
)

ROLE_ZH = {"admin": "管理员", "editor": "编辑", "reader": "只读成员"}
ACCESS_ZH = {"read": "只读", "write": "读写"}
_FLASH = "people_flash"
_CONFIRM_DELETE = "people_confirm_delete"
_CLEAR_NEW = "people_clear_new"
NEW_FIELDS = ("people_new_name", "people_new_password", "people_new_again")


def kb_label(kb: str) -> str:
    return "全部知识库" if kb == ALL_KBS else kb


def grants_text(person: Person) -> str:
    if person.role == "admin":
        return "全部（管理员）"
    shown = [f"{kb_label(kb)}：{ACCESS_ZH[a]}" for kb, a in sorted(person.grants.items())]
    return "，".join(shown) or "无"


def _flash(text: str) -> None:
    st.session_state[_FLASH] = text
    st.rerun()


def _done(act: str, call: Callable[[], object]) -> bool:
    """Run a service call; its refusal is shown in Chinese. True when it was done."""
    try:
        call()
    except ServiceError as exc:
        st.error(f"{act}失败：{md(exc.zh)}", icon=":material/error:")
        return False
    return True


def people_table(people: list[Person]) -> None:
    st.table(
        [
            {
                "用户名": p.name,
                "角色": ROLE_ZH.get(p.role, p.role),
                "状态": "已停用" if p.disabled else "启用",
                "知识库权限": grants_text(p),
                "创建时间": p.created_at.replace("T", " ")[:16],
            }
            for p in people
        ],
        hide_index=True,
    )


def create_form(service: Service, who: Principal, first: bool) -> None:
    if first:  # the local user of a zhiku without accounts (on this machine only)
        st.info(
            "还没有任何账号。创建的第一个成员应为管理员：创建之后，打开网页的每个人"
            "（包括你）都需要登录。",
            icon=":material/info:",
        )
    if st.session_state.pop(_CLEAR_NEW, False):
        for key in NEW_FIELDS:
            st.session_state[key] = ""
    with st.form("people_new", border=True):
        st.markdown("**新建成员**")
        name_col, role_col = st.columns([2, 1])
        name = name_col.text_input("用户名", key="people_new_name")
        role = role_col.selectbox(
            "角色",
            ROLES,
            index=ROLES.index("admin" if first else "reader"),
            format_func=ROLE_ZH.__getitem__,
            key="people_new_role",
        )
        first_col, again_col = st.columns(2)
        password = first_col.text_input(
            "密码", type="password", key="people_new_password", help=f"至少 {MIN_PASSWORD} 个字符"
        )
        again = again_col.text_input("再次输入密码", type="password", key="people_new_again")
        submitted = st.form_submit_button("创建成员", type="primary", icon=":material/person_add:")
    if not submitted:
        return
    if not name.strip():
        st.error("请填写用户名。", icon=":material/error:")
    elif password != again:
        st.error("两次输入的密码不一致。", icon=":material/error:")
    elif _done("创建成员", lambda: service.create_person(who, name.strip(), password, role)):
        st.session_state[_CLEAR_NEW] = True
        _flash(f"已创建成员「{name.strip()}」（{ROLE_ZH[role]}）。可在下方为其授予知识库权限。")


def manage_person(service: Service, who: Principal, people: list[Person]) -> None:
    st.markdown("**管理成员**")
    names = [p.name for p in people]
    name = st.selectbox("选择成员", names, key="people_pick")
    person = next(p for p in people if p.name == name)
    role_col, state_col = st.columns([2, 1], vertical_alignment="bottom")
    role = role_col.selectbox(
        "角色",
        ROLES,
        index=ROLES.index(person.role),
        format_func=ROLE_ZH.__getitem__,
        key=f"people_role_{name}",
    )
    if role_col.button(
        "保存角色", key=f"people_role_save_{name}", disabled=role == person.role
    ) and _done("修改角色", lambda: service.set_role(who, name, role)):
        _flash(f"「{name}」的角色已改为{ROLE_ZH[role]}。")
    toggle = "启用" if person.disabled else "停用"
    if state_col.button(toggle, key=f"people_toggle_{name}", icon=":material/block:") and _done(
        toggle, lambda: service.set_disabled(who, name, not person.disabled)
    ):
        _flash(
            f"已{toggle}「{name}」。" + ("" if person.disabled else "其登录和 API 密钥随即失效。")
        )
    grants_part(service, who, person)
    password_part(service, who, name)
    delete_part(service, who, name)


def grants_part(service: Service, who: Principal, person: Person) -> None:
    name = person.name
    with st.container(border=True):
        st.markdown(f"**「{md(name)}」的知识库权限**")
        if person.role == "admin":
            st.caption("管理员可以读写全部知识库，无需授权。")
        elif person.role == "reader":
            st.caption("只读成员即使被授予“读写”也不能写入。")
        for kb, access in sorted(person.grants.items()):
            text_col, button_col = st.columns([4, 1], vertical_alignment="center")
            text_col.markdown(f"{md(kb_label(kb))}：{ACCESS_ZH[access]}")
            if button_col.button("收回", key=f"people_revoke_{name}_{kb}") and _done(
                "收回权限", lambda kb=kb: service.revoke(who, name, kb)
            ):
                _flash(f"已收回「{name}」在「{kb_label(kb)}」上的权限。")
        kbs = [ALL_KBS, *service.kb_names(who)]
        kb_col, access_col, button_col = st.columns([2, 1, 1], vertical_alignment="bottom")
        kb = kb_col.selectbox("知识库", kbs, format_func=kb_label, key=f"people_grant_kb_{name}")
        access = access_col.selectbox(
            "权限",
            ("read", "write"),
            format_func=ACCESS_ZH.__getitem__,
            key=f"people_grant_access_{name}",
        )
        if button_col.button("授权", key=f"people_grant_{name}", icon=":material/key:") and _done(
            "授权", lambda: service.grant(who, name, kb, access)
        ):
            _flash(f"已授予「{name}」对「{kb_label(kb)}」的{ACCESS_ZH[access]}权限。")


def password_part(service: Service, who: Principal, name: str) -> None:
    with st.form(f"people_password_{name}", border=True):
        st.markdown(f"**重置「{md(name)}」的密码**")
        first_col, again_col = st.columns(2)
        password = first_col.text_input("新密码", type="password", key=f"people_pw_{name}")
        again = again_col.text_input("再次输入新密码", type="password", key=f"people_pw2_{name}")
        submitted = st.form_submit_button("重置密码", icon=":material/lock_reset:")
    if not submitted:
        return
    if password != again:
        st.error("两次输入的密码不一致。", icon=":material/error:")
    elif _done("重置密码", lambda: service.set_password(who, name, password)):
        _flash(f"已重置「{name}」的密码（账号锁定也已解除）。")


def delete_part(service: Service, who: Principal, name: str) -> None:
    if st.session_state.get(_CONFIRM_DELETE) != name:
        if st.button(f"删除成员「{name}」", key=f"people_delete_{name}", icon=":material/delete:"):
            st.session_state[_CONFIRM_DELETE] = name
            st.rerun()
        return
    st.warning(
        f"确定删除「{md(name)}」吗？其授权和 API 密钥一并删除；审计日志保留其操作记录，"
        "其对话和评测题归管理员所有。",
        icon=":material/warning:",
    )
    yes, no = st.columns(2)
    if yes.button("确认删除", type="primary", key="people_delete_yes"):
        st.session_state.pop(_CONFIRM_DELETE, None)
        if _done("删除成员", lambda: service.delete_person(who, name)):
            st.session_state.pop("people_pick", None)
            _flash(f"已删除成员「{name}」。")
    if no.button("取消", key="people_delete_no"):
        st.session_state.pop(_CONFIRM_DELETE, None)
        st.rerun()


def page() -> None:
    if KB_KEY not in st.session_state:
        # Run on its own (see KB_PAGE in app/main.py): go through the router, which comes back.
        st.session_state[RETURN_TO_PEOPLE_KEY] = True
        st.switch_page("main.py")
    who = require_page("people")
    service = get_service(current_settings())
    hero("成员与权限", "创建成员、分配角色和知识库权限;查看和导出审计日志")
    flash = st.session_state.pop(_FLASH, None)
    with st.container():  # always there: what follows keeps its place, with or without a flash
        if flash:
            st.success(md(flash), icon=":material/check_circle:")
    # keyed: the tab open stays open when the page runs again (a filter, a page of the log)
    members, audit = st.tabs(["成员", "审计日志"], key="people_tabs")
    with members:
        try:
            people = service.people(who)
        except ServiceError as exc:
            st.error(md(exc.zh), icon=":material/error:")
            return
        st.caption(
            f"共 {len(people)} 位成员。角色：管理员管理一切；编辑读写被授予的知识库并可新建；"
            "只读成员只能查询被授予的知识库。"
        )
        people_table(people)
        create_form(service, who, first=not people)
        if people:
            manage_person(service, who, people)
    with audit:
        audit_section(service, who)


page()
