"""成员与权限, the admins' page, through Streamlit's `AppTest` over a real data home: an admin
creates a person and grants them a knowledge base, and is told in Chinese why a taken name, a
short password, two different passwords or the last admin's demotion is refused; a reader or an
editor does not have the page in their navigation, and its file run on its own (a URL typed by
hand) shows the refusal and nothing of it; the audit log is filtered, paged, and exported as
CSV and JSON (the content checked, the export itself audited). The same in a real browser:
`tests/app/test_browser_people.py`."""

from __future__ import annotations

import csv
import io
import json
import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from support import MODELS_DIR, REPO, make_settings
from test_login import APP, PASSWORD, log_in, team_home
from test_login import template as template  # the two knowledge bases, built once

from app.access import Principal
from app.service import Service, ServiceError
from app.state import engine as state_engine
from app.state.accounts import Accounts
from app.state.audit import AuditLog, AuditQuery
from app.ui.login import WHO_KEY
from app.ui.resources import KB_KEY

pytestmark = pytest.mark.timeout(600)
PEOPLE_PAGE = "pages/people.py"


@pytest.fixture
def home(tmp_path: Path, template: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = team_home(tmp_path, template, monkeypatch)
    accounts = Accounts(make_settings(data))
    accounts.create("ed", PASSWORD, "editor")
    accounts.grant("ed", "default", "write")
    return data


def people_page(name: str = "ada") -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    log_in(at, name, PASSWORD)
    at.switch_page(PEOPLE_PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def people_table(at: AppTest) -> dict[str, dict[str, str]]:
    table = at.table[0].value
    return {row["用户名"]: row for row in table.to_dict("records")}


def create(at: AppTest, name: str, password: str, role: str, again: str | None = None) -> None:
    at.text_input(key="people_new_name").input(name)
    at.selectbox(key="people_new_role").set_value(role)
    at.text_input(key="people_new_password").input(password)
    at.text_input(key="people_new_again").input(password if again is None else again)
    [submit] = [b for b in at.button if b.label == "创建成员"]
    submit.click().run()
    assert not at.exception, [e.value for e in at.exception]


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def test_an_admin_creates_a_person_and_grants_them_a_knowledge_base(home: Path) -> None:
    at = people_page()
    assert set(people_table(at)) == {"ada", "ed", "rita"}
    assert people_table(at)["rita"]["知识库权限"] == "default：只读"
    create(at, "li", "long enough pw", "editor")
    assert any("已创建成员「li」（编辑）" in s.value for s in at.success)
    assert people_table(at)["li"]["角色"] == "编辑"
    assert at.text_input(key="people_new_name").value == ""  # the form is cleared for the next

    at.selectbox(key="people_pick").set_value("li").run()
    at.selectbox(key="people_grant_kb_li").set_value("secret")
    at.selectbox(key="people_grant_access_li").set_value("write")
    at.button(key="people_grant_li").click().run()
    assert any("已授予「li」对「secret」的读写权限" in s.value for s in at.success)
    assert people_table(at)["li"]["知识库权限"] == "secret：读写"

    # she can log in with what the admin gave her, and gets what was granted
    li = Accounts(make_settings(home)).login("li", "long enough pw").person
    assert li is not None and li.role == "editor" and li.grants == {"secret": "write"}
    acts = [(e.actor, e.action, e.target, e.kb) for e in AuditLog(make_settings(home)).entries()]
    assert ("ada", "create_person", "li", None) in acts
    assert ("ada", "grant", "li", "secret") in acts

    # revoked again, from the list of her grants
    at.button(key="people_revoke_li_secret").click().run()
    assert people_table(at)["li"]["知识库权限"] == "无"


def test_refusals_are_said_in_chinese_and_change_nothing(home: Path) -> None:
    at = people_page()
    create(at, "rita", "long enough pw", "reader")
    assert any("用户 'rita' 已存在" in e for e in errors(at)), errors(at)
    create(at, "new", "short", "reader")
    assert any("密码至少需要 8 个字符" in e for e in errors(at)), errors(at)
    create(at, "new", "long enough pw", "reader", again="another one!")
    assert any("两次输入的密码不一致" in e for e in errors(at)), errors(at)
    assert set(people_table(at)) == {"ada", "ed", "rita"}
    # the only admin cannot take their own role away, nor disable or delete themselves
    at.selectbox(key="people_pick").set_value("ada").run()
    at.selectbox(key="people_role_ada").set_value("reader").run()
    at.button(key="people_role_save_ada").click().run()
    assert any("最后一位启用中的管理员" in e for e in errors(at)), errors(at)
    at.button(key="people_toggle_ada").click().run()
    assert any("最后一位启用中的管理员" in e for e in errors(at)), errors(at)
    assert people_table(at)["ada"]["角色"] == "管理员"
    assert people_table(at)["ada"]["状态"] == "启用"


def test_deleting_asks_first(home: Path) -> None:
    at = people_page()
    at.selectbox(key="people_pick").set_value("rita").run()
    at.button(key="people_delete_rita").click().run()
    assert any("确定删除「rita」吗" in w.value for w in at.warning)
    assert "rita" in people_table(at)  # not yet
    at.button(key="people_delete_yes").click().run()
    assert "rita" not in people_table(at)
    assert any("已删除成员「rita」" in s.value for s in at.success)


@pytest.mark.parametrize("name", ["rita", "ed"])
def test_a_reader_or_editor_cannot_open_the_page(home: Path, name: str) -> None:
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    log_in(at, name, PASSWORD)
    with pytest.raises(ValueError, match="Known pages"):  # not in their navigation
        at.switch_page(PEOPLE_PAGE)
    # the page's file run on its own, as Streamlit does for a URL typed by hand
    accounts = Accounts(make_settings(home))
    page = AppTest.from_file(str(REPO / "app" / PEOPLE_PAGE), default_timeout=120)
    page.session_state[KB_KEY] = "default"
    page.session_state[WHO_KEY] = accounts.principal_for(accounts.require(name))
    page.run()
    assert [e.value for e in page.error] == ["你没有打开这个页面的权限。"]
    assert not page.table and not page.text_input and not page.button
    assert not page.tabs and not page.download_button


def _audit_rows(at: AppTest) -> list[dict[str, str]]:
    return at.table[1].value.to_dict("records") if len(at.table) > 1 else []


def test_the_audit_log_is_filtered_paged_and_exported(home: Path) -> None:
    settings = make_settings(home)
    log = AuditLog(settings)
    for n in range(60):
        log.record("ed", "upload", "default", f"file-{n}.txt")
    log.record("rita", "refused:write", "default", outcome="refused")
    log.record("ada", "grant", "secret", "ed", detail={"access": "read"})
    at = people_page()
    captions = [c.value for c in at.caption]
    assert any("共 63 条" in c and "第 1/2 页" in c for c in captions), captions  # 62 + a login
    rows = _audit_rows(at)
    assert len(rows) == 50 and rows[0]["操作"].startswith("登录")  # newest first: ada's login
    at.button(key="audit_ahead").click().run()
    assert any("第 2/2 页" in c.value for c in at.caption)
    assert _audit_rows(at)[-1]["对象"] == "file-0.txt"  # the oldest upload, last

    at.selectbox(key="audit_actor").set_value("ed").run()  # a new filter: back to page 1
    at.selectbox(key="audit_action").set_value("upload").run()
    assert any("共 60 条" in c.value and "第 1/2 页" in c.value for c in at.caption)
    at.selectbox(key="audit_actor").set_value("").run()
    at.selectbox(key="audit_action").set_value("").run()
    at.selectbox(key="audit_outcome").set_value("refused").run()
    [refused] = _audit_rows(at)
    assert (refused["成员"], refused["结果"], refused["知识库"]) == ("rita", "拒绝", "default")
    at.selectbox(key="audit_outcome").set_value("").run()
    at.selectbox(key="audit_kb").set_value("secret").run()
    [grant] = _audit_rows(at)
    assert (grant["成员"], grant["对象"]) == ("ada", "ed") and "授权" in grant["操作"]
    at.selectbox(key="audit_kb").set_value("").run()
    tomorrow = date.today() + timedelta(days=1)
    at.date_input(key="audit_since").set_value(tomorrow).run()
    assert any("没有符合条件的记录" in i.value for i in at.info)
    assert all(b.disabled for b in at.download_button)  # nothing to export
    at.date_input(key="audit_since").set_value(date.today() - timedelta(days=1))
    at.date_input(key="audit_until").set_value(date.today()).run()
    assert any("共 63 条" in c.value for c in at.caption), [c.value for c in at.caption]
    assert [b.label for b in at.download_button] == ["导出 CSV", "导出 JSON"]
    assert not any(b.disabled for b in at.download_button)


def test_an_export_holds_what_the_filters_select_and_is_audited(home: Path) -> None:
    """The export the page's buttons make when clicked (Streamlit runs it apart from the page,
    so AppTest cannot click it: the browser test downloads one)."""
    settings = make_settings(home)
    log = AuditLog(settings)
    log.record("ed", "upload", "default", "a.txt")
    log.record("=cmd|' /C calc'!A0", "login_failed", outcome="refused")  # typed at the login
    log.record("rita", "refused:write", "default", outcome="refused")
    service = Service(settings)
    ada = Principal("ada", "admin", person_id=Accounts(settings).require("ada").id)
    refused = AuditQuery(outcome="refused")
    as_json = json.loads(service.export_audit(ada, refused, "json").data)
    assert [(e["actor"], e["action"]) for e in as_json] == [
        ("rita", "refused:write"),
        ("=cmd|' /C calc'!A0", "login_failed"),
    ]
    exported = service.export_audit(ada, refused, "csv")
    assert exported.data.startswith("\ufeff".encode())  # spreadsheets read it as UTF-8
    table = list(csv.DictReader(io.StringIO(exported.data.decode("utf-8-sig"))))
    assert [(r["actor"], r["outcome"]) for r in table] == [
        ("rita", "refused"),
        ("'=cmd|' /C calc'!A0", "refused"),  # never run as a formula
    ]
    assert exported.file_name == "zhiku-audit.csv" and exported.rows == 2
    [csv_row, json_row] = [e for e in log.entries() if e.action == "export_audit"]
    assert csv_row.actor == "ada" and json.loads(csv_row.detail or "") == {
        "format": "csv",
        "rows": 2,
        "filters": {"outcome": "refused"},
    }
    assert json.loads(json_row.detail or "")["format"] == "json"
    rita = Accounts(settings).principal_for(Accounts(settings).require("rita"))
    with pytest.raises(ServiceError):
        service.export_audit(rita, AuditQuery(), "json")


def test_without_accounts_the_local_user_makes_the_first_admin(
    tmp_path: Path, template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On this machine, before anybody has an account, the local user may open the page (as the
    CLI may); the first person is offered as an admin, and once made, the app asks for a login."""
    data = tmp_path / "bare"
    shutil.copytree(template, data)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ZHIKU_HOME", str(data))
    monkeypatch.setenv("ZHIKU_MODELS_DIR", str(MODELS_DIR))
    monkeypatch.setenv("LLM_BACKEND", "none")
    state_engine.forget_engines()
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    at.switch_page(PEOPLE_PAGE).run()
    assert any("还没有任何账号" in i.value for i in at.info)
    assert at.selectbox(key="people_new_role").value == "admin"
    create(at, "ada", PASSWORD, "admin")
    assert Accounts(make_settings(data)).require("ada").role == "admin"
    at.run()
    assert [t.label for t in at.text_input] == ["用户名", "密码"]  # the login form
