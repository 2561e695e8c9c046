"""People with accounts in a real browser (Debian's Chromium through Playwright, against
`streamlit run app/main.py`, as `tests/app/test_browser.py`): the login and its cookie as the
page itself writes it, which `AppTest` cannot do.

An admin (made first, as `zhiku users create --role admin` makes one) logs in and, on the
成员与权限 page, creates an editor and a reader and grants them knowledge bases, then finds those
acts in the audit log there and downloads it as CSV; the editor has a conversation. Then, in the
browser: the reader logs in, stays logged in across page loads by the cookie, reaches no
knowledge-base page or inspector by URL and sees no upload or delete control, and a link to the
editor's conversation shows "找不到这个对话或你无权查看" and nothing of it; logout ends the
session on the server (a copy of the cookie kept from before opens nothing); a forged cookie and
an expired one show the login form, where a good one opens the page; the editor uploads to the
knowledge base granted `write` and gets no upload control on the one granted `read`; her 导出
Markdown (a download made when clicked, through the service) is in the audit log as hers.

What `tests/app/test_login.py` already covers through `AppTest` is not repeated here: the reader's
navigation without those pages, the knowledge-base list limited to grants, the lock after failed
logins, and the token checks themselves (forged, expired, ended).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from support import MODELS_DIR, answer_result, build_kb, make_settings
from test_browser import CHROMIUM, StreamlitApp, screenshot
from test_browser import page as page  # the Chromium page fixture

from app._conversations import Turn
from app.service import Service
from app.state import engine as state_engine
from app.state.accounts import Accounts
from app.state.audit import AuditLog
from app.state.sessions import Sessions
from app.ui.login import COOKIE, session_token
from ingest._embed import Embedder

PASSWORD = "correct horse battery"
EDITORS_QUESTION = "编辑私下问的薪酬问题是什么?"
NOT_FOUND = "找不到这个对话或你无权查看"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="no browser: /usr/bin/chromium is missing (install it with "
        "`apt-get install chromium`)",
    ),
]


@pytest.fixture
def team(tmp_path: Path, embedder: Embedder) -> dict[str, Any]:
    """A data home with two knowledge bases and an admin; the admin makes the others in the
    browser (`_an_admin_makes_the_team`)."""
    home = tmp_path / "home"
    settings = make_settings(home)
    build_kb(settings, embedder, {"leave.txt": "年假制度\n员工每年享有十五天带薪年假。"}, "default")
    build_kb(settings, embedder, {"pay.txt": "薪酬制度\n工资每月十日发放。"}, "secret")
    state_engine.forget_engines()
    Accounts(settings).create("ada", PASSWORD, "admin")
    state_engine.forget_engines()
    return {"home": home, "settings": settings, "embedder": embedder}


def _editors_conversation(settings: Any, embedder: Embedder) -> str:
    """A conversation of the editor's (as if ed had asked in the chat), once ed exists."""
    accounts = Accounts(settings)
    ed = accounts.principal_for(accounts.require("ed"))
    service = Service(settings, embedder)
    conversation = service.new_conversation(ed, "default")
    service.add_turn(ed, "default", conversation, Turn(EDITORS_QUESTION, answer_result()))
    return conversation


def test_people_see_only_what_they_may(team: dict[str, Any], page: Any, tmp_path: Path) -> None:
    import os

    env = {
        **os.environ,
        "ZHIKU_HOME": str(team["home"]),
        "ZHIKU_MODELS_DIR": str(MODELS_DIR),
        "LLM_BACKEND": "none",
        "LOGIN_DELAY_S": "0",
    }
    app = StreamlitApp(env, tmp_path / "streamlit.log")
    try:
        url = app.start()
        _an_admin_makes_the_team(page, url)
        settings = team["settings"]
        [export] = [e for e in AuditLog(settings).entries() if e.action == "export_audit"]
        assert export.actor == "ada" and '"rows": 3' in (export.detail or "")
        conversation = _editors_conversation(settings, team["embedder"])
        rita = Accounts(settings).require("rita").id
        _a_reader_reaches_nothing_that_is_not_hers(page, url, conversation)
        _logout_ends_the_session(page, url)
        _a_forged_or_expired_cookie_is_the_login_form(page, url, settings, rita)
        _an_editor_uploads_where_granted_write_only(page, url, tmp_path)
        _an_editors_export_is_audited_as_hers(page, url, settings, conversation)
    finally:
        app.stop()
        print((tmp_path / "streamlit.log").read_text(errors="replace")[-4000:])


