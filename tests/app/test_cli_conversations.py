"""`zhiku conversations` as an operator runs it: the local user's conversations (those of nobody)
listed, shown with their answers, sources and feedback, exported and deleted; a person's shown
read only by its id, in the audit log, never listed or deleted."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import REPO, answer_result
from typer.testing import CliRunner

from app._conversations import ConversationStore, Feedback, Turn
from app.cli import cli
from app.state import engine as state_engine
from app.state.accounts import Accounts
from app.state.audit import AuditLog
from ingest.settings import Settings, get_settings

QUESTION = "员工每年有几天年假?"
NOT_FOUND_ZH = "找不到这个对话或你无权查看"


@pytest.fixture
def zhiku(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    monkeypatch.setenv("ZHIKU_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ZHIKU_MODELS_DIR", str(REPO / ".zhiku" / "models"))
    monkeypatch.setenv("LLM_BACKEND", "none")
    monkeypatch.chdir(tmp_path)  # no developer .env is read
    get_settings.cache_clear()
    state_engine.forget_engines()
    runner = CliRunner()

    def run(*args: str, input: str | None = None) -> Any:
        return runner.invoke(cli, list(args), input=input, catch_exceptions=False)

    yield run
    get_settings.cache_clear()
    state_engine.forget_engines()


def _conversation(settings: Settings, author: int | None, kb: str = "default") -> str:
    store = ConversationStore(settings, kb)
    conversation = store.create(author_id=author)
    store.append(conversation, Turn(QUESTION, answer_result(QUESTION)))
    store.set_feedback(conversation, 0, Feedback(0, "少说了五天", "二十天"))
    return conversation


def test_the_local_users_conversation_listed_shown_exported_and_deleted(
    zhiku: Callable[..., Any], tmp_path: Path
) -> None:
    settings = get_settings()
    mine = _conversation(settings, None)
    elsewhere = _conversation(settings, None, kb="other")

    listed = zhiku("conversations", "list")
    assert listed.exit_code == 0, listed.output
    assert mine in listed.output and QUESTION in listed.output and elsewhere not in listed.output
    rows = json.loads(zhiku("conversations", "list", "--json").stdout)
    assert [(r["id"], r["title"], r["turns"]) for r in rows] == [(mine, QUESTION, 1)]

    shown = zhiku("conversations", "show", mine)
    assert shown.exit_code == 0, shown.output
    for part in (
        f"**问:** {QUESTION}",
        "员工每年享有十五天带薪年假[1]。",
        "[1] 《员工手册》 员工手册.pdf,第 2 页",
        "反馈: 👎 少说了五天（正确答案：二十天）",
    ):
        assert part in shown.output, part
    assert "read only" not in shown.output
    data = json.loads(zhiku("conversations", "show", mine, "--json").stdout)
    assert data["turns"][0]["result"]["citations"][0]["quote"] == "员工每年享有十五天带薪年假"

    exported = zhiku("conversations", "export", mine)
    assert exported.exit_code == 0 and exported.stdout.startswith(f"# {QUESTION}\n")
    assert "**来源**" in exported.stdout
    target = tmp_path / "out.json"
    written = zhiku("conversations", "export", mine, "--format", "json", "-o", str(target))
    assert written.exit_code == 0, written.output
    assert json.loads(target.read_text(encoding="utf-8"))["id"] == mine
    exports = [e for e in AuditLog(settings).entries() if e.action == "export_conversation"]
    assert [(e.actor, e.target, e.origin) for e in exports] == [("local", mine, "cli")] * 2

    assert zhiku("conversations", "delete", mine, input="n\n").exit_code == 1  # asked: kept
    assert ConversationStore(settings, "default").get(mine) is not None
    deleted = zhiku("conversations", "delete", mine, "--yes")
    assert deleted.exit_code == 0 and f"deleted conversation {mine}" in deleted.output
    assert ConversationStore(settings, "default").get(mine) is None
    gone = zhiku("conversations", "show", mine)
    assert gone.exit_code == 1 and NOT_FOUND_ZH in gone.output
    assert zhiku("conversations", "list", "--kb", "other").output.count(elsewhere) == 1


def test_a_persons_conversation_is_read_only_and_its_read_audited(
    zhiku: Callable[..., Any],
) -> None:
    settings = get_settings()
    rita = Accounts(settings).create("rita", "correct horse battery", "reader")
    theirs = _conversation(settings, rita.id)

    listed = json.loads(zhiku("conversations", "list", "--json").stdout)
    assert theirs not in [r["id"] for r in listed]  # hers, not the local user's

    shown = zhiku("conversations", "show", theirs)
    assert shown.exit_code == 0, shown.output
    assert "rita's, read only" in shown.output and "员工每年享有十五天带薪年假" in shown.output
    opened = [e for e in AuditLog(settings).entries() if e.target == theirs]
    assert [(e.actor, e.action, e.origin, e.outcome) for e in opened] == [
        ("local", "open_conversation", "cli", "ok")
    ]

    refused = zhiku("conversations", "delete", theirs, "--yes")
    assert refused.exit_code == 1 and NOT_FOUND_ZH in refused.output
    assert ConversationStore(settings, "default").get(theirs) is not None
    unknown = zhiku("conversations", "delete", "no-such-conversation", "--yes")
    assert unknown.exit_code == 1 and NOT_FOUND_ZH in unknown.output
