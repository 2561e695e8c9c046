"""The Ollama backend (`app/_llm_ollama.py`) against a fake Ollama server.

The Ollama server binary cannot be installed where these tests run, so no real Ollama is ever
involved: `ollama_server.FakeOllama` is an HTTP server written for these tests that speaks
Ollama's wire protocol (`/api/tags`, `/api/chat` with NDJSON streaming, its error bodies and
status codes). What these tests prove is that zhiku drives the real `ollama` client and
`langchain_ollama.ChatOllama` correctly over that protocol, and which exceptions they raise in
each failure case; they do not prove anything about a real model's answers.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import httpx
import ollama
import pytest
from langchain_core.messages import HumanMessage, SystemMessage

# tests/app has no __init__.py (a `tests/app` package would shadow the real `app`), so pytest
# puts this directory on sys.path and the helper imports as a top-level module.
from ollama_server import ERROR_500_TEXT, FakeOllama

from app._llm import LlmError
from app._llm_ollama import (
    OllamaStatus,
    check_ollama,
    make_ollama_chat,
    ollama_error,
    same_model,
)
from ingest.settings import Settings

pytestmark = pytest.mark.timeout(30)

MODEL = "qwen2.5:3b"
MESSAGES = [SystemMessage("只根据资料回答。"), HumanMessage("知库是什么?")]
SENT_MESSAGES = [
    {"role": "system", "content": "只根据资料回答。"},
    {"role": "user", "content": "知库是什么?"},
]
DROPPED_EN = "Ollama closed the connection while answering; the partial answer is kept"


def make_settings(host: str, **overrides: Any) -> Settings:
    # Explicit values for everything the assertions depend on, so a developer's environment
    # (LLM_BACKEND, OLLAMA_MODEL, ...) cannot change the outcome; `_env_file=None` skips .env.
    values: dict[str, Any] = {
        "ollama_host": host,
        "ollama_model": MODEL,
        "ollama_timeout_s": 5.0,
        "llm_backend": "auto",
        "llm_temperature": 0.1,
        "llm_max_tokens": 384,
    }
    return Settings(_env_file=None, **{**values, **overrides})


def dead_url() -> str:
    """A loopback URL where nothing listens: bind a port, then free it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def server() -> Iterator[FakeOllama]:
    with FakeOllama(models=[MODEL], reply_tokens=["知库", "是", "本地", "知识库", "。"]) as fake:
        yield fake


def stream_until_error(settings: Settings) -> tuple[list[str], BaseException | None]:
    """What a caller sees: the tokens received, then the exception that ended the stream."""
    received: list[str] = []
    try:
        for chunk in make_ollama_chat(settings).stream(MESSAGES):
            if chunk.content:
                received.append(str(chunk.content))
    except Exception as exc:
        return received, exc
    return received, None


def assert_both(error: LlmError, *fragments: str) -> None:
    for fragment in fragments:
        assert fragment in error.en, error.en
        assert fragment in error.zh, error.zh


# --- streaming ---


def test_stream_delivers_each_token_as_its_own_chunk(server: FakeOllama) -> None:
    chat = make_ollama_chat(make_settings(server.url), temperature=0.3, max_tokens=64)
    assert server.requests == []  # construction must not call the server

    contents = [str(chunk.content) for chunk in chat.stream(MESSAGES)]

    assert [c for c in contents if c] == ["知库", "是", "本地", "知识库", "。"]
    (sent,) = server.chat_requests
    assert sent["model"] == MODEL
    assert sent["stream"] is True
    assert sent["messages"] == SENT_MESSAGES
    assert sent["options"]["temperature"] == 0.3
    assert sent["options"]["num_predict"] == 64
    assert "keep_alive" not in sent  # Ollama's own default applies


def test_chat_defaults_come_from_settings(server: FakeOllama) -> None:
    settings = make_settings(server.url, llm_temperature=0.0, llm_max_tokens=7)

    answer = make_ollama_chat(settings).invoke(MESSAGES)

    assert answer.content == "知库是本地知识库。"
    options = server.chat_requests[0]["options"]
    # 0.0 is a real setting, not "unset": it must reach the server.
    assert options["temperature"] == 0.0
    assert options["num_predict"] == 7


def test_responder_sees_the_prompt() -> None:
    def echo(request: dict[str, Any]) -> list[str]:
        return ["问:", request["messages"][-1]["content"]]

    with FakeOllama(models=[MODEL], responder=echo) as fake:
        answer = make_ollama_chat(make_settings(fake.url)).invoke(MESSAGES)

    assert answer.content == "问:知库是什么?"


