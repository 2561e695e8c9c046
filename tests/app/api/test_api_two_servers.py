"""Two API servers, each with its own data home, over one PostgreSQL (the app's state) and one
Milvus (the knowledge bases), all real and on 127.0.0.1: an upload through one is reported and
searched through the other, one cancelled through the other stops, and when one is SIGKILLed in
the middle of a job the other keeps serving and marks that job failed with the reason."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import start_server, stop_server, zhiku_env
from milvus_server import MilvusServer, free_port
from postgres_server import PostgresServer

from app.state import engine as state_engine

pytestmark = [pytest.mark.timeout(900), pytest.mark.slow]  # two servers, 240 files: minutes

STALE_S = 10.0  # heartbeats every 1.7 s: a loaded machine may starve a server for seconds


@pytest.fixture
def shared(
    tmp_path: Path, postgres_server: PostgresServer, milvus_server: MilvusServer
) -> Iterator[dict[str, str]]:
    url = postgres_server.create_database()
    yield {
        "STATE_URL": url,
        "VECTOR_STORE": "milvus",
        "MILVUS_URI": milvus_server.uri,
        "JOB_STALE_S": str(STALE_S),
    }
    milvus_server.drop_all()
    state_engine.forget_engines()
    postgres_server.drop_database(url)


def _job(base: str, job_id: str) -> dict[str, Any]:
    response = httpx.get(f"{base}/v1/jobs/{job_id}", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def _wait(base: str, job_id: str, until: tuple[str, ...], timeout_s: float = 300) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = _job(base, job_id)
        if job["status"] in until:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} never reached {until}: {job}")


def _top_file(base: str, query: str) -> str:
    found = httpx.post(
        f"{base}/v1/search", json={"query": query, "kb": "shared", "k": 1}, timeout=120
    ).json()["passages"]
    return found[0]["file"] if found else ""


def _document(i: int) -> bytes:
    lines = [
        f"第{i}号制度文件 第{j}条：部门{i}的员工每月第{j}个工作日提交报告{i * j}份。"
        for j in range(40)
    ]
    return "\n".join(lines).encode()


def test_two_servers_share_jobs_and_one_killed_mid_job_is_reported(
    tmp_path: Path, shared: dict[str, str]
) -> None:
    servers = []
    bases = []
    for name in ("a", "b"):
        env = zhiku_env(tmp_path / name / "home", **shared)
        port = free_port()
        (tmp_path / name).mkdir(exist_ok=True)
        servers.append(start_server(env, tmp_path / name, port))
        bases.append(f"http://127.0.0.1:{port}")
    a, b = bases
    try:
        created = httpx.post(f"{a}/v1/knowledge_bases", json={"name": "shared"}, timeout=60)
        assert created.status_code == 201, created.text

        # an upload through b, reported and searched through a
        files = [("files", ("龙井.txt", "西湖龙井是杭州的名茶，产于西湖周围的群山。".encode()))]
        started = httpx.post(f"{b}/v1/knowledge_bases/shared/documents", files=files, timeout=120)
        assert started.status_code == 202, started.text
        job = _wait(a, started.json()["id"], ("done", "failed"))
        assert job["status"] == "done" and job["files"][0]["status"] == "added", job
        assert _top_file(a, "西湖龙井产于哪里") == "龙井.txt"

        # a long upload through b, cancelled through a: b stops it, what it committed stays
        many = [("files", (f"制度{i}.txt", _document(i))) for i in range(120)]
        started = httpx.post(f"{b}/v1/knowledge_bases/shared/documents", files=many, timeout=300)
        assert started.status_code == 202, started.text
        job_id = started.json()["id"]
        assert _wait(a, job_id, ("running", "done", "failed"))["status"] == "running"
        asked = httpx.post(f"{a}/v1/jobs/{job_id}/cancel", timeout=60)
        assert asked.status_code == 200, asked.text
        stopped = _wait(a, job_id, ("done", "failed", "cancelled"))
        assert stopped["status"] == "cancelled", stopped
        added = [f for f in stopped["files"] if f["status"] == "added"]
        left = [f for f in stopped["files"] if f["reason"] == "not processed"]
        assert left and len(added) + len(left) == len(many), stopped["files"]

        # the same files again through b: resumed (what was committed is skipped); b is
        # killed while a reports it running
        started = httpx.post(f"{b}/v1/knowledge_bases/shared/documents", files=many, timeout=300)
        assert started.status_code == 202, started.text
        job_id = started.json()["id"]
        running = _wait(a, job_id, ("running", "done", "failed"))
        assert running["status"] == "running", running  # still at it: the kill is mid-job
        servers[1].send_signal(signal.SIGKILL)
        servers[1].wait()
        failed = _wait(a, job_id, ("done", "failed"), timeout_s=STALE_S * 10)
        assert failed["status"] == "failed", failed
        assert "stopped" in failed["error"] and "已停止" in failed["error_zh"]
        assert failed["files_done"] < failed["files_total"]
        # a keeps serving: what was ingested before the kill is there
        assert httpx.get(f"{a}/health", timeout=30).status_code == 200
        assert _top_file(a, "西湖龙井产于哪里") == "龙井.txt"
    finally:
        for server in servers:
            if server.poll() is None:
                stop_server(server)
