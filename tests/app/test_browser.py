"""The web app in a real browser: Debian's Chromium, driven by Playwright, against
`streamlit run app/main.py` in a subprocess with its own data home.

A person's path through the product: upload a small Chinese document through the real file
uploader on the knowledge-base page, ask a question it answers on the chat page, see the
streamed answer with its citation [1], open the source card; bind a folder and see a file
dropped into it appear with no click (the page polls by itself). Screenshots go to
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


class StreamlitApp:
    """`streamlit run app/main.py` on a free port of 127.0.0.1, with the given environment."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> str:
        port = free_port()
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
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
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.url = f"http://127.0.0.1:{port}"
        wait_healthy(self.url, self.process)
        return self.url

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


def app_env(home: Path, ollama_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "ZHIKU_HOME": str(home),
        "ZHIKU_MODELS_DIR": str(MODELS_DIR),
        "LLM_BACKEND": "ollama",
        "OLLAMA_HOST": ollama_url,
    }


@pytest.fixture
def app_url(tmp_path: Path) -> Iterator[str]:
    """The app on a free port, answering through FakeOllama, with a throwaway data home."""
    with FakeOllama(models=["qwen2.5:3b"], reply_tokens=ANSWER_TOKENS) as ollama:
        app = StreamlitApp(app_env(tmp_path / "home", ollama.url), tmp_path / "streamlit.log")
        try:
            yield app.start()
        finally:
            app.stop()
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
    expect(import_button).to_be_enabled(timeout=120_000)  # the four files upload first
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

    # 查看原文 opens the Markdown file's text beside the chat, the sentence marked in view
    page.get_by_role("button", name="查看原文").first.click()
    mark = page.locator(".zk-viewer-text #zk-viewer-mark")
    expect(mark).to_contain_text("十五天带薪年假", timeout=30_000)
    expect(mark).to_be_in_viewport()
    expect(page.locator(".zk-viewer-text")).to_contain_text('<img src=x onerror="window.__xss=1">')
    assert page.evaluate("window.__xss") is None
    screenshot(page, "05b-viewer-text.png")


# ----- checking an answer: the source at the sentence, conversations, feedback, inspector -----

PDF_NAME = "员工手册.pdf"
PDF_PAGES = [
    ["员工手册", "第一章 总则", "本手册适用于公司全体员工,自发布之日起施行。"],
    ["第二章 休假", "员工每年享有十五天带薪年假。", "年假需要提前两周在系统中申请。"],
]
CITED = "员工每年享有十五天带薪年假"
PDF_ANSWER = ["员工每年", "享有十五天", "带薪年假", "[1]", "。"]


@pytest.fixture
def pdf_home(tmp_path: Path, embedder: Any) -> Path:
    """A data home whose default knowledge base holds a two-page PDF ingested from a folder
    that is deleted afterwards: the viewer must open the copy kept under the data home."""
    from support import make_cjk_pdf, make_settings

    from ingest._insert import ingest_paths

    folder = tmp_path / "incoming"
    folder.mkdir()
    pdf = make_cjk_pdf(folder / PDF_NAME, PDF_PAGES)
    home = tmp_path / "home"
    report = ingest_paths(make_settings(home), [pdf], "default", embedder=embedder)
    assert [o.status for o in report.outcomes] == ["added"]
    pdf.unlink()
    folder.rmdir()
    return home


def wait_idle(page: Any) -> None:
    """Until the app's script run is over (Streamlit shows its status widget while running)."""
    page.wait_for_timeout(300)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000
    )


def click_button(page: Any, name: str, exact: bool = True) -> None:
    page.get_by_role("button", name=name, exact=exact).first.click()


def test_check_an_answer_at_its_source_and_keep_it(
    pdf_home: Path, page: Any, tmp_path: Path
) -> None:

    with FakeOllama(models=["qwen2.5:3b"], reply_tokens=PDF_ANSWER) as ollama:
        app = StreamlitApp(app_env(pdf_home, ollama.url), tmp_path / "streamlit.log")
        try:
            url = app.start()
            conversation = _ask_and_open_the_page(page, url)
            _thumbs_down_with_a_correction(page)
            _reload_and_reopen(page, url, conversation)
            app.stop()
            # a second server process on the same data home: the conversation is still there
            url = app.start()
            _reload_and_reopen(page, url, conversation, screenshot_name="09-after-restart.png")
            _a_second_tab_adds_to_it(page, url, conversation)
            _run_the_saved_case(page)
            _inspect_and_switch_off_a_chunk(page)
        finally:
            app.stop()
            print((tmp_path / "streamlit.log").read_text(errors="replace")[-4000:])


