"""The web app stays on this machine until people have accounts: `zhiku web` (what `make run`
starts) refuses another address before it listens, and a hand-started `streamlit run app/main.py`
on another address (its own flag, or STREAMLIT_SERVER_ADDRESS) refuses at its first page and
stops. On loopback without accounts it works as before.

These start the real Streamlit server and run the page over its own websocket protocol (the
message a browser sends when it opens the page), so what is checked is the server's behaviour,
not a function's. The data homes are empty throwaway folders: nothing is exposed meanwhile."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from support import REPO

pytestmark = pytest.mark.timeout(300)
BIN = Path(sys.executable).parent
REFUSAL = "refusing to listen on"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("ZHIKU_", "STREAMLIT_", "LLM_"))
    }
    env.update(
        {
            "ZHIKU_HOME": str(home),
            "ZHIKU_MODELS_DIR": str(REPO / ".zhiku" / "models"),
            "LLM_BACKEND": "none",
            **extra,
        }
    )
    return env


def _wait_healthy(port: int, process: subprocess.Popen[str], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited: {process.stderr.read()}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).text == "ok":
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError("the server did not come up")


async def _open_page(port: int) -> list[str]:
    """Open the page as a browser does; the text of its alerts and markdown, until the run
    ends or the server closes the connection."""
    texts: list[str] = []
    async with websockets.connect(
        f"ws://127.0.0.1:{port}/_stcore/stream", subprotocols=["streamlit"]
    ) as ws:
        opened = BackMsg()
        opened.rerun_script.query_string = ""
        opened.rerun_script.page_script_hash = ""
        await ws.send(opened.SerializeToString())
        try:
            while True:
                message = ForwardMsg()
                message.ParseFromString(await asyncio.wait_for(ws.recv(), 120))
                if message.WhichOneof("type") == "script_finished":
                    break
                if message.WhichOneof("type") == "delta":
                    element = message.delta.new_element
                    kind = element.WhichOneof("type")
                    if kind == "alert":
                        texts.append(element.alert.body)
                    elif kind == "markdown":
                        texts.append(element.markdown.body)
                    elif kind == "text_input":
                        texts.append(element.text_input.label)
        except websockets.ConnectionClosed:
            pass
    return texts


def _streamlit(home: Path, port: int, *flags: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            str(BIN / "streamlit"),
            "run",
            str(REPO / "app" / "main.py"),
            "--server.port",
            str(port),
            "--server.headless",
            "true",
            *flags,
        ],
        cwd=REPO,
        env=_env(home, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        process.terminate()
    try:
        _, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
    return err


def test_zhiku_web_refuses_another_address_without_accounts(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(BIN / "zhiku"), "web", "--host", "0.0.0.0", "--port", str(_free_port())],
        cwd=tmp_path,
        env=_env(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    message = " ".join(done.stderr.split())
    assert f"{REFUSAL} 0.0.0.0" in message
    assert "zhiku users create NAME --role admin" in message
    assert "拒绝在 0.0.0.0 上监听" in message


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_a_hand_started_app_on_another_address_refuses_and_stops(tmp_path: Path, how: str) -> None:
    port = _free_port()
    if how == "flag":
        process = _streamlit(tmp_path / "home", port, "--server.address", "0.0.0.0")
    else:  # beats the repository's .streamlit/config.toml (127.0.0.1)
        process = _streamlit(tmp_path / "home", port, STREAMLIT_SERVER_ADDRESS="0.0.0.0")
    try:
        _wait_healthy(port, process)
        texts = asyncio.run(_open_page(port))
        assert any("拒绝在 0.0.0.0 上监听" in t and REFUSAL in t for t in texts), texts
        assert not any("知识库问答" in t for t in texts)  # nothing of the app was drawn
        process.wait(timeout=60)  # it stopped by itself
    finally:
        err = _stop(process)
    assert REFUSAL in err


def test_loopback_without_accounts_works_as_before(tmp_path: Path) -> None:
    port = _free_port()
    process = _streamlit(tmp_path / "home", port)  # the repository's config: 127.0.0.1
    try:
        _wait_healthy(port, process)
        texts = asyncio.run(_open_page(port))
        assert not any(REFUSAL in t for t in texts)
        assert any("还没有文档" in t for t in texts), texts  # the chat page of an empty home
        assert process.poll() is None
        with pytest.raises(httpx.HTTPError):  # not on other interfaces
            host = socket.gethostbyname(socket.gethostname())
            if host.startswith("127."):
                raise httpx.ConnectError("no other interface to try")
            httpx.get(f"http://{host}:{port}/_stcore/health", timeout=2)
    finally:
        _stop(process)


def test_another_address_is_allowed_once_accounts_exist(tmp_path: Path) -> None:
    home = tmp_path / "home"
    created = subprocess.run(
        [str(BIN / "zhiku"), "users", "create", "ada", "--role", "admin"],
        cwd=tmp_path,
        env=_env(home, ZHIKU_PASSWORD="correct horse battery"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr
    port = _free_port()
    process = _streamlit(home, port, "--server.address", "0.0.0.0")
    try:
        _wait_healthy(port, process)
        texts = asyncio.run(_open_page(port))
        assert not any(REFUSAL in t for t in texts)
        assert "用户名" in texts and "密码" in texts  # the login form, not a page
        assert process.poll() is None  # still serving
    finally:
        _stop(process)
