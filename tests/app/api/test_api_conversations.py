"""A person's conversations through the HTTP API and MCP, as their clients meet them: the author
lists, reads (answers, citations and feedback as data), exports and deletes their own; to anybody
else another's conversation does not exist (the same 404 as an unknown id) and is never deleted;
an admin reads it read only and the read is in the audit log; a key narrowed to another knowledge
base reads none of it. The real app under FastAPI's TestClient, real keys, real state database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi.testclient import TestClient
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from support import answer_result, make_settings

from app._conversations import ConversationStore, Feedback, Turn
from app.access import Principal
from app.api import create_app
from app.api.mcp import build_mcp
from app.service import Service
from app.state import engine as state_engine

NOT_FOUND_ZH = "找不到这个对话或你无权查看"
LOCAL = Principal.local("test")
QUESTION = "员工每年有几天年假?"
PEOPLE = {  # name: (role, grants)
    "ada": ("admin", {}),
    "rita": ("reader", {"alpha": "read", "beta": "read"}),
    "ed": ("editor", {"alpha": "write"}),
}


@dataclass
class Home:
    service: Service
    client: TestClient
    keys: dict[str, str]

    def get(self, key: str, path: str) -> httpx.Response:
        return self.client.get(path, headers={"Authorization": f"Bearer {self.keys[key]}"})

    def delete(self, key: str, path: str) -> httpx.Response:
        return self.client.delete(path, headers={"Authorization": f"Bearer {self.keys[key]}"})

    def conversation_of(self, person: str | None, kb: str = "alpha") -> str:
        """A conversation of `person` (None: of nobody) with one answered turn, given 👎."""
        author = self.service.accounts.require(person).id if person else None
        store = ConversationStore(self.service.settings, kb)
        conversation = store.create(author_id=author)
        store.append(conversation, Turn(QUESTION, answer_result(QUESTION)))
        store.set_feedback(conversation, 0, Feedback(0, "少说了五天", "二十天"))
        return conversation

    def exists(self, conversation: str, kb: str = "alpha") -> bool:
        return ConversationStore(self.service.settings, kb).get(conversation) is not None


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    state_engine.forget_engines()
    settings = make_settings(tmp_path_factory.mktemp("conversations") / "home")
    service = Service(settings)
    for name, (role, grants) in PEOPLE.items():
        service.create_person(LOCAL, name, "correct horse battery", role)
        for kb, access in grants.items():
            service.grant(LOCAL, name, kb, access)
    keys = {name: service.create_key(LOCAL, f"{name}-key", owner=name)[1] for name in PEOPLE}
    # rita's own key for beta alone, and ada's: an admin through a key narrowed to beta
    keys["rita-beta"] = service.create_key(LOCAL, "rita-beta", ["beta"], owner="rita")[1]
    keys["ada-beta"] = service.create_key(LOCAL, "ada-beta", ["beta"], owner="ada")[1]
    app = create_app(settings, service, open_without_keys=False)
    with TestClient(app) as client:
        yield Home(service, client, keys)
    service.close()
    state_engine.forget_engines()


def url(conversation: str = "", kb: str = "alpha", tail: str = "") -> str:
    path = f"/v1/knowledge_bases/{kb}/conversations"
    return f"{path}/{conversation}{tail}" if conversation else path


def test_the_author_lists_reads_exports_and_deletes_their_conversation(home: Home) -> None:
    mine = home.conversation_of("rita")
    theirs = home.conversation_of("ed")
    listed = home.get("rita", url())
    assert listed.status_code == 200
    ids = [c["id"] for c in listed.json()]
    assert mine in ids and theirs not in ids
    [row] = [c for c in listed.json() if c["id"] == mine]
    assert row["title"] == QUESTION and row["turns"] == 1

    read = home.get("rita", url(mine))
    assert read.status_code == 200
    body = read.json()
    assert body["own"] is True and body["author"] is None and body["kb"] == "alpha"
    [turn] = body["turns"]
    assert turn["seq"] == 0 and turn["question"] == QUESTION
    assert turn["text"] == "员工每年享有十五天带薪年假[1]。"
    citation = turn["answer"]["citations"][0]  # citations as data, not pasted into the text
    assert citation["quote"] == "员工每年享有十五天带薪年假" and citation["page"] == 2
    assert citation["file"] == "员工手册.pdf" and turn["answer"]["refused"] is False
    assert turn["feedback"] == {"score": 0, "note": "少说了五天", "correction": "二十天"}

    exported = home.get("rita", url(mine, tail="/export"))
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/markdown")
    markdown = exported.text
    assert markdown.startswith(f"# {QUESTION}\n")
    assert f"**问:** {QUESTION}" in markdown and "员工每年享有十五天带薪年假[1]。" in markdown
    assert "[1] 《员工手册》 员工手册.pdf,第 2 页" in markdown
    as_json = json.loads(home.get("rita", url(mine, tail="/export?format=json")).text)
    assert as_json["format"] == "zhiku-conversation" and as_json["id"] == mine
    assert as_json["turns"][0]["feedback"]["correction"] == "二十天"
    exports = [e for e in home.service.audit_entries(LOCAL) if e.target == mine]
    assert [(e.actor, e.action, json.loads(e.detail or "{}")) for e in exports] == [
        ("rita (key rita-key)", "export_conversation", {"format": "json"}),
        ("rita (key rita-key)", "export_conversation", {"format": "markdown"}),
    ]  # every export, newest first; her reads are not another's, so not audited

    deleted = home.delete("rita", url(mine))
    assert deleted.status_code == 200 and deleted.json() == {"deleted": mine}
    assert not home.exists(mine)
    assert home.get("rita", url(mine)).status_code == 404
    assert mine not in [c["id"] for c in home.get("rita", url()).json()]
    assert home.exists(theirs)  # only hers went


def _refusal(response: httpx.Response) -> tuple[int, str, str]:
    error = response.json()["error"]
    return response.status_code, error["code"], error["message_zh"]


def test_anothers_conversation_is_not_found_and_not_deleted(home: Home) -> None:
    theirs = home.conversation_of("rita")
    unknown = _refusal(home.get("ed", url("no-such-conversation")))
    assert unknown == (404, "not_found", NOT_FOUND_ZH)
    for tail in ("", "/export", "/export?format=json"):  # the same answer: an id tells nothing
        assert _refusal(home.get("ed", url(theirs, tail=tail))) == unknown
    assert _refusal(home.delete("ed", url(theirs))) == unknown
    assert home.exists(theirs)
    assert home.get("rita", url(theirs)).status_code == 200
    # the refused tries of a conversation that exists are in the audit log
    tried = [e for e in home.service.audit_entries(LOCAL) if e.target == theirs]
    assert {(e.actor, e.action, e.outcome) for e in tried} == {
        ("ed (key ed-key)", "refused:open_conversation", "refused"),
        ("ed (key ed-key)", "refused:delete_conversation", "refused"),
    }


def test_an_admin_reads_anothers_read_only_and_the_read_is_audited(home: Home) -> None:
    theirs = home.conversation_of("rita")
    read = home.get("ada", url(theirs))
    assert read.status_code == 200
    body = read.json()
    assert body["own"] is False and body["author"] == "rita"
    assert body["turns"][0]["feedback"]["score"] == 0
    rows = [e for e in home.service.audit_entries(LOCAL) if e.target == theirs]
    assert [(e.actor, e.action, e.kb, e.outcome) for e in rows] == [
        ("ada (key ada-key)", "open_conversation", "alpha", "ok")
    ]
    assert json.loads(rows[0].detail or "{}")["author"] == "rita"
    assert home.get("ada", url(theirs, tail="/export")).status_code == 200
    exported = next(e for e in home.service.audit_entries(LOCAL) if e.target == theirs)
    assert (exported.actor, exported.action) == ("ada (key ada-key)", "export_conversation")
    assert json.loads(exported.detail or "{}") == {"format": "markdown", "author": "rita"}
    # read only: never deleted, never listed among hers
    assert _refusal(home.delete("ada", url(theirs))) == (404, "not_found", NOT_FOUND_ZH)
    assert home.exists(theirs)
    assert theirs not in [c["id"] for c in home.get("ada", url()).json()]


def test_a_key_for_another_knowledge_base_reads_no_conversation_of_this_one(home: Home) -> None:
    mine = home.conversation_of("rita")
    theirs = home.conversation_of("rita")
    before = len(home.service.audit_entries(LOCAL))
    for key, conversation in (("rita-beta", mine), ("ada-beta", theirs)):
        for response in (
            home.get(key, url()),
            home.get(key, url(conversation)),
            home.get(key, url(conversation, tail="/export")),
            home.delete(key, url(conversation)),
        ):
            assert response.status_code == 403, response.text
            assert response.json()["error"]["code"] == "kb_not_allowed"
    assert home.exists(mine) and home.exists(theirs)
    # the key's own knowledge base works: her conversation there is hers
    in_beta = home.conversation_of("rita", kb="beta")
    assert home.get("rita-beta", url(in_beta, kb="beta")).status_code == 200
    # nothing was opened: no admin read of rita's conversation is recorded
    entries = home.service.audit_entries(LOCAL)
    new = entries[: len(entries) - before]  # newest first
    assert [e for e in new if e.action == "open_conversation"] == []


async def test_mcp_lists_and_reads_own_conversations_and_not_anothers(home: Home) -> None:
    service = home.service
    principal = {"who": service.accounts.principal_for(service.accounts.require("rita"))}
    server = build_mcp(service, who=lambda: principal["who"])
    mine = home.conversation_of("rita")
    theirs = home.conversation_of("ed")

    listed = await server.call_tool("list_conversations", {"kb": "alpha"})
    rows = listed.structured_content["result"]  # type: ignore[union-attr, index]
    ids = {r["id"] for r in rows}
    assert mine in ids and theirs not in ids
    assert {r["uri"] for r in rows if r["id"] == mine} == {f"zhiku://alpha/conversations/{mine}"}

    got = await server.call_tool("get_conversation", {"conversation_id": mine, "kb": "alpha"})
    turn = got.structured_content["turns"][0]  # type: ignore[union-attr, index]
    assert turn["answer"]["citations"][0]["quote"] == "员工每年享有十五天带薪年假"
    assert turn["feedback"]["note"] == "少说了五天"
    [markdown] = await server.read_resource(f"zhiku://alpha/conversations/{mine}")  # type: ignore[misc]
    assert f"**问:** {QUESTION}" in str(markdown.content)

    for conversation in (theirs, "no-such-conversation"):
        with pytest.raises(ToolError, match="not yours"):
            await server.call_tool(
                "get_conversation", {"conversation_id": conversation, "kb": "alpha"}
            )
        with pytest.raises(ResourceError, match="not yours"):
            await server.read_resource(f"zhiku://alpha/conversations/{conversation}")
    principal["who"] = principal["who"].narrowed("rita-beta", ["beta"], read_only=False)
    with pytest.raises(ToolError, match="not allowed to read"):
        await server.call_tool("get_conversation", {"conversation_id": mine, "kb": "alpha"})
    tools = {t.name for t in await server.list_tools()}
    assert {"list_conversations", "get_conversation"} <= tools
    assert not any("delete" in t for t in tools)  # no agent deletes a person's history


def feedback_url(conversation: str, seq: int = 0, kb: str = "alpha") -> str:
    return url(conversation, kb, f"/turns/{seq}/feedback")


def test_the_author_gives_feedback_and_nobody_else_can(home: Home) -> None:
    mine = home.conversation_of("rita")
    store = ConversationStore(home.service.settings, "alpha")

    def kept() -> Feedback | None:
        return store.turns(mine)[0].feedback

    def put(key: str, path: str, body: dict[str, object]) -> httpx.Response:
        headers = {"Authorization": f"Bearer {home.keys[key]}"}
        return home.client.put(path, json=body, headers=headers)

    right = {"score": 1, "note": "对的"}
    done = put("rita", feedback_url(mine), right)
    assert done.status_code == 200, done.text
    assert done.json() == {
        "conversation": mine,
        "seq": 0,
        "feedback": {"score": 1, "note": "对的", "correction": ""},
    }
    assert kept() == Feedback(1, "对的", "")
    shown = home.get("rita", url(mine)).json()["turns"][0]["feedback"]
    assert shown == {"score": 1, "note": "对的", "correction": ""}

    wrong = {"score": 0, "correction": "二十天"}
    # another reader, an admin (who may only read it), an unknown conversation: all 404 alike
    for key, path in (
        ("ed", feedback_url(mine)),
        ("ada", feedback_url(mine)),
        ("rita", feedback_url("no-such-conversation")),
    ):
        refused = put(key, path, wrong)
        assert _refusal(refused) == (404, "not_found", NOT_FOUND_ZH), (key, refused.text)
        assert _refusal(home.delete(key, path)) == (404, "not_found", NOT_FOUND_ZH)
    # her own conversation, a turn it does not have: 404 too, and nothing is kept
    missing = put("rita", feedback_url(mine, seq=5), wrong)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert home.delete("rita", feedback_url(mine, seq=5)).status_code == 404
    assert [t.feedback for t in store.turns(mine)] == [Feedback(1, "对的", "")]
    # a key narrowed to another knowledge base: 403 before anything is looked up
    narrowed = put("rita-beta", feedback_url(mine), wrong)
    assert narrowed.status_code == 403
    assert narrowed.json()["error"]["code"] == "kb_not_allowed"
    assert put("rita", feedback_url(mine), {"score": 7}).status_code == 422
    assert kept() == Feedback(1, "对的", "")
    tried = [e for e in home.service.audit_entries(LOCAL) if e.target == mine]
    assert {(e.actor, e.action) for e in tried} == {
        ("ed (key ed-key)", "refused:set_feedback"),
        ("ada (key ada-key)", "refused:set_feedback"),
    }

    taken_back = home.delete("rita", feedback_url(mine))
    assert taken_back.status_code == 200 and taken_back.json()["feedback"] is None
    assert kept() is None


async def test_mcp_sets_feedback_on_own_conversations_only(home: Home) -> None:
    service = home.service
    rita = service.accounts.principal_for(service.accounts.require("rita"))
    server = build_mcp(service, who=lambda: rita)
    mine = home.conversation_of("rita")
    theirs = home.conversation_of("ed")
    args = {"seq": 0, "score": 1, "note": "好", "kb": "alpha"}
    await server.call_tool("set_feedback", {"conversation_id": mine, **args})
    store = ConversationStore(service.settings, "alpha")
    assert store.turns(mine)[0].feedback == Feedback(1, "好", "")
    with pytest.raises(ToolError, match="not yours"):
        await server.call_tool("set_feedback", {"conversation_id": theirs, **args})
    with pytest.raises(ToolError, match="no turn 3"):
        await server.call_tool("set_feedback", {"conversation_id": mine, **args, "seq": 3})
    assert store.turns(theirs)[0].feedback == Feedback(0, "少说了五天", "二十天")
    await server.call_tool("set_feedback", {"conversation_id": mine, **args, "score": None})
    assert store.turns(mine)[0].feedback is None
