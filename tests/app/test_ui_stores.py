"""The web app's pages that read and change the store, through Streamlit's `AppTest`, on each
store: FAISS + SQLite, and Milvus (the real Milvus core on 127.0.0.1, started by the tests).
The knowledge-base page uploads and deletes, the source viewer (查看原文) opens a scanned PDF
with the boxes of the OCR lines it cited drawn, and the inspector's switch leaves a chunk out
of retrieval for every app server using the knowledge base.

The Milvus knowledge base is the FAISS one moved by `migrate_kb` (as `zhiku kb migrate` does:
no re-embedding, no second OCR run), and the FAISS copy is then deleted, so the app cannot be
reading it instead. No LLM: the pages tested here do not generate (`LLM_BACKEND=none`).
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from support import REPO, make_settings
from test_ui import (
    APP,
    DOCS,
    TIMEOUT,
    ask,
    click,
    html_of,
    import_files,
    no_traceback,
    open_kb_page,
    start,
    texts,
)
from test_ui import home as home  # the fixture: an empty data home the app is pointed at

from app.ui.resources import forget_kb
from ingest._embed import Embedder
from ingest._insert import ingest_paths
from ingest.settings import Settings
from ingest.store import KnowledgeBase
from ingest.store.migrate import migrate_kb

SCANNED = "维护手册.pdf"
INSPECTOR = "pages/inspector.py"


def ocr_ready() -> bool:
    from ingest.load import ocr

    return ocr.unavailable() is None


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    """DOCS and a scanned two-page PDF (read by OCR) ingested into FAISS once per module."""
    root = tmp_path_factory.mktemp("stores-template")
    folder = root / "docs"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    if ocr_ready():
        sys.path.insert(0, str(REPO / "tests" / "ingest" / "loaders"))
        from ocr_support import PAGE_ONE, PAGE_THREE, scanned_pdf

        scanned_pdf(folder / SCANNED, [PAGE_ONE, PAGE_THREE])
    report = ingest_paths(make_settings(root / "home"), [folder], "default", embedder=embedder)
    assert {o.status for o in report.outcomes} == {"added"}
    return root / "home"


@pytest.fixture(params=["faiss", "milvus"])
def store(
    request: pytest.FixtureRequest, home: Path, template: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """The app's data home holding the template's knowledge base in the store of the param;
    the app is pointed at that store through the environment, as a user would."""
    shutil.copytree(template, home)
    if request.param == "faiss":
        return make_settings(home)
    server: Settings = request.getfixturevalue("milvus_settings")
    settings = make_settings(
        home,
        vector_store="milvus",
        milvus_uri=server.milvus_uri,
        milvus_index_type=server.milvus_index_type,
    )
    report = migrate_kb(settings, "default", "milvus")
    assert report.ok, report.problems
    shutil.rmtree(settings.kbs_dir / "default")  # only Milvus holds it now
    monkeypatch.setenv("VECTOR_STORE", "milvus")
    monkeypatch.setenv("MILVUS_URI", settings.milvus_uri)
    monkeypatch.setenv("MILVUS_INDEX_TYPE", settings.milvus_index_type)
    return settings


def open_kb(settings: Settings) -> KnowledgeBase:
    kb = KnowledgeBase.open(settings)
    assert kb.store == settings.vector_store
    return kb


def test_the_kb_page_uploads_and_deletes_on_each_store(store: Settings) -> None:
    with open_kb(store) as kb:
        before = len(kb.documents())
    at = open_kb_page(start())
    assert at.metric[0].value == str(before)
    note = "加班规定\n\n工作日加班可以申请调休,周末加班发放加班费。".encode()
    at.file_uploader[0].set_value([("加班.txt", note, "text/plain")]).run()
    import_files(at, "导入 1 个文件到「default」")
    (table,) = [d.value for d in at.dataframe if "结果" in d.value.columns]
    assert list(table["结果"]) == ["新增"]
    assert at.metric[0].value == str(before + 1)
    with open_kb(store) as kb:
        doc = next(d for d in kb.documents() if d.title == "差旅报销规定")
    at.selectbox(key="kb_doc_choice").set_value(doc.doc_id).run()
    click(at, "删除")
    click(at, "确认删除")
    assert "已删除「差旅报销规定」" in texts(at.success)
    with open_kb(store) as kb:
        titles = {d.title for d in kb.documents()}
        assert "加班规定" in titles and "差旅报销规定" not in titles
        assert kb.check() == []
    no_traceback(at)


def test_a_text_source_opens_beside_the_chat_on_each_store(store: Settings) -> None:
    at = ask(start(), "出差报销要在多久内提交?")
    click(at, "查看原文")
    viewer = html_of(at)
    assert 'class="zk-viewer-text"' in viewer
    assert re.search(r'<mark id="zk-viewer-mark">[^<]*三十天内提交报销单', viewer)
    no_traceback(at)


def test_a_scanned_page_opens_with_the_cited_ocr_lines_boxed_on_each_store(
    store: Settings,
) -> None:
    if not ocr_ready():
        pytest.skip("OCR is unavailable here")
    with open_kb(store) as kb:
        doc = next(d for d in kb.documents() if d.origin.endswith(SCANNED))
        chunk = next(c for c in kb.document_chunks(doc.doc_id) if "八十度" in c.text)
        layout = kb.page_layout(doc.doc_id, chunk.page_seq)
        assert layout is not None and layout.lines_between(chunk.start, chunk.end)
    at = ask(start(), "冷却塔风机的轴承温度不得超过多少度?")
    assert "OCR 识别" in html_of(at)  # the card says the passage was read from an image
    click(at, "查看原文")
    assert not at.exception, [e.value for e in at.exception]
    page = html_of(at)
    assert 'class="zk-viewer-page" data-page="2"' in page
    found = re.search(r"class=\"zk-viewer-found\" data-boxes='([^']*)'", page)
    assert found, "the viewer drew no highlight"
    boxes = json.loads(found.group(1).replace("&quot;", '"'))
    assert boxes, "no OCR line box was drawn on the page"
    no_traceback(at)


def inspector(at: AppTest) -> AppTest:
    at.switch_page(INSPECTOR).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def choose_document(at: AppTest, doc_id: str) -> AppTest:
    at.selectbox(key="inspect_doc").set_value(doc_id).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def search_in_inspector(at: AppTest, question: str) -> AppTest:
    at.text_input[0].set_value(question)
    return click(at, "检索")


def retrieved(at: AppTest) -> str:
    """The inspector's retrieved passages (not the chunk list of its other tab)."""
    return "\n".join(h.value for h in at.html if "zk-hit-text" in h.value)


