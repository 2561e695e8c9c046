"""The web app in a real browser: Debian's Chromium, driven by Playwright, against
`streamlit run app/main.py` in a subprocess with its own data home.

A person's path through the product: upload a small Chinese document through the real file
uploader on the knowledge-base page, ask a question it answers on the chat page, see the
streamed answer with its citation [1], open the source card. Screenshots go to
`test-artifacts/` for a human to look at.

The answer comes from `FakeOllama` (`LLM_BACKEND=ollama`, see `tests/app/ollama_server.py`):
the real Ollama server cannot be installed here, and the embedded llama.cpp model needs about
60 s for its first answer on this 2-core machine (the system prompt alone is processed at ~20
tokens/s before the first token), which would double this test's time. The embedded model is
covered by `tests/app/test_llm_llamacpp.py`; what this test checks is the browser side.

Only skipped where no browser can be installed (`/usr/bin/chromium` missing: `apt-get install
chromium`). Playwright's own browser download is never used.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ollama_server import FakeOllama
from support import MODELS_DIR, REPO

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
VIEWPORT = {"width": 1280, "height": 800}
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DOCUMENT_NAME = "年假制度.md"
DOCUMENT = (
    "# 公司年假制度\n\n"
    "员工每年享有十五天带薪年假,年假需要提前两周在系统中申请。\n\n"
    '附注:<img src=x onerror="window.__xss=1"> 这段标记只是示例文字。\n'
)
QUESTION = "员工每年有几天年假?"
ANSWER_TOKENS = ["员工每年", "享有", "十五天", "带薪年假", "[1]", "。"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="no browser: /usr/bin/chromium is missing (install it with "
        "`apt-get install chromium`)",
    ),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"streamlit did not answer at {url} within {timeout_s} s")


@pytest.fixture
def app_url(tmp_path: Path) -> Iterator[str]:
    """The app on a free port, answering through FakeOllama, with a throwaway data home."""
    with FakeOllama(models=["qwen2.5:3b"], reply_tokens=ANSWER_TOKENS) as ollama:
        port = free_port()
        env = {
            **os.environ,
            "ZHIKU_HOME": str(tmp_path / "home"),
            "ZHIKU_MODELS_DIR": str(MODELS_DIR),
            "LLM_BACKEND": "ollama",
            "OLLAMA_HOST": ollama.url,
        }
        log = (tmp_path / "streamlit.log").open("wb")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "app/main.py",
                "--server.port",
                str(port),
                "--server.address",
                "127.0.0.1",
                "--server.headless",
                "true",
                "--browser.gatherUsageStats",
                "false",
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, process)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()
            print((tmp_path / "streamlit.log").read_text(errors="replace")[-3000:])


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tempfile.mkdtemp(prefix="chromium-", dir=tmp_path),  # a new user data dir
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=VIEWPORT,
            locale="zh-CN",
        )
        try:
            yield context.new_page()
        finally:
            context.close()


def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))


def test_upload_ask_and_open_the_source(app_url: str, page: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    document = tmp_path / DOCUMENT_NAME
    document.write_text(DOCUMENT, encoding="utf-8")

    # the knowledge-base page, through its real uploader
    page.goto(app_url)
    expect(page.get_by_test_id("stChatInputTextArea")).to_be_visible(timeout=60_000)
    page.get_by_test_id("stSidebarNavLink").filter(has_text="知识库").click()
    expect(page.get_by_text("上传文档", exact=True)).to_be_visible(timeout=60_000)
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(document))
    import_button = page.get_by_role("button", name="导入 1 个文件到「default」")
    expect(import_button).to_be_enabled(timeout=30_000)
    import_button.click()
    expect(page.get_by_text("导入完成:新增 1")).to_be_visible(timeout=60_000)
    expect(page.get_by_test_id("stMetricValue").first).to_have_text("1")  # documents
    page.get_by_text("导入完成:新增 1").scroll_into_view_if_needed()
    page.wait_for_timeout(3000)  # the tables draw on a canvas after they arrive
    screenshot(page, "01-knowledge-base.png")

    # the chat page, in the same session
    page.get_by_test_id("stSidebarNavLink").filter(has_text="问答").click()
    chat_input = page.get_by_test_id("stChatInputTextArea")
    expect(chat_input).to_be_enabled(timeout=60_000)
    expect(page.get_by_text("可以问这些文档里的内容")).to_be_visible()
    screenshot(page, "02-chat-ready.png")
    chat_input.fill(QUESTION)
    chat_input.press("Enter")

    citation = page.locator('a[href="#zk-src-0-1"]')
    expect(citation).to_be_visible(timeout=60_000)
    expect(citation).to_have_text("[1]")
    assistant = page.get_by_test_id("stChatMessage").nth(1)
    expect(assistant).to_contain_text("员工每年享有十五天带薪年假")
    expect(page.get_by_text("完成 · Ollama · qwen2.5:3b")).to_be_visible()
    expect(page.get_by_text("回答方式:Ollama · qwen2.5:3b")).to_be_visible()
    copy = page.get_by_role("button", name="复制")
    expect(copy).to_be_visible()
    screenshot(page, "03-answer.png")

    # the answer with its sources as Markdown, ready to copy
    copy.click()
    exported = page.get_by_test_id("stCode").filter(has_text="**来源**")
    expect(exported).to_contain_text("[1] 《公司年假制度》 年假制度.md")
    screenshot(page, "04-copy-markdown.png")
    page.keyboard.press("Escape")
    expect(exported).to_be_hidden()

    # the citation leads to its source card; expanding it shows the passage, as text
    citation.click()
    card = page.locator("#zk-src-0-1")
    expect(card).to_be_in_viewport()
    expect(card).to_contain_text("公司年假制度")
    expect(card).to_contain_text(DOCUMENT_NAME)
    page.get_by_text("展开原文段落").first.click()
    passage = page.locator(".zk-passage").first
    expect(passage).to_be_visible()
    expect(passage.locator("mark")).to_contain_text("十五天带薪年假")
    expect(passage).to_contain_text('<img src=x onerror="window.__xss=1">')
    assert page.evaluate("window.__xss") is None  # the document's markup never ran
    passage.scroll_into_view_if_needed()
    screenshot(page, "05-source-card.png")