def _go(page: Any, address: str) -> None:
    # not until "load": on two busy cores the page's scripts can take longer than its default
    # 30 s; what the page shows is waited for by the checks after
    page.goto(address, wait_until="domcontentloaded", timeout=120_000)


def _is_login_form(page: Any) -> None:
    from playwright.sync_api import expect

    expect(page.get_by_role("button", name="登录", exact=True)).to_be_visible(timeout=120_000)
    expect(page.get_by_label("用户名", exact=True)).to_be_visible()
    # nothing of a page, not even the names of the files under app/pages/ (Streamlit lists
    # them in the sidebar of a fresh server unless the login has a navigation of its own)
    expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)
    for name in ("knowledge_base", "inspector", "people", "知识库", "命中测试", "成员与权限"):
        expect(page.get_by_role("link", name=name)).to_have_count(0)
    expect(page.get_by_test_id("stChatInputTextArea")).to_have_count(0)
    expect(page.get_by_test_id("stSelectbox")).to_have_count(0)  # no knowledge-base list
    expect(page.get_by_test_id("stFileUploaderDropzoneInput")).to_have_count(0)


def _is_page_of(page: Any, name: str) -> None:
    """The page ran for `name` (logged in), and is done running."""
    from playwright.sync_api import expect

    expect(page.get_by_test_id("stSidebar")).to_contain_text(f"已登录：{name}", timeout=120_000)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=120_000
    )


def _log_in(page: Any, url: str, name: str) -> None:
    _go(page, url)
    _is_login_form(page)
    page.get_by_label("用户名", exact=True).fill(name)
    page.get_by_label("密码", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="登录", exact=True).click()
    _is_page_of(page, name)
    # the cookie is written by the page's own script, on the run after the login
    page.wait_for_function(f"() => document.cookie.includes('{COOKIE}=')", timeout=60_000)


def _choose(page: Any, key: str, option: str) -> None:
    """Pick `option` in the selectbox of widget key `key`. A rerun that starts meanwhile (the
    one the previous act asked for: it may not have begun yet) redraws the selectbox and closes
    its list, so the pick is tried again until the box shows it."""
    from playwright.sync_api import expect

    box = _widget(page, key).get_by_role("combobox")
    for attempt in range(5):
        page.wait_for_function(
            "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
            timeout=120_000,
        )
        try:
            expect(box).to_have_count(1, timeout=60_000)  # the rerun's element only
            if box.input_value() == option:
                return
            box.click()
            page.get_by_role("option", name=option, exact=True).first.click(timeout=5_000)
            expect(box).to_have_value(option, timeout=10_000)
            return
        except Exception:
            if attempt == 4:
                screenshot(page, f"people-failed-choose-{key}.png")
                raise
            page.keyboard.press("Escape")
            page.wait_for_timeout(1_000)


def _download(page: Any, button: str) -> bytes:
    """Click a download button and return the file. Streamlit makes the export when clicked;
    a click that races the page's rerun finds the button's previous run gone and is ignored,
    so it is clicked again."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(3):
        page.wait_for_function(
            "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
            timeout=120_000,
        )
        try:
            with page.expect_download(timeout=30_000) as download:
                page.get_by_role("button", name=button).click()
            return Path(download.value.path()).read_bytes()
        except PlaywrightTimeout:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _widget(page: Any, key: str) -> Any:
    """The element of widget key `key`, not a stale copy left from before the page's rerun."""
    return page.locator(f'.st-key-{key}:not([data-stale="true"])')


