"""Knowledge bases, documents and uploads over HTTP: a multipart upload becomes a background
job with per-file results and the CLI's reasons, names cannot climb out of the upload folder,
the app's size limits hold, and bad requests get JSON errors."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Served
from support import app_data_is_empty, give_app_data, leftovers, make_settings

from app._conversations import conversations_path
from ingest._embed import Embedder
from ingest._insert import ingest_paths
from ingest._originals import originals_dir

pytestmark = pytest.mark.timeout(600)  # the shared server starts in the first test


def wait_for(served: Served, job: dict[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = httpx.get(f"{served.url}/v1/jobs/{job['id']}", headers=served.headers()).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job['id']} did not finish: {job}")


def test_upload_job_reports_every_file_and_keeps_names_inside(served: Served) -> None:
    url = f"{served.url}/v1/knowledge_bases/uploads"
    created = httpx.post(
        f"{served.url}/v1/knowledge_bases", json={"name": "uploads"}, headers=served.headers()
    )
    assert created.status_code == 201
    files = [
        (
            "files",
            ("../../../../tmp/escape.txt", "西湖龙井是杭州的名茶，产于西湖周围的群山。".encode()),
        ),
        ("files", ("tool.exe", b"MZ\x90\x00")),
        ("files", ("big.txt", b"a" * int(1.5 * 2**20))),  # over MAX_FILE_MB=1
        ("files", ("empty.md", b"")),
    ]
    response = httpx.post(f"{url}/documents", files=files, headers=served.headers())
    assert response.status_code == 202
    job = wait_for(served, response.json())
    assert job["status"] == "done", job
    by_name = {f["name"]: f for f in job["files"]}
    escaped = by_name["../../../../tmp/escape.txt"]
    assert escaped["status"] == "added" and escaped["stored_name"] == "escape.txt"
    assert (served.home / "uploads" / "uploads" / "escape.txt").is_file()
    assert by_name["tool.exe"]["status"] == "failed"
    assert "unsupported file type" in by_name["tool.exe"]["reason"]
    assert "over the 1 MB limit" in by_name["big.txt"]["reason"]
    assert by_name["empty.md"]["reason"] == "empty file (0 bytes)"
    assert by_name["empty.md"]["reason_zh"]  # the same reasons as the CLI and the app, in Chinese

    docs = httpx.get(f"{url}/documents", headers=served.headers()).json()
    assert [d["file"] for d in docs] == ["escape.txt"]
    hits = httpx.post(
        f"{served.url}/v1/search",
        json={"query": "西湖龙井产于哪里", "kb": "uploads", "k": 1},
        headers=served.headers(),
    ).json()["passages"]
    assert hits[0]["file"] == "escape.txt" and hits[0]["chunk_id"] > 0
    assert hits[0]["dense_score"] > 0 and hits[0]["keyword_score"] > 0 and hits[0]["score"] > 0
    passage = httpx.get(f"{url}/passages/{hits[0]['chunk_id']}", headers=served.headers())
    assert "西湖龙井" in passage.json()["text"]

    doc_id = docs[0]["doc_id"]
    again = httpx.post(f"{url}/documents/{doc_id}/reingest", headers=served.headers())
    assert again.status_code == 202
    redone = wait_for(served, again.json())
    assert redone["status"] == "done" and redone["files"][0]["status"] == "updated", redone
    removed = httpx.delete(f"{url}/documents/{doc_id}", headers=served.headers())
    assert removed.status_code == 200
    assert httpx.get(f"{url}/documents", headers=served.headers()).json() == []
    assert httpx.get(f"{url}/documents/{doc_id}", headers=served.headers()).status_code == 404
    assert not (served.home / "uploads" / "uploads" / "escape.txt").exists()
    assert httpx.delete(url, headers=served.headers()).status_code == 200
    assert httpx.get(url, headers=served.headers()).status_code == 404


def test_an_upload_over_max_upload_mb_is_413(served: Served) -> None:
    files = [("files", (f"part{i}.txt", b"b" * 2**20)) for i in range(3)]  # 3 MB > 2 MB
    response = httpx.post(
        f"{served.url}/v1/knowledge_bases/default/documents", files=files, headers=served.headers()
    )
    assert response.status_code == 413
    assert "MAX_UPLOAD_MB" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", "/v1/search", {"query": ""}, 422, "invalid_request"),
        ("POST", "/v1/search", {"query": "x", "kb": "../etc"}, 400, "invalid_kb_name"),
        ("POST", "/v1/search", {"query": "x", "kb": "nope"}, 404, "kb_not_found"),
        ("GET", "/v1/jobs/nope", None, 404, "job_not_found"),
        ("GET", "/v1/knowledge_bases/default/documents/nope", None, 404, "not_found"),
        ("POST", "/v1/chat/completions", {"model": "zhiku/default", "messages": []}, 422, None),
        (
            "POST",
            "/v1/chat/completions",
            {"model": "zhiku/default", "messages": [{"role": "assistant", "content": "hi"}]},
            400,
            "invalid_request",
        ),
        ("POST", "/v1/knowledge_bases", {"name": "default"}, 409, "conflict"),
    ],
)
def test_bad_requests_get_json_errors(
    served: Served, method: str, path: str, body: Any, status: int, code: str | None
) -> None:
    response = httpx.request(method, f"{served.url}{path}", json=body, headers=served.headers())
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"] and error["message_zh"]
    if code:
        assert error["code"] == code
    assert "Traceback" not in response.text


def test_status_shows_backend_counts_and_queue(served: Served) -> None:
    status = httpx.get(f"{served.url}/v1/status", headers=served.headers()).json()
    assert status["backend"] == "ollama" and status["model"] == "qwen2.5:3b"
    names = {k["name"]: k for k in status["knowledge_bases"]}
    assert names["default"]["documents"] == 3
    assert status["llm_queue"]["max_waiting"] == 8


def test_deleting_a_kb_removes_everything_it_owns_and_a_stopped_one_finishes(
    served: Served, embedder: Embedder, tmp_path: Path
) -> None:
    """The server's own data home, changed beside it the way the app and `zhiku ingest` do."""
    settings = make_settings(served.home)
    url = f"{served.url}/v1/knowledge_bases/gone"
    created = httpx.post(
        f"{served.url}/v1/knowledge_bases", json={"name": "gone"}, headers=served.headers()
    )
    assert created.status_code == 201
    upload = [("files", ("年假.md", "# 年假\n\n员工每年享有十五天带薪年假。".encode()))]
    job = wait_for(
        served, httpx.post(f"{url}/documents", files=upload, headers=served.headers()).json()
    )
    assert job["status"] == "done" and job["files"][0]["status"] == "added", job
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "city.txt").write_text("杭州概况\n杭州的市花是桂花。", encoding="utf-8")
    (folder / "tea.txt").write_text("西湖龙井是杭州的名茶。", encoding="utf-8")
    ingest_paths(settings, [folder], "gone", embedder=embedder)  # their copies are kept
    assert len(list(originals_dir(settings, "gone").iterdir())) == 2
    give_app_data(settings, "gone", tmp_path / "watched")

    docs = httpx.get(f"{url}/documents", headers=served.headers()).json()
    tea = next(d for d in docs if d["file"] == "tea.txt")
    assert httpx.delete(f"{url}/documents/{tea['doc_id']}", headers=served.headers()).is_success
    (kept,) = originals_dir(settings, "gone").iterdir()  # only city.txt's copy is left
    assert kept.read_text(encoding="utf-8").startswith("杭州概况")

    # a real failure at one step: where an earlier version's conversations file's write-ahead
    # log would be (removed with the knowledge base), a folder
    blocker = Path(f"{conversations_path(settings, 'gone')}-wal")
    blocker.mkdir(parents=True)
    stopped = httpx.delete(url, headers=served.headers())
    assert stopped.status_code == 409
    error = stopped.json()["error"]
    assert "尚未删除：对话记录、评测题" in error["message_zh"]
    assert httpx.get(url, headers=served.headers()).status_code == 404  # the documents went first
    blocker.rmdir()
    assert httpx.delete(url, headers=served.headers()).status_code == 200  # finished
    assert leftovers(settings, "gone") == []
    assert httpx.delete(url, headers=served.headers()).status_code == 404
    again = httpx.post(
        f"{served.url}/v1/knowledge_bases", json={"name": "gone"}, headers=served.headers()
    )
    assert again.status_code == 201 and again.json()["documents"] == 0
    app_data_is_empty(settings, "gone")
    assert httpx.delete(url, headers=served.headers()).status_code == 200