def _ask_and_open_the_page(page: Any, url: str) -> str:
    from playwright.sync_api import expect

    page.goto(url)
    chat_input = page.get_by_test_id("stChatInputTextArea")
    expect(chat_input).to_be_enabled(timeout=90_000)
    chat_input.fill("员工每年有几天年假?")
    chat_input.press("Enter")
    expect(page.locator('a[href="#zk-src-0-1"]')).to_be_visible(timeout=60_000)
    screenshot(page, "06-pdf-answer.png")

    # the marker again as a button: the PDF opens beside the chat at the cited page
    click_button(page, "[1]")
    viewer_page = page.locator(".zk-viewer-page")
    expect(viewer_page).to_be_visible(timeout=30_000)
    expect(viewer_page).to_have_attribute("data-page", "2")
    expect(viewer_page).to_contain_text("第 2 / 2 页")
    found = page.locator(".zk-viewer-found")
    expect(found.locator("mark")).to_contain_text(CITED)
    boxes = found.get_attribute("data-boxes")
    assert boxes and len(__import__("json").loads(boxes)) >= 1  # a highlight box on the page
    expect(page.get_by_test_id("stImage")).to_have_count(2)  # the cited lines, the page
    page.wait_for_timeout(500)
    screenshot(page, "07-viewer-pdf.png")
    # the conversation got its id in the URL, so a reload finds it
    page.wait_for_function("() => location.search.includes('c=')")
    return page.evaluate("() => new URLSearchParams(location.search).get('c')")


def _thumbs_down_with_a_correction(page: Any) -> None:
    from playwright.sync_api import expect

    # the warm-up's end redraws the whole page (the badge then names the backend), and a
    # redraw closes an open popover: act on the page as it stays
    expect(page.get_by_text("回答方式:Ollama")).to_be_visible(timeout=120_000)
    wait_idle(page)
    feedback = page.get_by_test_id("stFeedback").first
    expect(feedback).to_be_visible()
    down = feedback.get_by_role("radio", name="Thumbs down")
    down.click()
    expect(down).to_have_attribute("aria-checked", "true")
    wait_idle(page)  # the rerun that stores the verdict, before the popover opens
    popover = page.get_by_test_id("stPopoverBody")
    correction = popover.get_by_role("textbox", name="正确答案(如果知道)")
    for attempt in range(3):  # a rerun of another part of the page may still redraw it
        click_button(page, "反馈")
        expect(popover).to_be_visible()
        try:
            expect(correction).to_be_visible(timeout=10_000)
            break
        except AssertionError:
            if attempt == 2:
                raise
            page.keyboard.press("Escape")
            wait_idle(page)
    correction.fill("十五天")
    correction.press("Enter")
    popover.get_by_role("textbox", name="说明(可选)").fill("想核对一下天数")
    popover.get_by_role("button", name="存为评测题").click()
    expect(page.get_by_text("已存为评测题")).to_be_visible(timeout=30_000)
    screenshot(page, "08-feedback-saved.png")
    page.keyboard.press("Escape")


def _reload_and_reopen(
    page: Any, url: str, conversation: str, screenshot_name: str = "09-reloaded.png"
) -> None:
    from playwright.sync_api import expect

    # a fresh page without the id: the conversation is listed in the sidebar and reopens
    page.goto(url)
    listed = page.get_by_test_id("stSidebar").get_by_role("button", name="员工每年有几天年假")
    expect(listed).to_be_visible(timeout=90_000)
    listed.click()
    expect(page.locator('a[href="#zk-src-0-1"]')).to_be_visible(timeout=30_000)
    expect(page.locator("#zk-src-0-1")).to_contain_text(PDF_NAME)
    expect(page.locator("#zk-src-0-1")).to_contain_text("第 2 页")
    # the URL names it, so a reload opens it straight away
    page.wait_for_function(f"() => location.search.includes('c={conversation}')")
    page.reload()
    expect(page.locator('a[href="#zk-src-0-1"]')).to_be_visible(timeout=60_000)
    expect(page.get_by_test_id("stChatMessage").nth(1)).to_contain_text(CITED)
    screenshot(page, screenshot_name)