def _an_admin_makes_the_team(page: Any, url: str) -> None:
    """The issue's path: ada logs in, creates the editor and the reader on 成员与权限, grants
    them their knowledge bases, finds her acts in the audit log and exports it."""
    from playwright.sync_api import expect

    _log_in(page, url, "ada")
    page.get_by_test_id("stSidebarNavLink").filter(has_text="成员与权限").click()
    expect(page.get_by_text("新建成员", exact=True)).to_be_visible(timeout=120_000)
    for name, role in (("ed", "编辑"), ("rita", "只读成员")):
        page.locator(".st-key-people_new_name input").fill(name)
        _choose(page, "people_new_role", role)
        page.locator(".st-key-people_new_password input").fill(PASSWORD)
        page.locator(".st-key-people_new_again input").fill(PASSWORD)
        page.get_by_role("button", name="创建成员").click()
        expect(page.get_by_text(f"已创建成员「{name}」（{role}）")).to_be_visible(timeout=60_000)
    for name, kb, access in (
        ("ed", "default", "读写"),
        ("ed", "secret", "只读"),
        ("rita", "default", "只读"),
    ):
        _choose(page, "people_pick", name)
        _choose(page, f"people_grant_kb_{name}", kb)
        _choose(page, f"people_grant_access_{name}", access)
        _widget(page, f"people_grant_{name}").get_by_role("button").click()
        expect(page.get_by_text(f"已授予「{name}」对「{kb}」的{access}权限")).to_be_visible(
            timeout=60_000
        )
    table = page.get_by_test_id("stTable").first
    expect(table).to_contain_text("default：读写，secret：只读")
    expect(table).to_contain_text("default：只读")
    screenshot(page, "people-00-admin-made-the-team.png")

    page.get_by_role("tab", name="审计日志").click()
    log = page.get_by_test_id("stTable").nth(1)
    expect(log).to_contain_text("创建成员（create_person）", timeout=60_000)
    for target in ("ed", "rita"):
        expect(log.get_by_text(target, exact=True)).not_to_have_count(0)  # the acts' targets
    _choose(page, "audit_action", "授权（grant）")
    # the filtered page is drawn (the box shows the choice before the page has run with it)
    expect(page.get_by_text("共 3 条记录", exact=False)).to_be_visible(timeout=60_000)
    exported = _download(page, "导出 CSV").decode("utf-8-sig")
    lines = exported.splitlines()
    assert lines[0] == "id,at,actor,action,kb,target,outcome,origin,detail"
    # the filter holds in the export: the three grants, newest first
    assert [line.split(",")[2:6] for line in lines[1:]] == [
        ["ada", "grant", "default", "rita"],
        ["ada", "grant", "secret", "ed"],
        ["ada", "grant", "default", "ed"],
    ]
    screenshot(page, "people-00b-audit-log.png")
    page.get_by_role("button", name="退出登录").click()
    _is_login_form(page)


def _a_reader_reaches_nothing_that_is_not_hers(page: Any, url: str, editors: str) -> None:
    from playwright.sync_api import expect

    _log_in(page, url, "rita")
    expect(page.get_by_test_id("stChatInputTextArea")).to_be_visible()
    # typed by hand, a page's address or its file's: a new page load, kept logged in by the
    # cookie, and never the knowledge-base page or the inspector
    for path in ("kb", "inspect", "members", "knowledge_base", "inspector", "people"):
        _go(page, f"{url}/{path}")
        _is_page_of(page, "rita")
        expect(page.get_by_test_id("stFileUploaderDropzoneInput")).to_have_count(0)
        expect(page.get_by_text("上传文档", exact=True)).to_have_count(0)
        expect(page.get_by_label("测试问题")).to_have_count(0)
        expect(page.get_by_role("button", name="删除", exact=False)).to_have_count(0)
        expect(page.get_by_text("新建成员", exact=True)).to_have_count(0)
        expect(page.get_by_test_id("stTable")).to_have_count(0)
    screenshot(page, "people-01-reader-typed-kb-url.png")

    # the editor's conversation, its link pasted: refused as if it did not exist
    _go(page, f"{url}/?c={editors}")
    _is_page_of(page, "rita")
    refusal = page.get_by_text(NOT_FOUND)
    expect(refusal).to_be_visible(timeout=60_000)
    expect(page.get_by_text(EDITORS_QUESTION)).to_have_count(0)
    expect(page.get_by_test_id("stChatMessage")).to_have_count(0)
    page.wait_for_function("() => !location.search.includes('c=')")  # the link is dropped
    page.wait_for_timeout(2000)  # the page runs again meanwhile (models warming up): still said
    expect(refusal).to_be_visible()
    expect(page.get_by_text(EDITORS_QUESTION)).to_have_count(0)
    screenshot(page, "people-02-reader-refused-link.png")


