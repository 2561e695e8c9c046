"""Rights, checked in the one service and seen through the API: a matrix of principal × knowledge
base × action over every service method that takes a principal and every API route, generated
from `Service`'s methods and `app.routes`, so a method or a route added without a rule fails.

The people: an admin; an editor who writes `alpha` and reads `beta`; a reader of `alpha`; a
reader granted write on everything (a reader never writes); the editor through a read-only key
for `alpha`; the local user of a zhiku without accounts. Nothing is mocked but the deletion's
own work (the gate in front of it is what is checked; deleting is tested in test_service.py).

Conversations, their feedback and evaluation cases are also their author's: a second matrix,
principal × a record of each author (and of nobody) × every such method (`OWNERSHIP`), checks
what is listed, opened or changed, and that a refusal changes nothing and says only "not found".
"""

from __future__ import annotations

import inspect
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import BaseRoute, Route
from support import answer_result, build_kb, make_settings

from app._conversations import ConversationStore, Feedback, Turn
from app._evalset import make_case
from app.access import PAGES, Principal
from app.api import create_app
from app.service import (
    OWNERSHIP,
    RULES,
    UNCHECKED,
    ConversationNotFound,
    Forbidden,
    Service,
    ServiceError,
)
from app.sources import Schedule, Source, SourceStore, new_source
from app.state import engine as state_engine
from app.state import evalcases, open_state
from app.state.accounts import Accounts
from app.state.audit import AuditQuery
from ingest._embed import Embedder
from ingest.store import StoreError

pytestmark = pytest.mark.timeout(600)
KBS = ("alpha", "beta")
PASSWORD = "correct horse battery"
PEOPLE = {
    "ada": ("admin", {}),
    "ed": ("editor", {"alpha": "write", "beta": "read"}),
    "rita": ("reader", {"alpha": "read"}),
    "wes": ("reader", {"*": "write"}),
}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Service]:
    state_engine.forget_engines()
    settings = make_settings(tmp_path_factory.mktemp("access") / "home")
    build_kb(settings, embedder, {"a.txt": "杭州概况\n杭州的市花是桂花。"}, "alpha")
    build_kb(settings, embedder, {"b.txt": "年假制度\n员工每年有 15 天带薪年假。"}, "beta")
    accounts = Accounts(settings)
    for name, (role, grants) in PEOPLE.items():
        accounts.create(name, PASSWORD, role)
        for kb, access in grants.items():
            accounts.grant(name, kb, access)
    service = Service(settings, embedder)
    service._delete_kb = lambda name: None  # type: ignore[method-assign]
    yield service
    service.close()
    state_engine.forget_engines()


def principals(service: Service) -> dict[str, Principal]:
    accounts = service.accounts
    found = {name: accounts.principal_for(accounts.require(name)) for name in PEOPLE}
    found["ed-key"] = found["ed"].narrowed("ed-laptop", ["alpha"], read_only=True)
    found["local"] = Principal.local("test")
    return found


def _empty_folder(service: Service) -> Path:
    folder = service.settings.zhiku_home / "empty-folder"
    folder.mkdir(exist_ok=True)
    return folder


def _watch_once(service: Service, who: Principal, kb: str) -> None:
    stop = threading.Event()
    stop.set()  # set from the start: one sync, then it returns
    service.watch_folders(who, kb, [_empty_folder(service)], quiet_s=0, on_report=print, stop=stop)


def _source_of(service: Service, kb: str) -> Source:
    """A source of `kb` whose sync changes nothing: an empty folder."""
    store = SourceStore(service.settings)
    found = [s for s in store.list(kb) if s.kind == "folder"]
    return found[0] if found else store.add(new_source(kb, str(_empty_folder(service))))


