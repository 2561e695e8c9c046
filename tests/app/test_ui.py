"""The web app through Streamlit's `AppTest`: both pages run their real code against a small
knowledge base ingested with the real embedding model.

The app reads its settings from the environment on every run, so each test points it at its own
data home with `ZHIKU_HOME` and friends. Generation uses either no LLM (`LLM_BACKEND=none`) or
`FakeOllama` (`tests/app/ollama_server.py`): the real Ollama server cannot be installed where
these tests run, so the Ollama path is exercised against that fake speaking Ollama's HTTP API.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

# tests/app has no __init__.py (it would shadow the real `app`): the helper is top-level
from ollama_server import FakeOllama, evidence_reply
from streamlit.testing.v1 import AppTest
from support import MODELS_DIR, REPO, give_app_data, leftovers, make_settings

from ingest._embed import Embedder
from ingest._insert import ingest_paths
from ingest._upload import uploads_dir
from ingest.settings import Settings
from ingest.store import DocumentRecord, KnowledgeBase, list_kbs

APP = REPO / "app" / "main.py"
KB_PAGE = "pages/knowledge_base.py"
TIMEOUT = 60  # the first run may load the embedding model

DOCS = {
    "年假制度.md": "# 员工年假制度\n\n员工每年享有十五天带薪年假。"
    "年假需要提前两周在系统中申请。\n\n未休完的年假可以顺延到次年三月底。",
    "报销规定.txt": "差旅报销规定\n\n出差结束后三十天内提交报销单,逾期不予报销。"
    "住宿标准为每晚不超过五百元。",
    "网页安全.txt": "网页安全说明\n\n示例代码 <script>alert('xss')</script> 与 "
    "<img src=x onerror=alert(1)> 都应当原样显示为文字,不能被浏览器执行。",
}
ANSWER_TOKENS = ["员工每年", "享有十五天", "带薪年假", "[1]", "。"]


# ----- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data home the app is pointed at (cwd moves too, so no `.env` applies)."""
    data = tmp_path / "home"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ZHIKU_HOME", str(data))
    monkeypatch.setenv("ZHIKU_MODELS_DIR", str(MODELS_DIR))
    monkeypatch.setenv("LLM_BACKEND", "none")
    return data


@pytest.fixture
def settings_for(home: Path) -> Settings:
    return make_settings(home)