def _a_second_tab_adds_to_it(page: Any, url: str, conversation: str) -> None:
    from playwright.sync_api import expect

    other = page.context.new_page()
    try:
        other.goto(f"{url}/?c={conversation}")
        chat_input = other.get_by_test_id("stChatInputTextArea")
        expect(chat_input).to_be_enabled(timeout=90_000)
        expect(other.locator('a[href="#zk-src-0-1"]')).to_be_visible(timeout=30_000)
        chat_input.fill("年假要提前多久申请?")
        chat_input.press("Enter")
        expect(other.locator('a[href="#zk-src-1-1"]')).to_be_visible(timeout=120_000)
    finally:
        other.close()
    page.reload()  # the first tab sees the turn the second one added
    expect(page.locator('a[href="#zk-src-1-1"]')).to_be_visible(timeout=60_000)
    expect(page.get_by_test_id("stChatMessage")).to_have_count(4)


def _run_the_saved_case(page: Any) -> None:
    from playwright.sync_api import expect

    page.get_by_test_id("stSidebarNavLink").filter(has_text="知识库").click()
    expect(page.get_by_text("评测题", exact=True)).to_be_visible(timeout=60_000)
    expect(page.get_by_text("共 1 题")).to_be_visible()
    click_button(page, "运行评测")
    expect(page.get_by_text("评测完成")).to_be_visible(timeout=90_000)
    expect(page.get_by_text("评测结果")).to_be_visible()
    metrics = page.get_by_test_id("stMetric")
    expect(metrics.filter(has_text="检索 recall@1")).to_contain_text("1.00")
    expect(metrics.filter(has_text="回答正确率")).to_contain_text("1.00")
    page.get_by_text("评测结果").scroll_into_view_if_needed()
    screenshot(page, "10-eval-run.png")


def _inspect_and_switch_off_a_chunk(page: Any) -> None:
    from playwright.sync_api import expect

    page.get_by_test_id("stSidebarNavLink").filter(has_text="命中测试").click()
    question = page.get_by_label("测试问题")
    expect(question).to_be_visible(timeout=60_000)
    question.fill("员工每年有几天年假?")
    click_button(page, "检索")
    expect(page.get_by_text("个段落会放进提示词")).to_be_visible(timeout=60_000)
    tables = page.get_by_test_id("stTable")
    expect(tables.first).to_contain_text("语义相似度")
    expect(tables.first).to_contain_text("员工手册")
    expect(page.locator(".zk-token").filter(has_text="每年")).to_have_count(1)
    expect(page.locator(".zk-hit-text").first).to_contain_text(CITED)
    screenshot(page, "11-inspector.png")

    # the chunk viewer: page 2's chunk switched off is no longer retrieved
    page.get_by_role("tab", name="段落浏览").click()
    expect(page.locator(".zk-chunk").nth(1)).to_contain_text(CITED, timeout=30_000)
    expect(page.get_by_text("#2 · id")).to_contain_text("第 2 页")
    switch = page.get_by_role("switch", name="参与检索").nth(1)
    expect(switch).to_be_checked()
    switch.focus()  # its input is covered by the drawn switch: toggled from the keyboard
    page.keyboard.press("Space")
    expect(switch).not_to_be_checked(timeout=30_000)
    expect(page.get_by_text("其中 1 个不参与检索")).to_be_visible(timeout=30_000)
    screenshot(page, "12-chunk-off.png")
    page.get_by_role("tab", name="检索测试").click()
    question.fill("员工每年有几天年假?")
    click_button(page, "检索")
    expect(page.get_by_text("1 个段落已设为不参与检索")).to_be_visible(timeout=60_000)
    texts = page.locator(".zk-hit-text")
    for i in range(texts.count()):
        assert CITED not in texts.nth(i).inner_text()


