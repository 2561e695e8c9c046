"""The web app once people have accounts, through Streamlit's `AppTest` over a real knowledge
base: a login form before any page, the session cookie's token refused when forged or expired,
a reader who sees no knowledge-base page, inspector, upload or delete control and no knowledge
base beyond their grants, logout, a lock after repeated failures, and an admin who opens a
reader's conversation by its link: read only, and in the audit log. The real browser (the cookie
written by the page itself, a reader refused another's link) is `tests/app/test_browser.py`'s
`test_people_see_only_what_they_may`."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from support import MODELS_DIR, REPO, answer_result, build_kb, make_settings
from web_site import WebSite, html

from app._conversations import ConversationStore, Turn
from app.service import Forbidden, Service
from app.sources import SourceStore, new_source
from app.state import engine as state_engine
from app.state.accounts import Accounts
from app.state.audit import AuditLog
from app.state.sessions import Sessions
from app.ui.login import session_of_token, session_token
from ingest._embed import Embedder

pytestmark = pytest.mark.timeout(600)
APP = REPO / "app" / "main.py"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    home = tmp_path_factory.mktemp("login") / "home"
    settings = make_settings(home)
    build_kb(settings, embedder, {"a.txt": "年假制度\n员工每年享有十五天带薪年假。"}, "default")
    build_kb(settings, embedder, {"b.txt": "薪酬制度\n工资每月十日发放。"}, "secret")
    return home


def team_home(tmp_path: Path, template: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> Path:
    """A copy of `template` as the data home, with an admin (ada) and a reader of `default`
    (rita); `env` sets more settings."""
    data = tmp_path / "home"
    shutil.copytree(template, data)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ZHIKU_HOME", str(data))
    monkeypatch.setenv("ZHIKU_MODELS_DIR", str(MODELS_DIR))
    monkeypatch.setenv("LLM_BACKEND", "none")
    monkeypatch.setenv("LOGIN_DELAY_S", "0")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    state_engine.forget_engines()
    accounts = Accounts(make_settings(data))
    accounts.create("ada", PASSWORD, "admin")
    accounts.create("rita", PASSWORD, "reader")
    accounts.grant("rita", "default", "read")
    return data


@pytest.fixture
def home(tmp_path: Path, template: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return team_home(tmp_path, template, monkeypatch, LOGIN_MAX_FAILURES="3")


def start() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def log_in(at: AppTest, name: str, password: str) -> AppTest:
    at.text_input(key="login_name").input(name)
    at.text_input(key="login_password").input(password)
    at.button[0].click().run()  # the form's submit button
    assert not at.exception, [e.value for e in at.exception]
    return at


def is_login_form(at: AppTest) -> bool:
    return [t.label for t in at.text_input] == ["用户名", "密码"]


def test_nothing_but_the_login_form_before_a_login(home: Path) -> None:
    at = start()
    assert is_login_form(at)
    assert not at.chat_input and not at.selectbox  # no page, no knowledge-base list


def test_a_reader_sees_only_what_they_may_read_and_logs_out(home: Path) -> None:
    at = log_in(start(), "rita", PASSWORD)
    assert not is_login_form(at)
    assert at.selectbox(key="kb").options == ["default"]  # not "secret"
    assert any("rita" in c.value for c in at.sidebar.caption)
    assert not at.get("file_uploader")
    assert not [b for b in at.button if "删除" in b.label]
    # the knowledge-base page and the inspector are not in a reader's navigation at all
    for page in ("pages/knowledge_base.py", "pages/inspector.py"):
        with pytest.raises(ValueError, match=r"Known pages: \['问答'\]"):
            at.switch_page(page)
    [logout] = [b for b in at.sidebar.button if b.label == "退出登录"]
    logout.click().run()
    assert is_login_form(at)
    actions = [(e.actor, e.action) for e in AuditLog(make_settings(home)).entries()]
    assert ("rita", "login") in actions and ("rita", "logout") in actions


def test_an_admin_sees_every_page_and_knowledge_base(home: Path) -> None:
    at = log_in(start(), "ada", PASSWORD)
    assert set(at.selectbox(key="kb").options) == {"default", "secret"}
    at.switch_page("pages/knowledge_base.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.get("file_uploader")


def test_failures_are_refused_logged_and_then_locked(home: Path) -> None:
    at = start()
    for _ in range(2):
        log_in(at, "rita", "wrong password")
        assert is_login_form(at)
        assert "用户名或密码不正确" in at.error[0].value
    log_in(at, "rita", "wrong password")
    assert "锁定" in at.error[0].value
    log_in(at, "rita", PASSWORD)  # the right password does not open a locked account
    assert is_login_form(at) and "锁定" in at.error[0].value
    failed = [e for e in AuditLog(make_settings(home)).entries() if e.action == "login_failed"]
    assert len(failed) == 4 and {e.actor for e in failed} == {"rita"}


def test_a_forged_expired_or_ended_token_names_no_session(home: Path) -> None:
    settings = make_settings(home)
    person = Accounts(settings).require("rita")
    session = Sessions(settings).start(person.id)
    token = session_token(settings, session)
    assert session_of_token(settings, token) == session
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert session_of_token(settings, forged) is None
    assert session_of_token(settings, "zk" + token) is None
    time.sleep(1.1)  # itsdangerous counts whole seconds
    expired = make_settings(home, session_hours=1e-9)
    assert session_of_token(expired, token) is None
    Sessions(settings).end(session)  # logout: the token still verifies, the session is over
    assert Sessions(settings).person_of(session) is None


def test_an_admin_reads_a_readers_conversation_only_and_it_is_audited(home: Path) -> None:
    settings = make_settings(home)
    rita = Accounts(settings).require("rita")
    store = ConversationStore(settings, "default")
    theirs = store.create(author_id=rita.id)
    store.append(theirs, Turn("员工每年有几天年假?", answer_result()), author_id=rita.id)
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params["c"] = theirs  # her link, pasted by the admin
    at.run()
    at = log_in(at, "ada", PASSWORD)
    assert "员工每年有几天年假?" in [m.value for m in at.markdown]
    assert any("「rita」的对话" in i.value and "只读" in i.value for i in at.info)
    assert at.chat_input[0].disabled  # no question added to her conversation
    assert not at.get("feedback")  # nor feedback on her answers
    assert not [b for b in at.sidebar.button if b.label.startswith("员工每年")]  # not listed
    opens = [e for e in AuditLog(settings).entries() if e.action == "open_conversation"]
    # (one row per open; AppTest gives every run another made-up address, so the rows of one
    # page are not folded together here as they are for one browser: test_access.py)
    assert {(e.actor, e.kb, e.target, e.outcome) for e in opens} == {
        ("ada", "default", theirs, "ok")
    }


def _wait(until: Callable[[], bool], seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while not until() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert until()


def _click(at: AppTest, label: str) -> AppTest:
    [button] = [b for b in (*at.button, *at.form_submit_button) if b.label == label][:1]
    button.click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_an_editors_sources_and_folders_are_audited_as_theirs_and_a_reader_is_refused(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Adding a web source, its first sync and 立即同步, binding and unbinding a folder and
    removing the source: each through the service as the editor logged in, whose name the
    audit rows carry (a sync is never the scheduler's here). A reader calling the service
    directly binds, adds and syncs nothing, and each refusal is audited."""
    monkeypatch.setenv("WEB_DELAY_S", "0")
    settings = make_settings(home)
    accounts = Accounts(settings)
    accounts.create("ed", PASSWORD, "editor")
    accounts.grant("ed", "default", "write")
    log = AuditLog(settings)

    def rows(action: str) -> list[tuple[str, str]]:
        return [(e.actor, e.outcome) for e in log.entries() if e.action == action]

    folder = tmp_path / "合同"
    folder.mkdir()
    with WebSite() as site:
        site.put("/help/", html("客服中心", "<h1>客服中心</h1><p>退货请在签收后七天内申请。</p>"))
        at = log_in(start(), "ed", PASSWORD)
        at.switch_page("pages/knowledge_base.py").run()
        next(t for t in at.text_input if t.label == "网址").set_value(site.url("/help/"))
        _click(at, "添加")
        assert "已添加" in " ".join(s.value for s in at.success)
        store = SourceStore(settings)
        [source] = store.list("default")
        _wait(lambda: len(store.get(source.id).history) == 1)
        site.put("/help/", html("客服中心", "<h1>客服中心</h1><p>退货请在签收后十天内申请。</p>"))
        at.run()
        [sync] = [b for b in at.button if b.label == "立即同步"]
        sync.click().run()
        # AppTest runs a fragment's click as a whole run, where its st.rerun(scope="fragment")
        # (after the sync has started) is refused; a browser reruns the fragment
        assert all("fragment" in str(e.value) for e in at.exception)
        at.run()
        _wait(lambda: len(store.get(source.id).history) == 2)
        syncs = [e for e in log.entries() if e.action == "sync"]
        assert [(e.actor, json.loads(e.detail or "{}")["trigger"]) for e in syncs] == [
            ("ed", "manual"),
            ("ed", "manual"),
        ]
        assert rows("add_source") == [("ed", "ok")]

        next(t for t in at.text_input if t.label == "绑定文件夹").set_value(str(folder))
        _click(at, "绑定")
        assert rows("bind_folder") == [("ed", "ok")]
        _click(at, "解除绑定")
        assert rows("unbind_folder") == [("ed", "ok")]
        _click(at, "删除来源")
        assert rows("remove_source") == [("ed", "ok")]
        assert store.list("default") == []

        service = Service(settings)
        rita = accounts.principal_for(accounts.require("rita"))
        web = new_source("default", site.url("/help/"))
        for refused in (
            lambda: service.bind_folder(rita, "default", str(folder)),
            lambda: service.add_source(
                rita, "default", web.location, crawl=False, schedule=web.schedule
            ),
            lambda: service.sync_source(rita, web),
        ):
            with pytest.raises(Forbidden):
                refused()
    assert store.list("default") == []  # nothing bound or added by the reader
    assert rows("refused:write") == [("rita", "refused")] * 3
    assert len(rows("sync")) == 2  # the reader's sync never ran