# One call per method: (service, who, kb) → the call. Arguments that would change data when
# allowed are chosen so that the change is harmless (an unknown document, an existing name).
CALLS: dict[str, Callable[[Service, Principal, str], object]] = {
    "kb_names": lambda s, w, kb: s.kb_names(w),
    "knowledge_bases": lambda s, w, kb: [k.name for k in s.knowledge_bases(w)],
    "status": lambda s, w, kb: [k["name"] for k in s.status(w)["knowledge_bases"]],  # type: ignore[index, union-attr]
    "kb_info": lambda s, w, kb: s.kb_info(w, kb),
    "documents": lambda s, w, kb: s.documents(w, kb),
    "document": lambda s, w, kb: s.document(w, kb, "no-such-doc"),
    "document_text": lambda s, w, kb: s.document_text(w, kb, "no-such-doc"),
    "passage": lambda s, w, kb: s.passage(w, kb, 10**9),
    "search": lambda s, w, kb: s.search(w, kb, "杭州", 2),
    "answer": lambda s, w, kb: list(s.answer(w, kb, "杭州的市花是什么？")),
    "ask": lambda s, w, kb: s.ask(w, kb, "杭州的市花是什么？"),
    "create_kb": lambda s, w, kb: s.create_kb(w, kb),  # exists: a conflict when allowed
    "save_files": lambda s, w, kb: s.save_files(w, kb, [("note.txt", "杭州".encode())]),
    "ingest_saved": lambda s, w, kb: s.ingest_saved(w, kb, []),
    "reingest_document": lambda s, w, kb: s.reingest_document(w, kb, "no-such-doc"),
    "remove_document": lambda s, w, kb: s.remove_document(w, kb, "no-such-doc"),
    "remove_origins": lambda s, w, kb: s.remove_origins(w, kb, ["no-such-origin"]),
    # files, pages, watched folders and sources: nothing to ingest, remove or sync
    "ingest_local": lambda s, w, kb: s.ingest_local(w, kb, []),
    "ingest_pages": lambda s, w, kb: s.ingest_pages(w, kb, []),
    "watch_folders": lambda s, w, kb: _watch_once(s, w, kb),
    "remove_matching": lambda s, w, kb: s.remove_matching(w, kb, ["no-such-doc"]),
    "repair_kb": lambda s, w, kb: s.repair_kb(w, kb),  # consistent: nothing to repair
    "sync_source": lambda s, w, kb: s.sync_source(w, _source_of(s, kb)),
    "delete_kb": lambda s, w, kb: s.delete_kb(w, kb),  # its work is a no-op here
    "owned": lambda s, w, kb: s.owned(w, kb),
    "people": lambda s, w, kb: s.people(w),
    "create_person": lambda s, w, kb: s.create_person(w, "ada", PASSWORD, "reader"),
    "set_password": lambda s, w, kb: s.set_password(w, "no-such-person", PASSWORD),
    "set_role": lambda s, w, kb: s.set_role(w, "no-such-person", "reader"),
    "set_disabled": lambda s, w, kb: s.set_disabled(w, "no-such-person"),
    "delete_person": lambda s, w, kb: s.delete_person(w, "no-such-person"),
    "grant": lambda s, w, kb: s.grant(w, "no-such-person", kb, "read"),
    "revoke": lambda s, w, kb: s.revoke(w, "no-such-person", kb),
    "api_keys": lambda s, w, kb: s.api_keys(w),
    "create_key": lambda s, w, kb: s.create_key(w, "k", None, False, "no-such-person"),
    "revoke_key": lambda s, w, kb: s.revoke_key(w, "no-such-key"),
    "audit_entries": lambda s, w, kb: s.audit_entries(w, 5),
    "audit_page": lambda s, w, kb: s.audit_page(w, AuditQuery(kb=kb), 0, 5),
    "audit_facets": lambda s, w, kb: s.audit_facets(w),
    "export_audit": lambda s, w, kb: s.export_audit(w, AuditQuery(kb=kb), "json"),
    # conversations and evaluation cases: each principal adds to a conversation of their own
    "conversations": lambda s, w, kb: s.conversations(w, kb),
    "new_conversation": lambda s, w, kb: s.new_conversation(w, kb),
    "open_conversation": lambda s, w, kb: s.open_conversation(w, kb, "no-such-conversation"),
    "export_conversation": lambda s, w, kb: s.export_conversation(w, kb, "no-such-c"),
    "add_turn": lambda s, w, kb: s.add_turn(w, kb, f"matrix-{w.label}", Turn("杭州?")),
    "update_turn": lambda s, w, kb: s.update_turn(w, kb, "no-such-c", Turn("杭州?", seq=0)),
    "rename_conversation": lambda s, w, kb: s.rename_conversation(w, kb, "no-such-c", "t"),
    "delete_conversation": lambda s, w, kb: s.delete_conversation(w, kb, "no-such-c"),
    "set_feedback": lambda s, w, kb: s.set_feedback(w, kb, "no-such-c", 0, Feedback(1)),
    "evaluation_cases": lambda s, w, kb: s.evaluation_cases(w, kb),
    "save_evaluation_case": lambda s, w, kb: s.save_evaluation_case(w, kb, "杭州?", "桂花"),
    "remove_evaluation_case": lambda s, w, kb: s.remove_evaluation_case(w, kb, "no-such-case"),
    # what the web app's pages do besides (app/_service_library.py)
    "answer_with": lambda s, w, kb: list(s.answer_with(w, kb, "杭州?", [], s.backend())),
    "inspect_retrieval": lambda s, w, kb: s.inspect_retrieval(w, kb, "杭州"),
    "run_evaluation": lambda s, w, kb: _no_evaluation_set(
        lambda: s.run_evaluation(w, kb, s.backend(), qids=set())
    ),
    "document_chunks": lambda s, w, kb: s.document_chunks(w, kb, "no-such-doc"),
    "excluded_chunks": lambda s, w, kb: s.excluded_chunks(w, kb),
    "exclude_chunk": lambda s, w, kb: s.exclude_chunk(w, kb, "no-such-chunk", False),
    "page_layout": lambda s, w, kb: s.page_layout(w, kb, "no-such-doc", 0),
    "page_text": lambda s, w, kb: s.page_text(w, kb, "no-such-doc", 0, 0, 0),
    "source_file": lambda s, w, kb: s.source_file(w, kb, "no-such-doc"),
    "storage": lambda s, w, kb: s.storage(w, kb),
    "upload_states": lambda s, w, kb: s.upload_states(w, kb, []),
    "ingest_files": lambda s, w, kb: s.ingest_files(w, kb, []),
    "check_change": lambda s, w, kb: s.check_change(w, kb),
    "ensure_kb": lambda s, w, kb: s.ensure_kb(w, kb),  # exists: nothing to do when allowed
    # the knowledge-base page's sources, folders, jobs and files (app/_kb_records.py)
    "sources": lambda s, w, kb: s.sources(w, kb),
    "add_source": lambda s, w, kb: s.add_source(w, kb, "ftp://x", crawl=False, schedule=Schedule()),
    "remove_source": lambda s, w, kb: s.remove_source(w, kb, "no-such-source"),
    "bind_folder": lambda s, w, kb: s.bind_folder(w, kb, "relative/path"),  # refused as bad
    "unbind_folder": lambda s, w, kb: s.unbind_folder(w, kb, Path("/no/such/folder")),
    "upload_jobs": lambda s, w, kb: s.upload_jobs(w, kb),
    "close_job": lambda s, w, kb: s.close_job(w, kb, "no-such-job", "dismissed"),
    "evalset_folder": lambda s, w, kb: s.evalset_folder(w, kb),
    "missing_originals": lambda s, w, kb: s.missing_originals(w, kb),
}