def _logout_ends_the_session(page: Any, url: str) -> None:
    [kept] = [c for c in page.context.cookies() if c["name"] == COOKIE]
    page.get_by_role("button", name="退出登录").click()
    _is_login_form(page)
    _go(page, url)
    _is_login_form(page)
    # a copy of the cookie taken before the logout (say from another machine) opens nothing:
    # the session is over on the server, not only forgotten by this browser
    page.context.add_cookies([kept])
    _go(page, url)
    _is_login_form(page)
    screenshot(page, "people-03-after-logout.png")


def _a_forged_or_expired_cookie_is_the_login_form(
    page: Any, url: str, settings: Any, person_id: int
) -> None:
    session = Sessions(settings).start(person_id)  # a live session of rita's
    good = session_token(settings, session)
    forged = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    with pytest.MonkeyPatch.context() as patch:  # signed a day longer ago than a login lasts
        past = time.time() - settings.session_hours * 3600 - 86400
        patch.setattr(time, "time", lambda: past)
        expired = session_token(settings, session)
    for name, value in (("good", good), ("forged", forged), ("expired", expired)):
        page.context.clear_cookies()
        page.context.add_cookies([{"name": COOKIE, "value": value, "url": url}])
        _go(page, url)
        if name == "good":  # the same session, properly signed: the page
            _is_page_of(page, "rita")
        else:
            _is_login_form(page)
            screenshot(page, f"people-04-{name}-cookie.png")
    page.context.clear_cookies()


def _an_editor_uploads_where_granted_write_only(page: Any, url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    document = tmp_path / "报销规定.txt"
    document.write_text("报销规定\n出差结束后三十天内提交报销单。", encoding="utf-8")
    _log_in(page, url, "ed")
    page.get_by_test_id("stSidebarNavLink").filter(has_text="知识库").click()
    dropzone = page.get_by_test_id("stFileUploaderDropzoneInput")
    expect(dropzone).to_be_attached(timeout=180_000)  # `default`, granted write
    dropzone.set_input_files(str(document))
    import_button = page.get_by_role("button", name="导入 1 个文件到「default」")
    expect(import_button).to_be_enabled(timeout=30_000)
    import_button.click()
    expect(page.get_by_text("导入完成:新增 1")).to_be_visible(timeout=120_000)
    screenshot(page, "people-05-editor-uploaded.png")

    # `secret`, granted read: the page says so and offers no upload
    page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").click()
    page.get_by_role("option", name="secret", exact=True).click()
    expect(page.get_by_text("你对知识库「secret」没有写入权限")).to_be_visible(timeout=60_000)
    expect(page.get_by_test_id("stFileUploaderDropzoneInput")).to_have_count(0)
    expect(page.get_by_text("上传文档", exact=True)).to_have_count(0)
    screenshot(page, "people-06-editor-read-only-kb.png")


def _an_editors_export_is_audited_as_hers(
    page: Any, url: str, settings: Any, conversation: str
) -> None:
    """导出 Markdown makes the file when clicked, through the service: the download holds the
    conversation and the audit log names the editor; nobody else exported it (the reader's
    link opened nothing)."""
    from playwright.sync_api import expect

    _go(page, f"{url}/?c={conversation}")
    _is_page_of(page, "ed")
    expect(page.get_by_text(EDITORS_QUESTION).first).to_be_visible(timeout=60_000)
    page.get_by_test_id("stSidebar").get_by_text("管理当前对话").click()
    with page.expect_download(timeout=60_000) as download:
        page.get_by_role("button", name="导出 Markdown").click()
    assert EDITORS_QUESTION in Path(download.value.path()).read_text(encoding="utf-8")
    exports = [e for e in AuditLog(settings).entries() if e.action == "export_conversation"]
    assert [(e.actor, e.target, e.outcome) for e in exports] == [("ed", conversation, "ok")]
    screenshot(page, "people-07-editor-exported.png")
