"""Rights, checked in the one service and seen through the API: a matrix of principal × knowledge
base × action over every service method that takes a principal and every API route, generated
from `Service`'s methods and `app.routes`, so a method or a route added without a rule fails.

The people: an admin; an editor who writes `alpha` and reads `beta`; a reader of `alpha`; a
reader granted write on everything (a reader never writes); the editor through a read-only key
for `alpha`; the local user of a zhiku without accounts. Nothing is mocked but the deletion's
own work (the gate in front of it is what is checked; deleting is tested in test_service.py).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import BaseRoute, Route
from support import build_kb, make_settings

from app.access import PAGES, Principal
from app.api import create_app
from app.service import RULES, UNCHECKED, Forbidden, Service, ServiceError
from app.state import engine as state_engine
from app.state.accounts import Accounts
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
}


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


def test_every_page_has_a_rule() -> None:
    pages = {p.stem for p in (Path(__file__).parents[2] / "app" / "pages").glob("*.py")}
    assert {"knowledge_base": "kb", "inspector": "inspect"}.keys() == pages
    assert set(PAGES) == {"chat", "kb", "inspect"}
    assert not Principal("x", "admin").may_open("a page without a rule")


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
    ("POST", "/mcp"): "read",  # each tool call, by the service (tests/app/api/test_api_mcp.py)
}


def _request(client: TestClient, method: str, path: str, kb: str, key: str) -> int:
    headers = {"Authorization": f"Bearer {key}"}
    url = path.replace("{kb}", kb).replace("{doc_id}", "no-such-doc").replace("{chunk_id}", "1")
    url = url.replace("{source_id}", "no-such-source")
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