def _no_evaluation_set(run: Callable[[], object]) -> object:
    """A run past the check: the knowledge bases here have no evaluation set to run."""
    try:
        return run()
    except FileNotFoundError:
        return None


def _methods_with_a_principal() -> set[str]:
    names = set()
    for name, member in inspect.getmembers(Service, inspect.isfunction):
        parameters = list(inspect.signature(member).parameters)
        if not name.startswith("_") and parameters[1:2] == ["who"]:
            names.add(name)
    return names


def test_every_service_method_with_a_principal_has_a_rule_and_a_call() -> None:
    methods = _methods_with_a_principal() - UNCHECKED
    assert methods == set(RULES), "a method without a rule in app.service.RULES, or a stale rule"
    assert methods == set(CALLS)


# Each page file and its rule's name in app.access.PAGES (the chat is app/main.py itself)
PAGE_FILES = {"knowledge_base": "kb", "inspector": "inspect", "people": "people"}


def test_every_page_has_a_rule() -> None:
    pages = {p.stem for p in (Path(__file__).parents[2] / "app" / "pages").glob("*.py")}
    assert PAGE_FILES.keys() == pages, "a page file without a rule here and in PAGES"
    assert set(PAGES) == {"chat", *PAGE_FILES.values()}
    assert not Principal("x", "admin").may_open("a page without a rule")