def test_the_inspector_switch_leaves_a_chunk_out_for_every_server_on_each_store(
    store: Settings,
) -> None:
    question = "住宿标准是多少?"
    at = search_in_inspector(inspector(start()), question)
    assert "每晚不超过五百元" in retrieved(at)
    with open_kb(store) as kb:
        doc = next(d for d in kb.documents() if d.title == "差旅报销规定")
        (target,) = [c for c in kb.document_chunks(doc.doc_id) if "五百元" in c.text]
    choose_document(at, doc.doc_id)
    switch = at.toggle(key=f"inspect_on_{target.chunk_key}")
    assert switch.value is True
    switch.set_value(False).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "其中 1 个不参与检索" in texts(at.caption)
    at = search_in_inspector(at, question)
    assert "1 个段落已设为不参与检索" in texts(at.caption)
    assert retrieved(at) and "每晚不超过五百元" not in retrieved(at)
    with open_kb(store) as kb:
        assert kb.excluded_keys() == {target.chunk_key}

    # another app server over the same knowledge base (its own instance of the store: for
    # Milvus its own client): the chunk is off there too, and switched back on there, it is
    # retrieved here again
    forget_kb(store, "default")
    other = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    other.run()
    other = choose_document(inspector(other), doc.doc_id)
    switch = other.toggle(key=f"inspect_on_{target.chunk_key}")
    assert switch.value is False
    switch.set_value(True).run()
    assert not other.exception, [e.value for e in other.exception]
    at = search_in_inspector(at, question)
    assert "每晚不超过五百元" in retrieved(at)
    with open_kb(store) as kb:
        assert kb.excluded_keys() == set()
    no_traceback(at)