def test_a_web_source_is_added_synced_searched_and_removed(served: Served) -> None:
    from web_site import WebSite, html

    base = f"{served.url}/v1/knowledge_bases/websrc/sources"
    with WebSite() as site:
        page = html("会员须知", "<h1>会员须知</h1><p>会员每月可以免费退换两次。</p>")
        site.put("/faq.html", page)
        response = httpx.post(
            base, json={"url": site.url("/faq.html"), "every": "2h"}, headers=served.headers()
        )
        assert response.status_code == 202, response.text
        source = response.json()
        assert source["schedule"] == "every 2h" and source["kind"] == "page"
        deadline = time.monotonic() + 120
        detail: dict[str, Any] = {}
        while time.monotonic() < deadline:
            detail = httpx.get(f"{base}/{source['id']}", headers=served.headers()).json()
            if detail["history"]:
                break
            time.sleep(0.3)
        [sync] = detail["history"]
        assert (sync["trigger"], sync["added"], sync["failed"]) == ("api", 1, 0), sync
    found = httpx.post(
        f"{served.url}/v1/search",
        json={"kb": "websrc", "query": "会员每月可以免费退换几次?"},
        headers=served.headers(),
    ).json()
    assert found["passages"][0]["source"] == site.url("/faq.html")
    bad = httpx.post(base, json={"url": "file:///etc/passwd"}, headers=served.headers())
    assert bad.status_code == 400 and "error" in bad.json()
    twice = httpx.post(base, json={"url": site.url("/faq.html")}, headers=served.headers())
    assert twice.status_code == 400 and "already" in twice.json()["error"]["message"]
    gone = httpx.delete(f"{base}/{source['id']}", headers=served.headers())
    assert gone.status_code == 200
    assert httpx.get(base, headers=served.headers()).json() == []
    missing = httpx.get(f"{base}/{source['id']}", headers=served.headers())
    assert missing.status_code == 404 and "error" in missing.json()
    # the server is shared: the knowledge base goes, the other tests see the ones they expect
    kb_url = f"{served.url}/v1/knowledge_bases/websrc"
    assert httpx.delete(kb_url, headers=served.headers()).status_code == 200
    assert not (served.home / "sources" / "websrc.json").exists()