def test_who_opens_which_page(home: Service) -> None:
    """The rule written out: chat for all, kb and inspect for admins and editors (not through a
    read-only key), people for admins only (not through any key that narrows them)."""
    expected = {
        "ada": {"chat", "kb", "inspect", "people"},
        "ed": {"chat", "kb", "inspect"},
        "rita": {"chat"},
        "wes": {"chat"},
        "ed-key": {"chat"},
        "local": {"chat", "kb", "inspect", "people"},
    }
    opened = {
        label: {page for page in PAGES if who.may_open(page)}
        for label, who in principals(home).items()
    }
    assert opened == expected
    narrowed = principals(home)["ada"].narrowed("ada-key", ["alpha"], read_only=False)
    assert not narrowed.may_open("people")


@pytest.mark.parametrize("method", sorted(RULES))
def test_the_service_matrix(home: Service, method: str) -> None:
    """Each principal × knowledge base: refused with Forbidden exactly when the rule says so;
    the listing methods show exactly the readable knowledge bases."""
    bypasses = []
    for label, who in principals(home).items():
        for kb in KBS:
            need = RULES[method]
            if need is None:
                shown = CALLS[method](home, who, kb)
                if set(shown) != {k for k in KBS if who.can_read(k)}:  # type: ignore[arg-type]
                    bypasses.append((label, kb, shown))
                continue
            allowed = who.may(need, kb)
            if method == "set_password":
                allowed = who.is_admin
            try:
                CALLS[method](home, who, kb)
                refused = False
            except Forbidden:
                refused = True
            except (ServiceError, StoreError):
                refused = False  # got past the check: not found, conflict...
            if refused == allowed:
                bypasses.append((label, kb, "refused" if refused else "allowed"))
    assert bypasses == []


# ----- whose conversations and evaluation cases --------------------------------------------

# A record of each person who reads `alpha`, and one of nobody (made before accounts existed)
AUTHORS: tuple[str | None, ...] = ("ada", "ed", "rita", "wes", None)


def _author_id(service: Service, author: str | None) -> int | None:
    return service.accounts.require(author).id if author is not None else None


def _conversation_of(service: Service, author: str | None) -> str:
    """A fresh conversation of `author` in alpha, with one answered turn (seq 0)."""
    store = ConversationStore(service.settings, "alpha")
    conversation = store.create(author_id=_author_id(service, author))
    store.append(conversation, Turn("杭州的市花是什么？", answer_result("杭州的市花是什么？")))
    return conversation


def _case_of(service: Service, author: str | None) -> str:
    """A fresh evaluation case of `author` in alpha; returns its qid."""
    author_id = _author_id(service, author)
    case = make_case(f"问题 {uuid.uuid4().hex}", "桂花", [], author_id=author_id)
    evalcases.save(open_state(service.settings), "alpha", case.as_json(), author_id)
    return case.qid


# The rule, written out rather than asked of app.access (so that a wrong rule fails here): a
# person's records are theirs (ed's through ed's key too), nobody's are the admin's and the
# local user's, and those two may open anybody's conversation.
ADMINS = {"ada", "local"}


def _owns(label: str, author: str | None) -> bool:
    if author is None:
        return label in ADMINS
    return label.removesuffix("-key") == author


def _allowed(rule: str, label: str, author: str | None) -> bool:
    if rule == "open":
        return _owns(label, author) or label in ADMINS
    return _owns(label, author)


