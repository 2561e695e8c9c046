"""Who is using the web app: the local user while nobody has an account, else the person logged
in, asked for with a login form until they are.

A login starts a session in the state database (`app.state.sessions`) and leaves a token naming
it, signed with a secret the app servers share (itsdangerous), in a cookie with the session's
lifetime (`SESSION_HOURS`). Streamlit reads cookies (`st.context.cookies`, sent with the page's
connection) but has no API to set one, so the cookie is written by a line of script in the page
(`st.html(..., unsafe_allow_javascript=True)`, which is not iframed and so writes the app's own
cookie). Such a cookie cannot be HttpOnly; what keeps it from being enough on its own is the
server side: the session must be live in the database (logout ends it there, so a copied token
stops working) and the signature and expiry must hold. A forged, expired or ended token is the
login form, never a page.

Failed logins wait `LOGIN_DELAY_S`, count towards a lock (`app.state.accounts`), and are in the
audit log with the address they came from.
"""

from __future__ import annotations

import json
import time

import streamlit as st
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from app.access import Principal
from app.service import Service
from app.state.accounts import Accounts
from app.state.sessions import Sessions
from ingest.settings import Settings

COOKIE = "zhiku_session"
SESSION_KEY = "zk_login"  # session_state: the state-database session id of this browser tab
WHO_KEY = "zk_who"  # session_state: the principal of the current run, set by app/main.py
NOBODY = Principal("nobody", "reader")  # no grants: may read nothing
_SALT = "zhiku-web-session"


def _origin() -> str:
    try:
        return str(st.context.ip_address or "")
    except Exception:  # not in a browser session (tests): no address to tell
        return ""


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(Accounts(settings).shared_secret("web-session"), salt=_SALT)


def session_token(settings: Settings, session_id: str) -> str:
    return _serializer(settings).dumps({"s": session_id})


def session_of_token(settings: Settings, token: str) -> str | None:
    """The session id a cookie names, when its signature and age hold; None otherwise."""
    try:
        data = _serializer(settings).loads(token, max_age=settings.session_hours * 3600)
    except (BadSignature, SignatureExpired):
        return None
    return data.get("s") if isinstance(data, dict) else None


def _write_cookie(value: str, max_age_s: int) -> None:
    # json.dumps: the value reaches the script as a quoted JavaScript string
    st.html(
        "<script>document.cookie = "
        f"{json.dumps(COOKIE)} + '=' + {json.dumps(value)} + "
        f"'; path=/; max-age={max_age_s}; SameSite=Strict'"
        " + (location.protocol === 'https:' ? '; Secure' : '');</script>",
        unsafe_allow_javascript=True,
    )


def _principal(settings: Settings, session_id: str) -> Principal | None:
    person_id = Sessions(settings).person_of(session_id)
    if person_id is None:
        return None
    return Accounts(settings).current(person_id, _origin())  # None: disabled or deleted since


def web_user(settings: Settings, service: Service) -> Principal:
    """The principal of this page, or the login form and a stop when nobody is logged in."""
    if not Accounts(settings).exist():
        return Principal.local(_origin() or "web")
    session_id = st.session_state.get(SESSION_KEY)
    token = st.context.cookies.get(COOKIE)
    from_cookie = session_of_token(settings, token) if token else None
    session_id = session_id or from_cookie
    who = _principal(settings, session_id) if session_id else None
    if who is None:
        st.session_state.pop(SESSION_KEY, None)
        # the only page before a login, its menu hidden: without a navigation of its own,
        # Streamlit lists the `pages/` folder's files in the sidebar of a fresh server
        st.navigation([st.Page(_signing_in, title="登录", default=True)], position="hidden")
        if token:  # forged, expired or ended: the browser may as well forget it
            with st.sidebar:
                _write_cookie("", 0)
        login_form(settings, service)
        st.stop()
    st.session_state[SESSION_KEY] = session_id
    if from_cookie != session_id:  # logged in on this page: a reload or a new tab stays in
        with st.sidebar:
            _write_cookie(session_token(settings, session_id), int(settings.session_hours * 3600))
    return who


def _signing_in() -> None:
    """The login page's entry in the navigation: `web_user` draws the form itself."""


def current_user() -> Principal:
    """The principal `app/main.py` established for this run (nobody when it did not run)."""
    found = st.session_state.get(WHO_KEY)
    return found if isinstance(found, Principal) else NOBODY


def require_page(page: str) -> Principal:
    """Stop a page its viewer may not open (a URL typed by hand reaches the page file)."""
    who = current_user()
    if not who.may_open(page):
        st.error("你没有打开这个页面的权限。", icon=":material/block:")
        st.stop()
    return who


def login_form(settings: Settings, service: Service) -> None:
    _, middle, _ = st.columns([1, 1.2, 1])
    with middle:
        st.title("知库 · 登录")
        with st.form("login"):
            name = st.text_input("用户名", key="login_name")
            password = st.text_input("密码", type="password", key="login_password")
            submitted = st.form_submit_button("登录", type="primary", width="stretch")
        if not submitted:
            return
        origin = _origin()
        result = Accounts(settings).login(name, password)
        if result.person is None:
            service.audit(
                name or "(empty)",
                "login_failed",
                outcome="refused",
                origin=origin,
                detail={"reason": result.reason},
            )
            time.sleep(settings.login_delay_s)  # slows down guessing
            if result.reason == "locked":
                minutes = max(1, round(result.retry_after_s / 60))
                st.error(f"登录失败次数过多，账号已锁定，请约 {minutes} 分钟后再试。")
            else:
                st.error("用户名或密码不正确，或账号已停用。")
            return
        session_id = Sessions(settings).start(result.person.id, origin)
        service.audit(result.person.name, "login", origin=origin)
        st.session_state[SESSION_KEY] = session_id  # the cookie is written by the next run
        st.rerun()


def logout_button(settings: Settings, service: Service, who: Principal) -> None:
    """The signed-in person and a logout button in the sidebar (nothing without accounts)."""
    if who.person_id is None:
        return
    st.sidebar.caption(f"已登录：{who.name}（{_ROLE_ZH.get(who.role, who.role)}）")
    if st.sidebar.button("退出登录", icon=":material/logout:", key="zk-logout"):
        session_id = st.session_state.pop(SESSION_KEY, None)
        if session_id:
            Sessions(settings).end(session_id)
        service.audit(who, "logout")
        st.rerun()  # the login form, which also clears the cookie


_ROLE_ZH = {"admin": "管理员", "editor": "编辑", "reader": "只读"}

__all__ = [
    "COOKIE",
    "WHO_KEY",
    "current_user",
    "login_form",
    "logout_button",
    "require_page",
    "session_of_token",
    "session_token",
    "web_user",
]
