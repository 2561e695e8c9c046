"""A real `zhiku serve` for the API tests: uvicorn in its own process on a free 127.0.0.1 port,
over a throwaway data home with two knowledge bases, stopped after the session.

The LLM behind it is `FakeOllama` (tests/app/ollama_server.py), an HTTP server speaking
Ollama's protocol: the Ollama server binary cannot be installed where these tests run, and the
embedded model is too slow for an API test. Its replies are fixed per question, so what these
tests check is everything zhiku does around the model: retrieval, the prompt, the citation
check, refusals, and how the API carries them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/app: ollama_server
from ollama_server import FakeOllama, evidence_reply
from support import REPO, SMALL_CORPUS, build_kb, make_settings

from ingest._embed import Embedder

ZHIKU = str(Path(sys.executable).with_name("zhiku"))
ANSWERED = "杭州的市花是什么？"
MODEL_REFUSES = "杭州的市长叫什么名字？"
OFF_TOPIC = "量子色动力学中的渐近自由是哪一年发现的？"
# answered in the model's own words: the evidence sentence is quoted under the answer
QUOTED = "杭州地铁 2 号线有多长？"
QUOTED_REPLY = "杭州地铁二号线长 43.3 公里。"
OTHER_DOC = "年假制度\n员工每年有 15 天带薪年假，未休完的年假可以顺延到次年三月底。\n"


def reply_for(request: dict[str, Any]) -> list[str]:
    """The fake model's answer: a cited sentence for the city question, the refusal sentence
    for anything else it is asked; a follow-up is rewritten into the city question."""
    prompt = request["messages"][-1]["content"]
    if "改写后的问题" in prompt:  # the follow-up rewriting step
        return [ANSWERED]
    if ANSWERED in prompt:
        return ["杭州的市花", "是桂花[1]。"]
    if QUOTED in prompt:
        return evidence_reply(["2 号线于 2014"], QUOTED_REPLY)(request)
    return ["知识库中没有", "找到相关内容。"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def zhiku_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZHIKU_", "OLLAMA_", "LLM_"))}
    env.update(
        {
            "ZHIKU_HOME": str(home),
            "ZHIKU_MODELS_DIR": str(REPO / ".zhiku" / "models"),
            "LLM_BACKEND": "none",
            **extra,
        }
    )
    return env


def run_zhiku(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ZHIKU, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def create_key(env: dict[str, str], cwd: Path, name: str, *options: str) -> str:
    done = run_zhiku(env, "keys", "create", "--name", name, *options, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@dataclass
class Served:
    url: str
    home: Path
    cwd: Path
    env: dict[str, str]
    admin: str  # a read/write key for every knowledge base
    fake: FakeOllama

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.admin}"}


def start_server(env: dict[str, str], cwd: Path, port: int) -> subprocess.Popen[bytes]:
    log = (cwd / f"serve-{port}.log").open("wb")
    proc = subprocess.Popen(
        [ZHIKU, "serve", "--port", str(port)], env=env, cwd=cwd, stdout=log, stderr=log
    )
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((cwd / f"serve-{port}.log").read_text(errors="replace"))
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError("zhiku serve did not answer /health within 400 s")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("served")
    home = root / "home"
    settings = make_settings(home)
    build_kb(settings, embedder, SMALL_CORPUS, name="default")
    build_kb(settings, embedder, {"leave.txt": OTHER_DOC}, name="other")
    with FakeOllama(models=["qwen2.5:3b"], responder=reply_for) as fake:
        env = zhiku_env(
            home,
            LLM_BACKEND="ollama",
            OLLAMA_HOST=fake.url,
            OLLAMA_MODEL="qwen2.5:3b",
            MAX_FILE_MB="1",
            MAX_UPLOAD_MB="2",
        )
        admin = create_key(env, root, "admin")
        port = free_port()
        proc = start_server(env, root, port)
        try:
            yield Served(f"http://127.0.0.1:{port}", home, root, env, admin, fake)
        finally:
            stop_server(proc)