def _done(service: Service, method: str, who: Principal, author: str | None) -> tuple[bool, bool]:
    """Call `method` by `who` on a fresh record of `author`: (refused, whether the record
    changed or was shown). A refusal must be ConversationNotFound: a Forbidden would tell that
    the record exists."""
    store = ConversationStore(service.settings, "alpha")
    if method in ("evaluation_cases", "remove_evaluation_case"):
        qid = _case_of(service, author)
        if method == "evaluation_cases":
            shown = qid in {c.qid for c in service.evaluation_cases(who, "alpha")}
            return not shown, shown
        before = {c["qid"] for c in evalcases.load(open_state(service.settings), "alpha")}
        refused = _refused(lambda: service.remove_evaluation_case(who, "alpha", qid))
        after = {c["qid"] for c in evalcases.load(open_state(service.settings), "alpha")}
        return refused, before != after
    conversation = _conversation_of(service, author)
    before = (store.get(conversation), store.turns(conversation))
    act: dict[str, Callable[[], object]] = {
        "open_conversation": lambda: service.open_conversation(who, "alpha", conversation),
        "export_conversation": lambda: service.export_conversation(who, "alpha", conversation),
        "add_turn": lambda: service.add_turn(who, "alpha", conversation, Turn("再问？")),
        "update_turn": lambda: service.update_turn(
            who, "alpha", conversation, replace(before[1][0], error="改过")
        ),
        "rename_conversation": lambda: service.rename_conversation(
            who, "alpha", conversation, "改名"
        ),
        "delete_conversation": lambda: service.delete_conversation(who, "alpha", conversation),
        "set_feedback": lambda: service.set_feedback(
            who, "alpha", conversation, 0, Feedback(0, "不对")
        ),
    }
    if method == "conversations":
        shown = conversation in {c.id for c in service.conversations(who, "alpha")}
        return not shown, shown
    refused = _refused(act[method])
    changed = (store.get(conversation), store.turns(conversation)) != before
    shown = method in ("open_conversation", "export_conversation") and not refused
    return refused, changed or shown


def _refused(call: Callable[[], object]) -> bool:
    try:
        call()
    except ConversationNotFound:
        return True
    return False


@pytest.mark.parametrize(
    "method", sorted(set(OWNERSHIP) - {"new_conversation", "save_evaluation_case"})
)
def test_the_ownership_matrix(home: Service, method: str) -> None:
    """Each principal who reads alpha × a record of each author (and one of nobody): the
    record is listed, opened or changed exactly when the rule says so, and a refusal changes
    nothing and says only "not found"."""
    bypasses = []
    for label, who in principals(home).items():
        if not who.can_read("alpha"):
            continue
        for author in AUTHORS:
            allowed = _allowed(OWNERSHIP[method], label, author)
            refused, effect = _done(home, method, who, author)
            if refused == allowed or effect != allowed:
                bypasses.append((label, author, "refused" if refused else "allowed", effect))
    assert bypasses == []


@pytest.mark.parametrize("method", ["new_conversation", "save_evaluation_case"])
def test_what_a_principal_makes_is_theirs_alone(home: Service, method: str) -> None:
    who = principals(home)
    for maker in ("ed", "rita", "local"):
        if method == "new_conversation":
            made = home.new_conversation(who[maker], "alpha")
            seen = {
                label: made in {c.id for c in home.conversations(w, "alpha")}
                for label, w in who.items()
                if w.can_read("alpha")
            }
        else:
            question = f"{maker} 的问题 {uuid.uuid4().hex}"
            assert home.save_evaluation_case(who[maker], "alpha", question, "桂花")
            seen = {
                label: question in {c.question for c in home.evaluation_cases(w, "alpha")}
                for label, w in who.items()
                if w.can_read("alpha")
            }
        owners = {label for label, shown in seen.items() if shown}
        # the local user makes records of nobody: the admins' (ada) then
        expected = {"ada", "local"} if maker == "local" else {maker}
        if maker == "ed":
            expected |= {"ed-key"}  # ed through a key of theirs
        assert owners == expected, (method, maker, seen)


def test_two_people_saving_the_same_question_keep_a_case_each(home: Service) -> None:
    who = principals(home)
    question = f"同一个问题 {uuid.uuid4().hex}"
    assert home.save_evaluation_case(who["ed"], "alpha", question, "桂花")
    assert home.save_evaluation_case(who["rita"], "alpha", question, "梅花")
    assert not home.save_evaluation_case(who["rita"], "alpha", question, "兰花")  # replaced
    [ed_case] = [c for c in home.evaluation_cases(who["ed"], "alpha") if c.question == question]
    assert ed_case.answer_groups == (("桂花",),)  # not taken over by rita's
    [rita_case] = [c for c in home.evaluation_cases(who["rita"], "alpha") if c.question == question]
    assert rita_case.answer_groups == (("兰花",),)


