"""Work that outlives the page, in a real browser (Debian's Chromium driven by Playwright, against
`streamlit run app/main.py` in a subprocess; the fixtures are `test_browser.py`'s).

- A second question sent while the first answer streams is queued behind it: after a reload
  both questions and both answers are on the page and in the stored conversation.
- A reload while an answer streams finds it still streaming; it finishes and is stored.
- An answer cut off by killing the app (SIGKILL) is shown after the restart as incomplete, with
  what was streamed, and 重新提问 answers it.
- An upload cut off by killing the app: after the restart its panel says which files are in
  the knowledge base and which are not, and 继续导入 ingests exactly the rest, nothing doubled.

The model is `FakeOllama` (`tests/app/ollama_server.py`, Ollama's HTTP protocol with no model
behind it) with a pause before each token: it stands in for a model on a slow machine, so that
an answer streams for a known while, long enough to act on the page meanwhile.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from ollama_server import FakeOllama
from support import REPO, build_kb, make_settings
from test_browser import CHROMIUM, StreamlitApp, app_env, screenshot
from test_browser import page as page  # the Chromium page fixture

from app._conversations import ConversationStore
from ingest._embed import Embedder

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no browser: /usr/bin/chromium is missing"),
]

DOCUMENT = {
    "年假制度.md": "# 公司年假制度\n\n员工每年享有十五天带薪年假,年假需要提前两周在系统中申请。"
    "\n\n未休完的年假可以顺延到次年三月底。\n",
}
FIRST = "员工每年有几天年假?"
SECOND = "年假要提前多久申请?"
THIRD = "没休完的年假怎么办?"
FOURTH = "年假可以顺延吗?"
# The page shows an answer a checked sentence at a time: each answer is the document's three
# sentences, the one asked about first, so that it shows while the other two still stream.
LEAVE = ["员工每年享有", "十五天带薪年假", "[1]。"]
APPLY = ["年假需要提前两周", "在系统中申请", "[1]。"]
CARRY = ["未休完的年假可以", "顺延到次年三月底", "[1]。"]
ANSWERS = {
    FIRST: LEAVE + APPLY + CARRY,
    SECOND: APPLY + LEAVE + CARRY,
    THIRD: CARRY + LEAVE + APPLY,
    FOURTH: CARRY + APPLY + LEAVE,
}
TOKEN_DELAY_S = 0.8  # nine tokens: an answer streams for about seven seconds


def responder(body: dict[str, Any]) -> Sequence[str]:
    """Follow-up rewriting gets the question back; a question gets its own answer."""
    last = body["messages"][-1]["content"]
    if "改写后的问题" in last:
        return [last.rsplit("最后的问题：", 1)[-1].split("\n")[0]]
    asked = [q for q in ANSWERS if q in last]
    return ANSWERS[max(asked, key=last.rfind)] if asked else ["知识库中没有相关内容。"]


@pytest.fixture
def home(tmp_path: Path, embedder: Embedder) -> Path:
    home = tmp_path / "home"
    build_kb(make_settings(home), embedder, DOCUMENT, name="default")
    return home


def messages(page: Any) -> Any:
    return page.get_by_test_id("stChatMessage")


def ask(page: Any, question: str) -> None:
    chat_input = page.get_by_test_id("stChatInputTextArea")
    chat_input.fill(question)
    chat_input.press("Enter")


def wait_streaming(message: Any, text: str, timeout_s: float = 90) -> None:
    """Until `text` is on the page in `message` while its answer is still running."""
    from playwright.sync_api import expect

    expect(message).to_contain_text(text, timeout=timeout_s * 1000)
    expect(message.get_by_text("完成 ·")).to_have_count(0)


def stored(home: Path) -> list[Any]:
    store = ConversationStore(make_settings(home), "default")
    (conversation,) = store.list()
    return store.turns(conversation.id)


def test_a_question_sent_while_an_answer_streams_is_answered_after_it(
    home: Path, page: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    with FakeOllama(responder=responder, token_delay_s=TOKEN_DELAY_S) as ollama:
        app = StreamlitApp(app_env(home, ollama.url), tmp_path / "streamlit.log")
        try:
            page.goto(app.start())
            expect(page.get_by_text("回答方式:Ollama")).to_be_visible(timeout=120_000)

            # the second question while the first answer streams: queued behind it
            ask(page, FIRST)
            wait_streaming(messages(page).nth(1), "十五天带薪年假")
            ask(page, SECOND)
            expect(messages(page).nth(2)).to_contain_text(SECOND, timeout=30_000)
            screenshot(page, "outlive-1-queued.png")
            expect(page.get_by_text("完成 ·")).to_have_count(2, timeout=90_000)
            expect(messages(page)).to_have_count(4)
            expect(messages(page).nth(1)).to_contain_text("员工每年享有十五天带薪年假")
            expect(messages(page).nth(3)).to_contain_text("年假需要提前两周在系统中申请")
            page.wait_for_function("() => location.search.includes('c=')")
            page.reload()
            expect(messages(page)).to_have_count(4, timeout=60_000)
            expect(messages(page).nth(0)).to_contain_text(FIRST)
            expect(messages(page).nth(1)).to_contain_text("员工每年享有十五天带薪年假")
            expect(messages(page).nth(2)).to_contain_text(SECOND)
            expect(messages(page).nth(3)).to_contain_text("年假需要提前两周在系统中申请")
            turns = stored(home)
            assert [t.question for t in turns] == [FIRST, SECOND]
            assert all(t.result is not None and not t.incomplete for t in turns)
            assert "十五天" in turns[0].result.answer and "两周" in turns[1].result.answer

            # a reload while an answer streams: the reloaded page follows it to its end
            ask(page, THIRD)
            wait_streaming(messages(page).nth(5), "顺延到次年三月底")
            page.reload()
            expect(messages(page).nth(5)).to_contain_text("在系统中申请", timeout=60_000)
            expect(messages(page).nth(5).get_by_text("完成 ·")).to_be_visible(timeout=60_000)
            assert stored(home)[2].result is not None

            # the app killed mid-answer: after the restart the turn is kept as incomplete
            ask(page, FOURTH)
            wait_streaming(messages(page).nth(7), "顺延到次年三月底")
            time.sleep(2.5)  # what was streamed is stored every two seconds
            conversation = page_conversation(page)
            assert app.process is not None
            app.process.kill()
            app.process.wait()
            app.process = None
            page.goto(f"{app.start()}/?c={conversation}")
            cut = messages(page).nth(7)
            expect(cut).to_contain_text("（回答未完成）", timeout=120_000)
            expect(cut).to_contain_text("未休完的年假可以顺延到次年三月底")
            cut.scroll_into_view_if_needed()
            screenshot(page, "outlive-2-incomplete.png")
            [again] = stored(home)[3:]
            assert again.incomplete and again.partial.startswith("未休完的年假可以顺延")
            cut.get_by_role("button", name="重新提问").click()
            expect(messages(page).nth(7).get_by_text("完成 ·")).to_be_visible(timeout=90_000)
            expect(messages(page).nth(7)).to_contain_text("员工每年享有十五天带薪年假")
            expect(messages(page)).to_have_count(8)
            [answered] = stored(home)[3:]
            assert answered.result is not None and not answered.incomplete
        finally:
            app.stop()
            print((tmp_path / "streamlit.log").read_text(errors="replace")[-4000:])


def page_conversation(page: Any) -> str:
    return page.evaluate("() => new URLSearchParams(location.search).get('c')")


# ----- an upload cut off by killing the app ---------------------------------------------------

LONG_FILES = 3
LONG_ROWS = 750  # about 40 chunks: a few seconds of embedding each
# In the app's process, before it starts: one file per committed batch, as the 256-chunk batches
# of a large upload are (enough large files to fill several real batches would take many minutes
# to embed here), so that the app can be killed with some files committed and some not.
ONE_FILE_PER_BATCH = "import ingest._insert\n\ningest._insert.BATCH_CHUNKS = 1\n"


def long_files(folder: Path) -> list[str]:
    paths = []
    for n in range(LONG_FILES):
        path = folder / f"长文档{n}.txt"
        rows = (
            f"第{n}份第{i}条:编号{n * 10000 + i}的设备每{i % 7}周检修。" for i in range(LONG_ROWS)
        )
        path.write_text("\n".join(rows), encoding="utf-8")
        paths.append(str(path))
    return paths


def test_an_upload_cut_off_by_an_app_restart_is_shown_and_resumed(
    home: Path, page: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    from ingest.store import KnowledgeBase

    files = long_files(tmp_path)
    with FakeOllama() as ollama:
        hooks = tmp_path / "hooks"
        hooks.mkdir()
        (hooks / "sitecustomize.py").write_text(ONE_FILE_PER_BATCH, encoding="utf-8")
        env = {
            **app_env(home, ollama.url),
            "PYTHONPATH": f"{hooks}{os.pathsep}{REPO}",
            # a lost server's job is marked failed after 3 s without its heartbeat, not 60
            "JOB_STALE_S": "3",
        }
        app = StreamlitApp(env, tmp_path / "streamlit.log")
        try:
            page.goto(app.start())
            expect(page.get_by_test_id("stChatInputTextArea")).to_be_visible(timeout=120_000)
            page.get_by_test_id("stSidebarNavLink").filter(has_text="知识库").click()
            dropzone = page.get_by_test_id("stFileUploaderDropzoneInput")
            expect(dropzone).to_be_attached(timeout=180_000)
            dropzone.set_input_files(files)
            page.get_by_role("button", name=f"导入 {LONG_FILES} 个文件到「default」").click()
            # the first file is committed: its line is drawn once its batch is in
            expect(page.get_by_text(f"已处理 1/{LONG_FILES} 个文件")).to_be_visible(timeout=300_000)
            assert app.process is not None
            app.process.kill()  # SIGKILL: no clean-up of any kind
            app.process.wait()
            app.process = None

            page.goto(app.start())
            expect(page.get_by_test_id("stChatInputTextArea")).to_be_visible(timeout=120_000)
            page.get_by_test_id("stSidebarNavLink").filter(has_text="知识库").click()
            panel = page.locator(".st-key-zk-interrupted-upload")
            expect(panel).to_contain_text("上次导入没有完成", timeout=120_000)
            # the kill came after the first file's commit and before the last one's (the file
            # between may have made it or not)
            expect(panel).to_contain_text("已导入知识库")
            committed = panel.locator("p").filter(has_text="已导入知识库").inner_text()
            left = panel.locator("p").filter(has_text="尚未导入").inner_text()
            assert "长文档0.txt" in committed and "长文档2.txt" in left
            assert ("长文档1.txt" in committed) != ("长文档1.txt" in left)
            rest = left.count("长文档")
            panel.scroll_into_view_if_needed()
            screenshot(page, "outlive-3-upload-interrupted.png")
            panel.get_by_role("button", name=f"继续导入其余 {rest} 个文件").click()
            expect(page.get_by_text(f"导入完成:新增 {rest}")).to_be_visible(timeout=300_000)
            expect(page.locator(".st-key-zk-interrupted-upload")).to_have_count(0)
            expect(page.get_by_test_id("stMetricValue").first).to_have_text("4")  # documents
            page.reload()  # resumed: the panel does not come back
            expect(page.get_by_text("上传文档", exact=True)).to_be_visible(timeout=120_000)
            expect(page.locator(".st-key-zk-interrupted-upload")).to_have_count(0)
        finally:
            app.stop()
            print((tmp_path / "streamlit.log").read_text(errors="replace")[-4000:])
    with KnowledgeBase.open(make_settings(home)) as kb:
        assert kb.check() == []  # what `zhiku kb check` runs
        origins = sorted(Path(d.origin).name for d in kb.documents())
    assert origins == ["年假制度.md"] + [f"长文档{n}.txt" for n in range(LONG_FILES)]
