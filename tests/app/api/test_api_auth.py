"""API keys as a user meets them: every /v1 request needs one, revoking takes effect at once,
read-only keys cannot change anything, a key for one knowledge base opens no other, and a
server reachable from other machines does not start without a key."""

from __future__ import annotations

import httpx
import pytest
from conftest import ANSWERED, Served, create_key, free_port, run_zhiku, zhiku_env

pytestmark = pytest.mark.timeout(600)  # the shared server starts in the first test


def test_no_key_is_401_except_for_health(served: Served) -> None:
    assert httpx.get(f"{served.url}/health").status_code == 200
    for method, path in [("GET", "/v1/models"), ("GET", "/v1/status"), ("POST", "/v1/search")]:
        response = httpx.request(method, f"{served.url}{path}", json={"query": "杭州"})
        assert response.status_code == 401, path
        assert "zhiku keys create" in response.json()["error"]["message"]
    wrong = httpx.get(f"{served.url}/v1/models", headers=served.headers("zk_nothing_here"))
    assert wrong.status_code == 401


def test_a_revoked_key_is_401_at_the_next_request(served: Served) -> None:
    key = create_key(served.env, served.cwd, "laptop")
    url = f"{served.url}/v1/models"
    assert httpx.get(url, headers=served.headers(key)).status_code == 200
    revoked = run_zhiku(served.env, "keys", "revoke", "laptop", cwd=served.cwd)
    assert revoked.returncode == 0, revoked.stderr
    response = httpx.get(url, headers=served.headers(key))
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]
    listing = run_zhiku(served.env, "keys", "list", cwd=served.cwd)
    assert "laptop" in listing.stdout and key not in listing.stdout  # only hashes are kept
    kept = b"".join(p.read_bytes() for p in served.home.glob("state.sqlite*"))
    assert kept and key.encode() not in kept


def test_a_read_only_key_searches_but_cannot_upload_or_delete(served: Served) -> None:
    key = create_key(served.env, served.cwd, "reader", "--read-only")
    headers = served.headers(key)
    search = httpx.post(  # the server's first search loads the query encoder: slow on busy cores
        f"{served.url}/v1/search", json={"query": ANSWERED}, headers=headers, timeout=120
    )
    assert search.status_code == 200
    upload = httpx.post(
        f"{served.url}/v1/knowledge_bases/default/documents",
        files={"files": ("a.txt", "杭州".encode())},
        headers=headers,
    )
    assert upload.status_code == 403
    assert upload.json()["error"]["code"] == "read_only_key"
    delete = httpx.delete(f"{served.url}/v1/knowledge_bases/default", headers=headers)
    assert delete.status_code == 403


def test_a_key_for_one_knowledge_base_opens_no_other(served: Served) -> None:
    key = create_key(served.env, served.cwd, "hr", "--kb", "other")
    headers = served.headers(key)
    models = httpx.get(f"{served.url}/v1/models", headers=headers).json()
    assert [m["id"] for m in models["data"]] == ["zhiku/other"]
    for body in ({"query": "年假", "kb": "default"}, {"query": "年假"}):  # default is "default"
        response = httpx.post(f"{served.url}/v1/search", json=body, headers=headers)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "kb_not_allowed"
    chat = httpx.post(
        f"{served.url}/v1/chat/completions",
        json={"model": "zhiku/default", "messages": [{"role": "user", "content": ANSWERED}]},
        headers=headers,
    )
    assert chat.status_code == 403
    docs = httpx.get(f"{served.url}/v1/knowledge_bases/default/documents", headers=headers)
    assert docs.status_code == 403
    allowed = httpx.post(
        f"{served.url}/v1/search", json={"query": "年假", "kb": "other"}, headers=headers
    )
    assert allowed.status_code == 200
    assert allowed.json()["passages"][0]["file"] == "leave.txt"


def test_a_public_address_without_keys_refuses_to_start(tmp_path) -> None:
    env = zhiku_env(tmp_path / "home")
    done = run_zhiku(env, "serve", "--host", "0.0.0.0", "--port", str(free_port()), cwd=tmp_path)
    assert done.returncode == 1
    message = " ".join(done.stderr.split())
    assert "refusing to listen on 0.0.0.0 without an API key" in message
    assert "zhiku keys create --name NAME" in message