def test_an_admin_opening_anothers_conversation_is_audited(home: Service) -> None:
    who = principals(home)
    ada = replace(who["ada"], origin="10.0.0.7")
    theirs = _conversation_of(home, "rita")
    opened = home.open_conversation(ada, "alpha", theirs)
    assert not opened.own and opened.author == "rita"
    assert [t.question for t in opened.turns] == ["杭州的市花是什么？"]
    home.open_conversation(ada, "alpha", theirs)  # the page again: the same open
    rows = [e for e in home.audit_entries(ada) if e.target == theirs]
    assert [(e.actor, e.action, e.kb, e.origin, e.outcome) for e in rows] == [
        ("ada", "open_conversation", "alpha", "10.0.0.7", "ok")
    ]
    assert json.loads(rows[0].detail or "{}")["author"] == "rita" and rows[0].at
    # her own, and the local user's of nobody, are not "another's": nothing is written
    mine = _conversation_of(home, "ada")
    assert home.open_conversation(ada, "alpha", mine).own
    nobodys = _conversation_of(home, None)
    assert home.open_conversation(who["local"], "alpha", nobodys).own
    assert not [e for e in home.audit_entries(ada) if e.target in (mine, nobodys)]


def test_anothers_conversation_is_refused_as_if_it_did_not_exist(home: Service) -> None:
    who = principals(home)
    theirs = _conversation_of(home, "ed")
    for call in (
        lambda: home.open_conversation(who["rita"], "alpha", theirs),
        lambda: home.open_conversation(who["rita"], "alpha", "no-such-conversation"),
    ):
        with pytest.raises(ConversationNotFound) as refused:
            call()
        assert refused.value.zh == "找不到这个对话或你无权查看"
        assert refused.value.kind == "not_found"
    tried = [e for e in home.audit_entries(who["ada"]) if e.target == theirs]
    assert [(e.actor, e.action, e.outcome) for e in tried] == [
        ("rita", "refused:open_conversation", "refused")
    ]
    with pytest.raises(Forbidden):  # a knowledge base rita may not read: its own refusal
        home.open_conversation(who["rita"], "beta", theirs)


def test_a_reader_never_writes_whatever_the_grant(home: Service) -> None:
    wes = principals(home)["wes"]
    assert all(wes.can_read(kb) and not wes.can_write(kb) for kb in KBS)
    with pytest.raises(Forbidden) as refused:
        home.save_files(wes, "alpha", [("x.txt", b"x")])
    assert "无权修改知识库" in refused.value.zh


def test_refused_writes_and_admin_acts_are_in_the_audit_log(home: Service) -> None:
    who = principals(home)
    with pytest.raises(Forbidden):
        home.delete_kb(who["rita"], "alpha")
    home.grant(who["ada"], "rita", "beta", "read")
    home.revoke(who["ada"], "rita", "beta")
    entries = home.audit_entries(who["ada"], 10)
    assert ("rita", "refused:write", "alpha", "refused") in [
        (e.actor, e.action, e.kb, e.outcome) for e in entries
    ]
    assert {"grant", "revoke"} <= {e.action for e in entries if e.actor == "ada"}


# ----- the API -------------------------------------------------------------------------------