def test_a_watched_folder_updates_the_page_by_itself(
    app_url: str, page: Any, tmp_path: Path
) -> None:
    """The folder panel polls on its own in a browser (a fragment with run_every, which
    AppTest cannot run): a file dropped into a bound folder shows up with no click."""
    from playwright.sync_api import expect

    folder = tmp_path / "共享文件夹"
    folder.mkdir()
    (folder / DOCUMENT_NAME).write_text(DOCUMENT, encoding="utf-8")
    page.goto(app_url)
    expect(page.get_by_test_id("stChatInputTextArea")).to_be_visible(timeout=60_000)
    page.get_by_test_id("stSidebarNavLink").filter(has_text="知识库").click()
    field = page.get_by_role("textbox", name="绑定文件夹")
    # the knowledge-base page's first run in a fresh app can take over a minute when the two
    # cores are busy (it failed at 60 s once in CI with the rest of the page still drawing)
    expect(field).to_be_visible(timeout=180_000)
    field.fill(str(folder))
    page.get_by_role("button", name="绑定", exact=True).click()
    summary = "最近一次同步的结果:新增 1"
    expect(page.get_by_text(summary)).to_be_visible(timeout=90_000)
    expect(page.get_by_test_id("stMetricValue").first).to_have_text("1")  # documents

    (folder / "报销规定.txt").write_text("出差结束后三十天内提交报销单。", encoding="utf-8")
    expect(page.get_by_test_id("stMetricValue").first).to_have_text("2", timeout=90_000)
    page.get_by_text("最近一次同步的结果").scroll_into_view_if_needed()
    page.wait_for_timeout(2000)  # the tables draw on a canvas after they arrive
    screenshot(page, "05-watched-folder.png")
    # the app server is shared by this module's tests: leave it watching nothing
    page.get_by_role("button", name="解除绑定").click()
    expect(page.get_by_text("还没有绑定文件夹。")).to_be_visible(timeout=60_000)


def test_a_long_upload_shows_its_speed_and_stops_on_cancel(
    app_url: str, page: Any, tmp_path: Path
) -> None:
    """取消导入 pressed in the browser while the real ingestion runs (the panel polls on its
    own): the run stops, the result says which files were not imported, the knowledge base
    stays consistent. Resuming is covered by tests/app/test_ui.py."""
    from playwright.sync_api import expect
    from support import make_settings

    from ingest.store import KnowledgeBase

    files = []
    for n in range(4):  # ~80 chunks each: the run lasts long enough to press the button
        path = tmp_path / f"长文档{n}.txt"
        rows = (f"第{n}份第{i}条:编号{n * 1000 + i}的设备每{i % 7}周检修。" for i in range(1500))
        path.write_text("\n".join(rows), encoding="utf-8")
        files.append(str(path))
    page.goto(app_url)
    expect(page.get_by_test_id("stChatInputTextArea")).to_be_visible(timeout=60_000)
    page.get_by_test_id("stSidebarNavLink").filter(has_text="知识库").click()
    expect(page.get_by_text("上传文档", exact=True)).to_be_visible(timeout=60_000)
    dropzone = page.get_by_test_id("stFileUploaderDropzoneInput")
    expect(dropzone).to_be_attached(timeout=180_000)  # the page's first run, as above
    dropzone.set_input_files(files)
    import_button = page.get_by_role("button", name="导入 4 个文件到「default」")
    expect(import_button).to_be_enabled(timeout=120_000)  # the four files upload first
    import_button.click()
    expect(page.get_by_text("段/秒")).to_be_visible(timeout=180_000)  # the first batch embeds
    expect(page.get_by_text("预计还需")).to_be_visible()
    screenshot(page, "06-upload-running.png")
    page.get_by_role("button", name="取消导入").click()
    expect(page.get_by_text("导入已取消")).to_be_visible(timeout=90_000)
    page.wait_for_timeout(2000)  # the tables draw on a canvas after they arrive
    screenshot(page, "07-upload-cancelled.png")
    with KnowledgeBase.open(make_settings(tmp_path / "home")) as kb:
        assert kb.check() == []
        assert len(kb.documents()) < 4