def test_ignores_proxy_environment_for_a_local_ollama(
    server: FakeOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A system proxy (common with Clash-style tools) must not swallow requests to this machine;
    # a SOCKS proxy would even fail client construction without the `socksio` package.
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(name, dead_url())
    monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:1")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    settings = make_settings(server.url)

    assert check_ollama(settings).usable
    assert make_ollama_chat(settings).invoke(MESSAGES).content == "知库是本地知识库。"


# --- check_ollama ---


def test_check_finds_the_model(server: FakeOllama) -> None:
    status = check_ollama(make_settings(server.url))

    assert status == OllamaStatus(reachable=True, model_present=True, models=(MODEL,), error=None)
    assert [(r.method, r.path) for r in server.requests] == [("GET", "/api/tags")]


def test_check_reports_a_missing_model_with_the_pull_command() -> None:
    with FakeOllama(models=["llama3:latest", "bge-m3"]) as fake:
        status = check_ollama(make_settings(fake.url))

    assert status.reachable
    assert not status.model_present
    assert status.models == ("llama3:latest", "bge-m3:latest")
    assert status.error is not None
    assert_both(status.error, "`ollama pull qwen2.5:3b`", "llama3:latest", fake.url)
    assert "embedded model" in status.error.en
    assert "内置模型" in status.error.zh


def test_check_says_when_no_model_is_installed() -> None:
    with FakeOllama(models=[]) as fake:
        status = check_ollama(make_settings(fake.url))

    assert status.error is not None
    assert "No model is installed yet" in status.error.en
    assert "还没有安装任何模型" in status.error.zh


def test_check_matches_an_untagged_name_to_latest() -> None:
    with FakeOllama(models=["llama3:latest"]) as fake:
        assert check_ollama(make_settings(fake.url, ollama_model="llama3")).usable
    # and not the other way round: `qwen2.5` means `qwen2.5:latest`, which is not `:3b`
    with FakeOllama(models=[MODEL]) as fake:
        status = check_ollama(make_settings(fake.url, ollama_model="qwen2.5"))
    assert status.reachable and not status.model_present
    assert status.error is not None
    assert "`ollama pull qwen2.5`" in status.error.en


@pytest.mark.parametrize(
    ("requested", "listed", "same"),
    [
        ("qwen2.5:3b", "qwen2.5:3b", True),
        ("llama3", "llama3:latest", True),
        ("llama3:latest", "llama3:latest", True),
        ("Qwen2.5:3B", "qwen2.5:3b", True),
        ("library/llama3", "llama3:latest", True),
        ("registry.ollama.ai/library/llama3:latest", "llama3:latest", True),
        ("hf.co/Qwen/Qwen2.5-3B-Instruct-GGUF", "hf.co/Qwen/Qwen2.5-3B-Instruct-GGUF:latest", True),
        ("qwen2.5", "qwen2.5:3b", False),
        ("qwen2.5:3b", "qwen2.5:7b", False),
        ("someone/llama3", "llama3:latest", False),
        ("localhost:5000/llama3", "llama3:latest", False),
    ],
)
def test_same_model_follows_ollama_naming(requested: str, listed: str, same: bool) -> None:
    assert same_model(requested, listed) is same


def test_check_when_nothing_listens_says_how_to_start_ollama() -> None:
    url = dead_url()
    status = check_ollama(make_settings(url))

    assert not status.reachable
    assert not status.model_present
    assert status.models == ()
    assert status.error is not None
    assert_both(status.error, url, "`ollama serve`", "https://ollama.com", "OLLAMA_HOST")
    assert "Connection refused" in status.error.en  # the socket's reason, for diagnosis
    assert "falls back to the embedded model" in status.error.en
    assert status.error.zh.startswith(
        f"无法连接到 Ollama({url})。请先启动 Ollama:运行 `ollama serve`,"
        "或从 https://ollama.com 安装;也可以设置 OLLAMA_HOST。在此之前,知库会改用内置模型。"
    )


def test_check_without_auto_backend_promises_no_fallback() -> None:
    status = check_ollama(make_settings(dead_url(), llm_backend="ollama"))

    assert status.error is not None
    assert "embedded" not in status.error.en
    assert "内置模型" not in status.error.zh


def test_check_with_an_unknown_host_name() -> None:
    status = check_ollama(make_settings("http://no-such-ollama.invalid:11434"))

    assert not status.reachable
    assert status.error is not None
    assert_both(status.error, "no-such-ollama.invalid", "`ollama serve`", "OLLAMA_HOST")


def test_check_times_out_on_a_server_that_never_answers() -> None:
    # The kernel accepts the connection (listen backlog) but nobody ever reads or answers.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        host, port = sock.getsockname()
        status = check_ollama(make_settings(f"http://{host}:{port}"), timeout_s=0.2)

    assert not status.reachable
    assert status.error is not None
    assert "no answer within 0.2 s" in status.error.en
    assert "`ollama serve`" in status.error.en


def test_check_on_a_server_that_is_not_ollama(tmp_path: Path) -> None:
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    other = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    Thread(target=other.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        host, port = other.server_address[:2]
        status = check_ollama(make_settings(f"http://{host}:{port}"))
    finally:
        other.shutdown()
        other.server_close()

    assert not status.reachable
    assert status.error is not None
    assert_both(status.error, "HTTP 404", "OLLAMA_HOST")
    assert "does not answer like Ollama" in status.error.en


def test_check_on_a_failing_server() -> None:
    with FakeOllama(fail_mode="error500") as fake:
        status = check_ollama(make_settings(fake.url))

    assert status.reachable
    assert not status.model_present
    assert status.error is not None
    assert_both(status.error, "HTTP 500", ERROR_500_TEXT)


@pytest.mark.parametrize("host", ["http://[::1", "ftp://localhost:11434"])
def test_check_never_raises_on_a_malformed_host(host: str) -> None:
    status = check_ollama(make_settings(host))

    assert not status.reachable
    assert status.error is not None
    assert_both(status.error, "OLLAMA_HOST", "http://localhost:11434")


# --- failures while answering: what the client raises, and what the user is told ---


def test_server_down_while_answering() -> None:
    url = dead_url()
    received, exc = stream_until_error(make_settings(url))

    assert received == []
    assert isinstance(exc, httpx.ConnectError)  # streaming skips ollama's ConnectionError wrap
    error = ollama_error(exc, make_settings(url))
    assert_both(error, url, "`ollama serve`", "https://ollama.com", "OLLAMA_HOST")
    assert "embedded" not in error.en  # a failed answer does not switch backends by itself


def test_model_not_pulled_while_answering() -> None:
    with FakeOllama(models=["llama3:latest"]) as fake:
        received, exc = stream_until_error(make_settings(fake.url))

    assert received == []
    assert isinstance(exc, ollama.ResponseError)
    assert exc.status_code == 404
    assert exc.error == 'model "qwen2.5:3b" not found, try pulling it first'
    error = ollama_error(exc, make_settings(fake.url))
    assert_both(error, "`ollama pull qwen2.5:3b`")


def test_server_error_while_answering() -> None:
    with FakeOllama(fail_mode="error500") as fake:
        received, exc = stream_until_error(make_settings(fake.url))

    assert received == []
    assert isinstance(exc, ollama.ResponseError)
    assert exc.status_code == 500
    error = ollama_error(exc, make_settings(fake.url))
    assert_both(error, "HTTP 500", ERROR_500_TEXT, "`ollama serve`")


@pytest.mark.parametrize(
    ("fail_mode", "raised"),
    [("drop_mid_stream", httpx.RemoteProtocolError), ("reset_mid_stream", httpx.ReadError)],
)
def test_connection_dropped_mid_answer_keeps_the_partial_answer(
    fail_mode: Any, raised: type[Exception]
) -> None:
    tokens = ["第一", "第二", "第三", "第四"]
    with FakeOllama(models=[MODEL], reply_tokens=tokens, fail_mode=fail_mode, drop_after=2) as fake:
        received, exc = stream_until_error(make_settings(fake.url))

    assert received == ["第一", "第二"]  # what arrived before the drop reached the caller
    assert isinstance(exc, raised)
    error = ollama_error(exc, make_settings(fake.url))
    assert DROPPED_EN in error.en
    assert "已保留已收到的部分回答" in error.zh


def test_slow_model_times_out_with_advice() -> None:
    with FakeOllama(models=[MODEL], fail_mode="slow", slow_s=10) as fake:
        settings = make_settings(fake.url, ollama_timeout_s=0.3)
        received, exc = stream_until_error(settings)

    assert received == []
    assert isinstance(exc, httpx.ReadTimeout)
    error = ollama_error(exc, settings)
    assert_both(error, "OLLAMA_TIMEOUT_S", "0.3", "qwen2.5:3b")
    assert "smaller model" in error.en
    assert "更小的模型" in error.zh


# --- ollama_error on its own: cases the fake server has no mode for ---


def test_error_line_inside_a_stream() -> None:
    # Ollama reports a failure after the headers as an `{"error": ...}` NDJSON line.
    error = ollama_error(ollama.ResponseError("out of memory"), make_settings(dead_url()))

    assert_both(error, "out of memory")
    assert "HTTP" not in error.en


def test_disconnect_before_any_answer_is_not_called_partial() -> None:
    exc = httpx.RemoteProtocolError("Server disconnected without sending a response.")
    error = ollama_error(exc, make_settings("http://127.0.0.1:11434"))

    assert "before answering" in error.en
    assert "partial" not in error.en


def test_connect_timeout_means_not_reachable() -> None:
    error = ollama_error(httpx.ConnectTimeout("timed out"), make_settings("http://10.0.0.9:11434"))

    assert_both(error, "http://10.0.0.9:11434", "`ollama serve`")
    assert "OLLAMA_TIMEOUT_S" not in error.en


def test_bare_404_points_at_ollama_host() -> None:
    error = ollama_error(ollama.ResponseError("404 page not found", 404), make_settings("x:1"))

    assert "ollama pull" not in error.en
    assert_both(error, "OLLAMA_HOST")


def test_wrapped_exceptions_are_unwrapped() -> None:
    try:
        try:
            raise httpx.ReadTimeout("timed out")
        except httpx.ReadTimeout as inner:
            raise RuntimeError("generation failed") from inner
    except RuntimeError as outer:
        error = ollama_error(outer, make_settings(dead_url()))

    assert "OLLAMA_TIMEOUT_S" in error.en


def test_anything_else_names_the_exception() -> None:
    error = ollama_error(ValueError("No data received from Ollama stream."), make_settings("h"))

    assert_both(error, "ValueError: No data received from Ollama stream.")