FEEDBACK = "/v1/knowledge_bases/{kb}/conversations/{conversation_id}/turns/{seq}/feedback"
# Every route: the rule guarding it. (method, path) → the need on the `{kb}` of the request, or
# None for a route that only lists what the caller may read, or "open" for no key at all.
ROUTE_RULES: dict[tuple[str, str], str | None] = {
    ("GET", "/health"): "open",
    ("GET", "/v1/status"): None,
    ("GET", "/v1/models"): None,
    ("POST", "/v1/chat/completions"): "read",
    ("POST", "/v1/search"): "read",
    ("GET", "/v1/knowledge_bases"): None,
    ("POST", "/v1/knowledge_bases"): "create",
    ("GET", "/v1/knowledge_bases/{kb}"): "read",
    ("DELETE", "/v1/knowledge_bases/{kb}"): "write",
    ("GET", "/v1/knowledge_bases/{kb}/documents"): "read",
    ("POST", "/v1/knowledge_bases/{kb}/documents"): "write",
    ("GET", "/v1/knowledge_bases/{kb}/documents/{doc_id}"): "read",
    ("DELETE", "/v1/knowledge_bases/{kb}/documents/{doc_id}"): "write",
    ("POST", "/v1/knowledge_bases/{kb}/documents/{doc_id}/reingest"): "write",
    ("GET", "/v1/knowledge_bases/{kb}/passages/{chunk_id}"): "read",
    ("GET", "/v1/jobs/{job_id}"): "read",  # the job's knowledge base; 404 when refused
    ("POST", "/v1/jobs/{job_id}/cancel"): "write",  # 404 when the job's kb is not readable
    ("GET", "/v1/knowledge_bases/{kb}/sources"): "read",
    ("POST", "/v1/knowledge_bases/{kb}/sources"): "write",
    ("GET", "/v1/knowledge_bases/{kb}/sources/{source_id}"): "read",
    ("DELETE", "/v1/knowledge_bases/{kb}/sources/{source_id}"): "write",
    ("POST", "/v1/knowledge_bases/{kb}/sources/{source_id}/sync"): "write",
    # another's conversation is 404 like an unknown one (tests/app/api/test_api_conversations.py)
    ("GET", "/v1/knowledge_bases/{kb}/conversations"): "read",
    ("GET", "/v1/knowledge_bases/{kb}/conversations/{conversation_id}"): "read",
    ("GET", "/v1/knowledge_bases/{kb}/conversations/{conversation_id}/export"): "read",
    ("DELETE", "/v1/knowledge_bases/{kb}/conversations/{conversation_id}"): "read",
    ("PUT", FEEDBACK): "read",
    ("DELETE", FEEDBACK): "read",
    ("GET", "/v1/admin/people"): "admin",
    ("GET", "/v1/admin/audit"): "admin",  # an export: audited
    ("POST", "/mcp"): "read",  # each tool call, by the service (tests/app/api/test_api_mcp.py)
}


def _request(client: TestClient, method: str, path: str, kb: str, key: str) -> int:
    headers = {"Authorization": f"Bearer {key}"}
    url = path.replace("{kb}", kb).replace("{doc_id}", "no-such-doc").replace("{chunk_id}", "1")
    url = url.replace("{source_id}", "no-such-source")
    url = url.replace("{conversation_id}", "no-such-conversation")
    if path.endswith("/feedback"):
        body = {"score": 1} if method == "PUT" else None
        return client.request(
            method, url.replace("{seq}", "0"), json=body, headers=headers
        ).status_code
    if path == "/v1/chat/completions":
        body = {"model": f"zhiku/{kb}", "messages": [{"role": "user", "content": "杭州"}]}
        return client.post(url, json=body, headers=headers).status_code
    if path == "/v1/search":
        return client.post(url, json={"query": "杭州", "kb": kb}, headers=headers).status_code
    if (method, path) == ("POST", "/v1/knowledge_bases"):
        return client.post(url, json={"name": kb}, headers=headers).status_code
    if (method, path) == ("POST", "/v1/knowledge_bases/{kb}/documents"):
        files = {"files": ("n.txt", "杭州".encode())}
        return client.post(url, files=files, headers=headers).status_code
    if (method, path) == ("POST", "/v1/knowledge_bases/{kb}/sources"):
        # nothing listens on port 9: the first sync fails in the background, after the check
        body = {"url": "http://127.0.0.1:9/page.html"}
        return client.post(url, json=body, headers=headers).status_code
    if path.startswith("/v1/jobs/{job_id}"):
        admin = {"Authorization": f"Bearer {client.app.state.test_admin_key}"}  # type: ignore[attr-defined]
        job = client.post(
            f"/v1/knowledge_bases/{kb}/documents",
            files={"files": ("j.txt", "杭州".encode())},
            headers=admin,
        ).json()["id"]
        return client.request(method, path.replace("{job_id}", job), headers=headers).status_code
    return client.request(method, url, headers=headers).status_code


def _routes(routes: list[BaseRoute]) -> Iterator[tuple[str, str]]:
    for route in routes:
        if isinstance(route, APIRoute | Route):
            if route.path == "/mcp":
                yield ("POST", "/mcp")
                continue
            yield from ((m, route.path) for m in route.methods or () if m != "HEAD")
        elif hasattr(route, "original_router"):  # FastAPI's wrapper of an included router
            yield from _routes(route.original_router.routes)
        else:
            raise AssertionError(f"a route of an unknown kind: {route!r}")


def test_every_route_has_a_rule(home: Service) -> None:
    app = create_app(home.settings, home, open_without_keys=False)
    routes = set(_routes(app.routes))
    assert ("POST", "/v1/search") in routes  # the walk reaches the included routers
    documentation = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
    routes = {r for r in routes if r[1] not in documentation}
    assert routes == set(ROUTE_RULES), "a route without a rule in ROUTE_RULES, or a stale one"