@pytest.fixture(scope="module")
def template_home(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    """The three documents in DOCS ingested once; tests get a copy (ingesting costs seconds).
    The copies' documents still come from this template's files: tests must not change them."""
    root = tmp_path_factory.mktemp("ui-template")
    folder = root / "docs"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    report = ingest_paths(make_settings(root / "home"), [folder], "default", embedder=embedder)
    assert [o.status for o in report.outcomes] == ["added"] * 3
    return root / "home"


@pytest.fixture
def filled(home: Path, template_home: Path) -> Path:
    """The default knowledge base with the three small documents in DOCS."""
    shutil.copytree(template_home, home)
    return home


def answering_responder(body: dict[str, Any]) -> Sequence[str]:
    """Follow-up rewriting gets the question back; anything else gets the fixed answer."""
    last = body["messages"][-1]["content"]
    if "改写后的问题" in last:
        return [last.rsplit("最后的问题:", 1)[-1].split("\n")[0] or "年假有几天?"]
    return ANSWER_TOKENS


@pytest.fixture
def ollama(monkeypatch: pytest.MonkeyPatch, home: Path) -> Iterator[FakeOllama]:
    with FakeOllama(models=["qwen2.5:3b"], responder=answering_responder) as server:
        monkeypatch.setenv("LLM_BACKEND", "ollama")
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        yield server


# ----- helpers ------------------------------------------------------------------------------


def warming(at: AppTest) -> bool:
    return "回答方式:准备中…" in texts(at.markdown)


def start() -> AppTest:
    """The chat page once the app's warm-up is over (it loads the models in the background
    while the page shows its progress; in a browser a fragment redraws the page when it is
    done, AppTest has no timers, so the test reruns the page)."""
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    deadline = time.monotonic() + TIMEOUT
    while warming(at):
        assert time.monotonic() < deadline, "the warm-up did not finish"
        time.sleep(0.2)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
    return at


def open_kb_page(at: AppTest) -> AppTest:
    at.switch_page(KB_PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def ask(at: AppTest, question: str) -> AppTest:
    at.chat_input[0].set_value(question).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def click(at: AppTest, label: str) -> AppTest:
    buttons = [b for b in (*at.button, *at.form_submit_button) if b.label == label]
    assert buttons, f"no button {label!r} in {[b.label for b in at.button]}"
    buttons[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def documents(settings: Settings) -> list[DocumentRecord]:
    with KnowledgeBase.open(settings) as kb:
        return kb.documents()


def html_of(at: AppTest) -> str:
    return "\n".join(h.value for h in at.html)


def running_import(at: AppTest) -> bool:
    return any(b.label == "取消导入" for b in at.button)


def finish_import(at: AppTest, timeout: float = 180.0) -> AppTest:
    """The upload runs in the background; the page polls it (in a browser, a fragment with
    run_every; AppTest has no timers, so the test reruns the page) until its result shows."""
    deadline = time.monotonic() + timeout
    while running_import(at):
        assert time.monotonic() < deadline, "the upload did not finish"
        time.sleep(0.3)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
    return at


def import_files(at: AppTest, label: str) -> AppTest:
    return finish_import(click(at, label))


def text_input(at: AppTest, label: str) -> Any:
    (found,) = [t for t in at.text_input if t.label == label]
    return found


def texts(elements: Any) -> str:
    return "\n".join(str(e.value) for e in elements)


def no_traceback(at: AppTest) -> None:
    assert not at.exception
    shown = texts(at.error) + texts(at.markdown) + texts(at.warning)
    assert "Traceback" not in shown


# ----- the chat page ------------------------------------------------------------------------


def test_opens_on_the_default_kb_ready_to_answer(filled: Path) -> None:
    at = start()
    assert at.selectbox(key="kb").value == "default"
    assert not at.chat_input[0].disabled
    assert "知库" in html_of(at)
    assert "回答方式:仅检索" in texts(at.markdown)  # st.badge is Markdown underneath
    no_traceback(at)


def test_the_page_draws_while_the_models_warm_up_and_a_question_needs_no_wait_after(
    filled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import app._background as background
    from app._warmup import warmup_steps

    release = threading.Event()
    loads: list[str] = []

    def slow_steps(embedder: Any, backend: Any, retrieve: Any) -> Any:
        def held_embedder() -> Any:
            loads.append("embedder")
            assert release.wait(TIMEOUT)  # a model that takes its time to load
            return embedder()

        return warmup_steps(held_embedder, backend, retrieve)

    monkeypatch.setattr(background, "warmup_steps", slow_steps)
    background.background(make_settings(filled)).forget_warmups()
    try:
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
        at.run()  # returns while the embedder is still "loading"
        assert not at.exception, [e.value for e in at.exception]
        assert warming(at)
        assert any("正在准备模型和索引" in str(p.text) for p in at.get("progress"))
        assert "加载嵌入模型" in texts(at.caption) and "首次检索" in texts(at.caption)
        assert not at.chat_input[0].disabled  # one can type while it loads
        release.set()
        deadline = time.monotonic() + TIMEOUT
        while warming(at):
            assert time.monotonic() < deadline, "the warm-up did not finish"
            time.sleep(0.2)
            at.run()
        assert "回答方式:仅检索" in texts(at.markdown)
        assert not at.get("progress")
        assert loads == ["embedder"]  # the warm-up ran once, not again on the reruns
        at = ask(at, "每年有几天年假?")
        assert "年假制度.md" in html_of(at)
        no_traceback(at)
    finally:
        release.set()
        background.background(make_settings(filled)).forget_warmups()


def test_an_empty_kb_invites_an_upload(home: Path) -> None:
    at = start()
    assert "还没有文档" in texts(at.info)
    assert at.chat_input[0].disabled


def test_answer_streams_with_citation_linked_to_a_source_card(
    filled: Path, ollama: FakeOllama
) -> None:
    at = ask(start(), "每年有几天年假?")
    answer = texts(at.markdown)
    assert "带薪年假" in answer
    assert "(#zk-src-0-1)" in answer  # the [1] marker links to the first card
    cards = html_of(at)
    assert 'id="zk-src-0-1"' in cards
    assert "员工年假制度" in cards and "年假制度.md" in cards
    assert "<mark>" in cards  # the supporting span is highlighted
    assert "相关度" in cards
    assert any(e.label == "展开原文段落" for e in at.expander)
    assert any(s.label.startswith("完成") and "秒" in s.label for s in at.status)
    assert "回答方式:Ollama · qwen2.5:3b" in texts(at.markdown)
    exported = texts(at.code)
    assert "**来源**" in exported and "[1] 《员工年假制度》 年假制度.md" in exported
    assert at.download_button  # the same Markdown as a file


def test_an_answer_off_the_question_gives_way_to_the_matching_sentence(
    filled: Path, ollama: FakeOllama
) -> None:
    at = ask(start(), "住宿标准是多少?")  # the scripted model still talks about annual leave
    assert "住宿标准为每晚不超过五百元" in texts(at.markdown)
    caption = texts(at.caption)
    assert "大模型原来的回答" in caption and "员工每年享有十五天带薪年假" in caption


def test_follow_up_questions_carry_the_conversation(filled: Path, ollama: FakeOllama) -> None:
    at = ask(start(), "每年有几天年假?")
    at = ask(at, "没休完的怎么办?")
    assert len(at.chat_message) == 4  # two questions, two answers
    condensing = [
        r["messages"][-1]["content"]
        for r in ollama.chat_requests
        if "改写后的问题" in r["messages"][-1]["content"]
    ]
    assert condensing and "每年有几天年假" in condensing[-1]
    click(at, "新对话")
    assert len(at.chat_message) == 0


def test_the_evidence_is_drawn_under_the_answer_apart_from_it(
    filled: Path, ollama: FakeOllama
) -> None:
    said = "未休完的年假可顺延至次年三月底。"  # the model's words; the source says 可以顺延到

    def responder(body: dict[str, Any]) -> Sequence[str]:
        if "改写后的问题" in body["messages"][-1]["content"]:
            return answering_responder(body)
        return evidence_reply(["未休完的年假"], said)(body)

    ollama.responder = responder
    at = ask(start(), "没休完的年假怎么办?")
    shown = [str(m.value) for m in at.markdown]
    [answer] = [m for m in shown if said in m]
    assert "可以顺延到" not in answer and "原文" not in answer, "the answer is the answer alone"
    [quote] = [m for m in shown if m.startswith("> ")]
    assert quote.startswith("> 未休完的年假可以顺延到次年三月底。") and "(#zk-src-0-1)" in quote
    assert any(c.value.startswith("原文") for c in at.caption)
    exported = texts(at.code)
    assert exported.index(said) < exported.index("**原文**") < exported.index("**来源**")
    at = ask(at, "那要提前多久申请?")
    condensing = [
        r["messages"][-1]["content"]
        for r in ollama.chat_requests
        if "改写后的问题" in r["messages"][-1]["content"]
    ]
    assert condensing and said in condensing[-1], "the follow-up reads the answer"
    assert "可以顺延到" not in condensing[-1] and "原文" not in condensing[-1]


def test_retrieval_only_shows_passages_and_how_to_enable_generation(filled: Path) -> None:
    at = ask(start(), "出差报销要在多久内提交?")
    guidance = texts(at.info)
    assert "仅检索" in guidance
    assert "ollama serve" in guidance and "ollama pull qwen2.5:3b" in guidance
    assert "make install" in guidance
    assert "报销规定.txt" in html_of(at)


def test_an_unrelated_question_is_refused_with_possibly_related_passages(filled: Path) -> None:
    at = ask(start(), "火星上的天气怎么样?")
    assert "知识库中没有找到相关内容" in texts(at.warning)
    assert "可能相关" in html_of(at)
    assert "可能相关的段落" in texts(at.markdown)


def test_ollama_down_gives_an_actionable_chinese_message(
    filled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("LLM_BACKEND", "ollama")
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{port}")
    at = start()
    message = texts(at.error)
    assert "无法连接到 Ollama" in message and "ollama serve" in message
    at = ask(at, "每年有几天年假?")
    no_traceback(at)
    # it still answers from retrieval, and says why
    assert "年假制度.md" in html_of(at)
    assert "仅检索" in texts(at.info)


def test_a_missing_ollama_model_says_how_to_pull_it(
    filled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeOllama(models=["llama3:latest"]) as server:
        monkeypatch.setenv("LLM_BACKEND", "ollama")
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        at = start()
    message = texts(at.error)
    assert "ollama pull qwen2.5:3b" in message
    assert "llama3:latest" in message
    no_traceback(at)


def test_html_in_documents_and_answers_is_shown_as_text(
    filled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    echo = ["示例代码 ", "<img src=x onerror=alert(1)>", " 会显示为文字", "[1]。"]
    with FakeOllama(models=["qwen2.5:3b"], reply_tokens=echo) as server:
        monkeypatch.setenv("LLM_BACKEND", "ollama")
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        at = ask(start(), "网页安全说明里的示例代码是什么?")
    cards = html_of(at)
    assert "&lt;script&gt;alert(&#x27;xss&#x27;)&lt;/script&gt;" in cards
    assert "&lt;img src=x onerror=alert(1)&gt;" in cards
    assert "<script" not in cards and "<img" not in cards
    answer = texts(at.markdown)
    assert r"\<img src=x onerror=alert(1)\>" in answer  # Markdown-escaped: shown, not parsed
    assert "<img" not in answer.replace(r"\<img", "")


# ----- the knowledge-base page --------------------------------------------------------------


def test_upload_saves_ingests_and_reports_every_file(home: Path, settings_for: Settings) -> None:
    at = open_kb_page(start())
    assert "单个文件不超过 100 MB" in texts(at.caption)
    assert "每次上传合计不超过 500 MB" in texts(at.caption)
    uploader = at.file_uploader[0]
    assert uploader.accept_multiple_files
    files = [
        ("年假制度.md", DOCS["年假制度.md"].encode(), "text/markdown"),
        ("../../etc/报销规定.txt", DOCS["报销规定.txt"].encode(), "text/plain"),
        ("空.txt", b"", "text/plain"),
        ("年假制度.md", "# 另一份\n\n不同的内容:加班可以调休。".encode(), "text/markdown"),
    ]
    uploader.set_value(files).run()
    import_files(at, "导入 4 个文件到「default」")
    (table,) = [d.value for d in at.dataframe if "结果" in d.value.columns]
    results = dict(zip(table["文件"], table["结果"], strict=False))
    assert results["../../etc/报销规定.txt"] == "新增"
    assert results["空.txt"] == "失败"
    reasons = " ".join(table["说明"])
    assert "空文件" in reasons
    assert "另存为「年假制度 (2).md」" in reasons
    assert any(s.label.startswith("导入完成") for s in at.status)
    stored = sorted(
        p.name for p in uploads_dir(settings_for, "default").iterdir() if not p.name.startswith(".")
    )
    assert stored == ["年假制度 (2).md", "年假制度.md", "报销规定.txt"]
    assert not (home / "etc").exists()
    # the document list reads the store: three documents, nothing cached
    (docs,) = [d.value for d in at.dataframe if "标题" in d.value.columns]
    assert len(docs) == 3
    # the same files again: nothing changes, and the table says so
    at.file_uploader[0].set_value(files[:2]).run()
    import_files(at, "导入 2 个文件到「default」")
    (table,) = [d.value for d in at.dataframe if "结果" in d.value.columns]
    assert list(table["结果"]) == ["跳过", "跳过"]
    assert "内容未变化" in " ".join(table["说明"])  # the ingester's reason, in Chinese


def test_a_running_upload_shows_its_speed_and_can_be_cancelled_and_resumed(
    home: Path, settings_for: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.state import open_state
    from app.state.jobs import list_jobs
    from app.ui.imports import JobProgress

    # One file per committed batch, as the 256-chunk batches of a large upload are: enough
    # small files to fill several real batches would take minutes to embed here.
    monkeypatch.setattr("ingest._insert.BATCH_CHUNKS", 1)
    # The moment of the click made deterministic: the run pauses once the first file is
    # committed (at the next file's planning), until the test has pressed 取消导入.
    first_committed, clicked = threading.Event(), threading.Event()
    planned = JobProgress.chunks_planned

    def pausing(self: JobProgress, chunks: int) -> None:
        if self.done == 1 and not first_committed.is_set():
            first_committed.set()
            clicked.wait(timeout=120)
        planned(self, chunks)

    monkeypatch.setattr(JobProgress, "chunks_planned", pausing)
    files = [
        (f"制度{i}.txt", f"第{i}条制度:员工第{i}年的年假为{i + 10}天。".encode(), "text/plain")
        for i in range(5)
    ]
    at = open_kb_page(start())
    at.file_uploader[0].set_value(files).run()
    click(at, "导入 5 个文件到「default」")
    assert first_committed.wait(timeout=180)
    at.run()
    assert any(s.label.startswith("正在导入") for s in at.status)
    (line,) = [p.proto.text for p in at.get("progress")]
    assert "已处理 1/5 个文件" in line
    assert "段/秒" in line and "预计还需" in line
    # a reload (a new session) finds the running upload, and the state database reports it
    reloaded = open_kb_page(start())
    assert any(s.label.startswith("正在导入") for s in reloaded.status)
    assert running_import(reloaded)
    (stored,) = list_jobs(open_state(settings_for), "default")
    assert (stored.kind, stored.state, stored.files_total) == ("upload", "running", 5)
    click(at, "取消导入")
    assert any(s.label.startswith("正在取消") for s in at.status)
    clicked.set()
    finish_import(at)
    (table,) = [d.value for d in at.dataframe if "结果" in d.value.columns]
    results = dict(zip(table["文件"], table["结果"], strict=True))
    assert results == {"制度0.txt": "新增"} | {f"制度{i}.txt": "已取消" for i in range(1, 5)}
    assert " ".join(table["说明"]).count("已取消，未导入") == 4
    assert any(s.label.startswith("导入已取消") for s in at.status)
    (stored,) = list_jobs(open_state(settings_for), "default")
    assert stored.state == "done"
    assert [f["status"] for f in stored.files] == ["added"] + ["failed"] * 4
    with KnowledgeBase.open(settings_for) as kb:
        assert kb.check() == []  # what `zhiku kb check` runs
        assert [Path(d.origin).name for d in kb.documents()] == ["制度0.txt"]

    # the same files again: the finished one is skipped, the rest come in
    monkeypatch.setattr(JobProgress, "chunks_planned", planned)
    at.file_uploader[0].set_value(files).run()
    import_files(at, "导入 5 个文件到「default」")
    (table,) = [d.value for d in at.dataframe if "结果" in d.value.columns]
    assert list(table["结果"]) == ["跳过"] + ["新增"] * 4
    with KnowledgeBase.open(settings_for) as kb:
        assert kb.check() == []
        assert len(kb.documents()) == 5


def test_the_page_sees_what_the_cli_ingested(
    filled: Path, settings_for: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    at = open_kb_page(start())
    assert at.metric[0].value == "3"
    extra = tmp_path / "加班.txt"
    extra.write_text("加班规定\n\n工作日加班可以申请调休。", encoding="utf-8")
    ingest_paths(settings_for, [extra], "default", embedder=embedder)  # as `zhiku ingest` does
    at.run()
    assert at.metric[0].value == "4"


def test_deleting_a_document_asks_first(filled: Path, settings_for: Settings) -> None:
    at = open_kb_page(start())
    doc = next(d for d in documents(settings_for) if d.title == "差旅报销规定")
    at.selectbox(key="kb_doc_choice").set_value(doc.doc_id).run()
    click(at, "删除")
    assert "确定从知识库「default」删除「差旅报销规定」吗" in texts(at.warning)
    click(at, "取消")
    assert len(documents(settings_for)) == 3
    at.selectbox(key="kb_doc_choice").set_value(doc.doc_id).run()
    click(at, "删除")
    click(at, "确认删除")
    assert "已删除「差旅报销规定」" in texts(at.success)
    titles = [d.title for d in documents(settings_for)]
    assert "差旅报销规定" not in titles and len(titles) == 2
    # the file came from the command line, not an upload: it is the user's and stays
    assert Path(doc.origin).exists()


def test_reingest_a_document_and_when_its_file_is_gone(
    filled: Path, settings_for: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    own = tmp_path / "加班.txt"  # a file of this test's own, since it deletes it
    own.write_text("加班规定\n\n工作日加班可以申请调休。", encoding="utf-8")
    ingest_paths(settings_for, [own], "default", embedder=embedder)
    at = open_kb_page(start())
    doc = next(d for d in documents(settings_for) if d.title == "加班规定")
    at.selectbox(key="kb_doc_choice").set_value(doc.doc_id).run()
    click(at, "重新导入")
    assert "已重新导入「加班规定」" in texts(at.success)
    Path(doc.origin).unlink()
    at.selectbox(key="kb_doc_choice").set_value(doc.doc_id).run()
    click(at, "重新导入")
    assert "原文件已不存在" in texts(at.error)
    assert "已不存在" in list(at.dataframe[-1].value["原文件"])


def test_create_switch_and_delete_a_kb_with_confirmation(
    filled: Path, settings_for: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    at = open_kb_page(start())
    text_input(at, "新建知识库").input("项目资料")
    click(at, "新建并切换")
    assert at.selectbox(key="kb").value == "项目资料"
    assert "项目资料" in list_kbs(settings_for)
    note = "# 项目\n\n项目代号是青鸟。".encode()
    at.file_uploader[0].set_value([("说明.md", note, "text/markdown")])
    at.run()
    import_files(at, "导入 1 个文件到「项目资料」")
    assert uploads_dir(settings_for, "项目资料").is_dir()
    # what the knowledge base gathered besides its documents goes with it
    from app._conversations import kb_has_conversations
    from app._evalset import evalset_dir
    from ingest._originals import originals_dir

    own = tmp_path / "项目" / "进度.txt"  # from the command line: its copy is kept
    own.parent.mkdir()
    own.write_text("项目进度\n\n青鸟项目下个月上线。", encoding="utf-8")
    ingest_paths(settings_for, [own], "项目资料", embedder=embedder)
    assert originals_dir(settings_for, "项目资料").is_dir()
    give_app_data(settings_for, "项目资料", tmp_path / "watched")
    at.run()  # the page starts the bound folder's watcher
    click(at, "删除「项目资料」")
    assert "确定永久删除知识库「项目资料」吗" in texts(at.error)
    click(at, "取消")
    assert "项目资料" in list_kbs(settings_for)
    click(at, "删除「项目资料」")
    click(at, "确认删除")
    assert "项目资料" not in list_kbs(settings_for)
    assert not uploads_dir(settings_for, "项目资料").exists()
    assert not kb_has_conversations(settings_for, "项目资料")
    assert not evalset_dir(settings_for, "项目资料").exists()
    assert leftovers(settings_for, "项目资料") == []  # kept copies and the binding too
    assert own.is_file()
    assert at.selectbox(key="kb").value == "default"
    # switching back and forth through the sidebar keeps each knowledge base's view
    assert at.metric[0].value == "3"


def test_a_kb_deletion_that_stops_says_what_is_left_and_deleting_again_finishes(
    filled: Path, settings_for: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    give_app_data(settings_for, "default", tmp_path / "watched")
    at = open_kb_page(start())

    def refused(settings: Settings, name: str) -> None:
        raise PermissionError(13, "Permission denied")

    with monkeypatch.context() as patch:  # the evaluation set cannot be deleted
        patch.setattr("app._owned.delete_kb_evalset", refused)
        click(at, "删除「default」")
        click(at, "确认删除")
    said = texts(at.error)
    assert "已删除：监视文件夹的绑定、数据来源(网页、网站、文件夹)及同步记录、文档和索引" in said
    assert "尚未删除：评测题。请再次删除以完成" in said
    assert "default" not in list_kbs(settings_for)  # its documents went first
    assert "上次没有删除完" in texts(at.caption)
    click(at, "删除「default」")
    click(at, "确认删除")
    assert "已删除知识库「default」" in texts(at.success)
    assert leftovers(settings_for, "default") == []
    no_traceback(at)


def test_an_invalid_kb_name_is_explained_in_chinese(filled: Path) -> None:
    at = open_kb_page(start())
    text_input(at, "新建知识库").input("../坏名字")
    click(at, "新建并切换")
    assert "无法用「../坏名字」作为知识库名称" in texts(at.error)
    assert at.selectbox(key="kb").value == "default"


def test_sidebar_settings_apply_to_the_next_answer(filled: Path, ollama: FakeOllama) -> None:
    at = start()
    at.selectbox(key="backend").set_value("none").run()
    at.slider(key="top_k").set_value(1).run()
    at = ask(at, "出差报销要在多久内提交?")
    assert "仅检索" in texts(at.info)
    assert ollama.chat_requests == []  # the LLM was not asked
    assert html_of(at).count('class="zk-card-head"') == 1


# ----- checking an answer: the source at its sentence, stored conversations, the inspector ---


def test_a_text_source_opens_beside_the_chat_with_the_span_marked(
    filled: Path, ollama: FakeOllama
) -> None:
    at = ask(start(), "每年有几天年假?")
    at = click(at, "[1]")  # the marker's button under the answer
    viewer = html_of(at)
    assert 'class="zk-viewer-text"' in viewer
    assert '<mark id="zk-viewer-mark">员工每年享有十五天带薪年假' in viewer
    assert "员工年假制度" in texts(at.markdown)  # the viewer's title line
    assert any(b.label == "查看原文" for b in at.button)  # the card's own button
    no_traceback(at)


def test_a_conversation_reopens_in_a_new_session_from_its_url(
    filled: Path, ollama: FakeOllama, settings_for: Settings
) -> None:
    from app._conversations import ConversationStore

    at = ask(start(), "每年有几天年假?")
    stored = ConversationStore(settings_for, "default").list()
    assert [c.title for c in stored] == ["每年有几天年假?"]
    assert at.query_params["c"] == stored[0].id
    # a browser reload is a new session with the same URL
    again = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    again.query_params["c"] = stored[0].id
    again.run()
    assert "带薪年假" in texts(again.markdown)
    assert 'id="zk-src-0-1"' in html_of(again)  # its source cards are back
    assert any(b.label.startswith("每年有几天年假?") for b in again.button)  # in the sidebar
    # "新对话" leaves it in the list and starts an empty one
    again = click(again, "新对话")
    assert 'id="zk-src-0-1"' not in html_of(again)
    assert "c" not in again.query_params


def test_an_answer_an_app_restart_cut_off_is_shown_incomplete_and_asked_again(
    filled: Path, settings_for: Settings
) -> None:
    from app._conversations import ConversationStore, Turn

    store = ConversationStore(settings_for, "default")
    conversation = store.create()
    store.append(conversation, Turn("每年有几天年假?", incomplete=True, partial="员工每年享有"))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params["c"] = conversation  # a reload after the restart
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "（回答未完成）" in texts(at.warning)
    assert "员工每年享有" in texts(at.markdown)
    at = click(at, "重新提问")
    assert "（回答未完成）" not in texts(at.warning)
    assert "年假制度.md" in html_of(at)  # answered (from retrieval: no LLM here), in its place
    [turn] = store.turns(conversation)
    assert not turn.incomplete and turn.result is not None
    no_traceback(at)


def test_two_app_servers_over_one_postgresql_share_conversations(
    filled: Path,
    ollama: FakeOllama,
    template_home: Path,
    postgres_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two web apps, each with its own data home, sharing STATE_URL: a conversation asked on
    one opens, with its answer and source cards, on the other; feedback given there is kept."""
    from app._conversations import ConversationStore, Feedback

    monkeypatch.setenv("STATE_URL", postgres_settings.state_url)
    at = ask(start(), "每年有几天年假?")
    conversation = at.query_params["c"]
    other_home = tmp_path / "other-home"
    shutil.copytree(template_home, other_home)
    monkeypatch.setenv("ZHIKU_HOME", str(other_home))  # the second server
    other = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    other.query_params["c"] = conversation
    other.run()
    assert not other.exception, [e.value for e in other.exception]
    assert "带薪年假" in texts(other.markdown)
    assert 'id="zk-src-0-1"' in html_of(other)
    assert any(b.label.startswith("每年有几天年假?") for b in other.button)
    shared = make_settings(other_home, state_url=postgres_settings.state_url)
    ConversationStore(shared, "default").set_feedback(conversation, 0, Feedback(1))
    first = make_settings(filled, state_url=postgres_settings.state_url)
    assert ConversationStore(first, "default").turns(conversation)[0].feedback == Feedback(1)


def test_the_inspector_explains_a_question(filled: Path) -> None:
    at = start()
    at.switch_page("pages/inspector.py").run()
    assert not at.exception, [e.value for e in at.exception]
    at.text_input[0].set_value("住宿标准是多少?")
    at = click(at, "检索")
    assert "会放进提示词" in texts(at.success)
    table = at.table[0].value
    assert "语义相似度" in table.columns and "报销规定" in " ".join(table["文档"])
    assert "zk-token" in html_of(at)
    no_traceback(at)


def test_several_knowledge_bases_answer_one_question(
    filled: Path, ollama: FakeOllama, settings_for: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    from app._conversations import ConversationStore

    folder = tmp_path / "hr"
    folder.mkdir()
    (folder / "住宿.txt").write_text(
        "出差住宿规定\n\n出差住宿标准为每晚不超过六百元。", encoding="utf-8"
    )
    ingest_paths(settings_for, [folder], "hr", embedder=embedder)
    at = start()
    at.multiselect(key="zk-also-default").set_value(["hr"]).run()
    at = ask(at, "住宿标准是多少?")
    shown = texts(at.markdown)
    assert "知识库「default」" in shown and "知识库「hr」" in shown
    cards = html_of(at)
    assert 'id="zk-src-0-1"' in cards and 'id="zk-src-0k1-1"' in cards  # one set per base
    assert "住宿.txt" in cards and "报销规定.txt" in cards
    turn = ConversationStore(settings_for, "default").turns(
        ConversationStore(settings_for, "default").list()[0].id
    )[0]
    assert list(turn.others) == ["hr"] and "六百元" in turn.others["hr"].passages[0].text
    no_traceback(at)


def test_an_embedded_model_that_traps_at_start_is_reported_once_and_answers_go_on(
    filled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CPU without an instruction the llama.cpp build uses (SIGILL) cannot be had here: the
    worker is the protocol-speaking test double `fake_worker.py`, which traps where the real one
    would, at its start-up self-check."""
    import sys

    import app._llm_llamacpp as llamacpp

    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF\x03\x00\x00\x00")
    worker = Path(__file__).with_name("fake_worker.py")
    monkeypatch.setattr(
        llamacpp.WorkerSpec, "argv", lambda self: [sys.executable, str(worker), "sigill-at-check"]
    )
    monkeypatch.setattr(llamacpp, "llamacpp_installed", lambda settings=None: True)
    with socket.socket() as probe:  # no Ollama: auto falls to the embedded model
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("LLM_BACKEND", "auto")
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("LLAMACPP_MODEL_PATH", str(gguf))
    llamacpp.stop_workers()
    try:
        at = start()
        warning = texts(at.warning)
        assert "SIGILL" in warning and "指令集" in warning and "Ollama" in warning
        assert "回答方式:仅检索" in texts(at.markdown)
        at = ask(at, "每年有几天年假?")
        no_traceback(at)
        assert "年假制度.md" in html_of(at)  # answered from retrieval
    finally:
        llamacpp.stop_workers()


def test_a_web_site_is_added_on_the_kb_page_synced_and_its_history_shown(
    home: Path, settings_for: Settings, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from web_site import WebSite, html

    from app.sources import SourceStore

    monkeypatch.setenv("WEB_DELAY_S", "0")
    with WebSite() as site:
        site.put("/help/", html("客服中心", "<h1>客服中心</h1><p>退货请在签收后七天内申请。</p>"))
        at = open_kb_page(start())
        next(t for t in at.text_input if t.label == "网址").set_value(site.url("/help/"))
        next(s for s in at.selectbox if s.label == "同步").set_value("每 30 分钟")
        next(c for c in at.checkbox if c.label == "整个网站").check()
        click(at, "添加")
        assert "已添加" in " ".join(s.value for s in at.success)
        store = SourceStore(settings_for)
        [source] = store.list("default")
        assert source.kind == "site" and source.schedule.every_s == 1800
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not store.get(source.id).history:
            time.sleep(0.5)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
    assert [d.source for d in documents(settings_for)] == [site.url("/help/")]
    shown = " ".join(c.value for c in at.caption)
    assert "新增 1" in shown and "每 30 分钟" in " ".join(str(m.value) for m in at.metric)