def test_the_api_matrix(home: Service) -> None:
    """Every route × principal (through an API key of theirs) × knowledge base: 403 exactly
    when the rule refuses; lists hold exactly the readable knowledge bases."""
    who = principals(home)
    local = Principal.local("test")
    keys: dict[str, str] = {}
    for name in PEOPLE:
        keys[name] = home.create_key(local, f"{name}-key", owner=name)[1]
    keys["ed-key"] = home.create_key(local, "ed-laptop", ["alpha"], True, owner="ed")[1]
    app = create_app(home.settings, home, open_without_keys=False)
    app.state.test_admin_key = keys["ada"]
    bypasses = []
    with TestClient(app) as client:
        for (method, path), need in ROUTE_RULES.items():
            if need == "open" or path == "/mcp":
                continue
            for label, key in keys.items():
                principal = who[label]
                for kb in KBS:
                    if need is None:
                        listed = _listed(client, path, key)
                        if listed != {k for k in KBS if principal.can_read(k)}:
                            bypasses.append((method, path, label, listed))
                        break
                    status = _request(client, method, path, kb, key)
                    allowed = principal.may(need, kb)
                    # another's job is not found rather than forbidden: its id tells nothing
                    refused = status == 403 or (path.startswith("/v1/jobs/") and status == 404)
                    if refused == allowed or status == 401:
                        bypasses.append((method, path, label, kb, status))
    assert bypasses == []


def _listed(client: TestClient, path: str, key: str) -> set[str]:
    body = client.get(path, headers={"Authorization": f"Bearer {key}"}).json()
    if path == "/v1/models":
        return {m["id"].removeprefix("zhiku/") for m in body["data"]}
    if path == "/v1/status":
        return {k["name"] for k in body["knowledge_bases"]}
    return {k["name"] for k in body}


def test_the_admin_routes_list_people_and_export_the_audit_log(home: Service) -> None:
    local = Principal.local("test")
    key = home.create_key(local, "ada-admin-routes", owner="ada")[1]
    narrowed = home.create_key(local, "ada-alpha", ["alpha"], owner="ada")[1]
    app = create_app(home.settings, home, open_without_keys=False)
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {key}"}
        people = client.get("/v1/admin/people", headers=headers).json()
        assert {(p["name"], p["role"]) for p in people} >= {("ada", "admin"), ("rita", "reader")}
        assert next(p for p in people if p["name"] == "ed")["grants"] == {
            "alpha": "write",
            "beta": "read",
        }
        params = {"action": "create_key", "format": "csv"}
        answer = client.get("/v1/admin/audit", params=params, headers=headers)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
        rows = answer.content.decode("utf-8-sig").splitlines()
        assert rows[0].startswith("id,at,actor,action")
        assert all(",create_key," in row for row in rows[1:]) and len(rows) >= 3
        listed = client.get("/v1/admin/audit", params={"since": "2999-01-01"}, headers=headers)
        assert listed.json() == []
        # a key narrowed to one knowledge base is not an admin's, whoever owns it
        refused = client.get("/v1/admin/people", headers={"Authorization": f"Bearer {narrowed}"})
        assert refused.status_code == 403
    exports = [e for e in home.audit_entries(local, 20) if e.action == "export_audit"]
    assert exports[0].actor == "ada (key ada-admin-routes)"
    assert json.loads(exports[0].detail or "")["filters"] == {"since": "2999-01-01T00:00:00+00:00"}


def test_a_disabled_persons_key_stops_at_the_next_request(home: Service) -> None:
    local = Principal.local("test")
    home.create_person(local, "dora", PASSWORD, "reader")
    home.grant(local, "dora", "alpha", "read")
    key = home.create_key(local, "dora-key", owner="dora")[1]
    app = create_app(home.settings, home, open_without_keys=False)
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(app) as client:
        assert client.get("/v1/knowledge_bases/alpha", headers=headers).status_code == 200
        home.set_disabled(local, "dora")
        refused = client.get("/v1/knowledge_bases/alpha", headers=headers)
        assert refused.status_code == 401
        assert "disabled" in refused.json()["error"]["message"]
