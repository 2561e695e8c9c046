"""The source viewer beside the chat: the original opened at a cited span. A PDF shows its page
as an image with the span's boxes drawn (`app._source.render_pdf_page`); any other format, or a
PDF whose file is gone, shows the stored page text with the span marked and scrolled to.

What is open is kept in session state as plain values (`OpenSource`), so reruns redraw it and
the chat page decides the layout: a column beside the conversation while a source is open.
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import streamlit as st

from app._source import render_pdf_page
from app.access import Principal
from app.service import Service, ServiceError
from app.ui.login import current_user
from app.ui.markdown import escape_markdown, file_name
from app.ui.resources import get_service
from ingest.settings import Settings
from ingest.store import DocumentRecord, StoreError

VIEW_KEY = "zk_viewer"


@dataclass(frozen=True)
class OpenSource:
    kb: str
    doc_id: str
    title: str
    source: str
    doc_type: str
    page: int | None  # 1-based PDF page, None for formats without pages
    page_seq: int
    start: int  # the span, in page offsets
    end: int
    quote: str
    number: int  # the citation marker it was opened from
    shown_page: int | None = None  # a PDF page the user turned to; None = the cited one


def open_source(source: OpenSource) -> None:
    """An `on_click` callback: open `source` beside the chat."""
    st.session_state[VIEW_KEY] = asdict(source)


def close_source() -> None:
    st.session_state.pop(VIEW_KEY, None)


def current_source() -> OpenSource | None:
    data = st.session_state.get(VIEW_KEY)
    return OpenSource(**data) if data else None


def _turn_page(source: OpenSource, page: int) -> None:
    st.session_state[VIEW_KEY] = asdict(source) | {"shown_page": page}


@st.cache_data(show_spinner="正在渲染页面…", max_entries=64)
def _page_image(
    path: str,
    stamp: float,
    number: int,
    quote: str,
    ocr_boxes: tuple[tuple[int, int, int, int], ...] = (),
    ocr_size: tuple[int, int] = (0, 0),
) -> dict[str, object]:
    image = render_pdf_page(Path(path), number, quote, ocr_boxes=ocr_boxes, ocr_size=ocr_size)
    return asdict(image)


def _ocr_lines(
    service: Service, who: Principal, source: OpenSource
) -> tuple[tuple, tuple[int, int]]:
    """The boxes of the OCR lines the cited span was read from, and the size of the image
    they refer to; nothing for a page that had a text layer."""
    layout = service.page_layout(who, source.kb, source.doc_id, source.page_seq)
    if layout is None:
        return (), (0, 0)
    boxes = tuple(line.box for line in layout.lines_between(source.start, source.end))
    return boxes, (layout.width, layout.height)


def _text_view(text: str, lo: int, hi: int) -> None:
    lo, hi = max(0, min(lo, len(text))), max(0, min(hi, len(text)))
    if hi > lo:
        body = (
            html.escape(text[:lo])
            + f'<mark id="zk-viewer-mark">{html.escape(text[lo:hi])}</mark>'
            + html.escape(text[hi:])
        )
    else:
        body = html.escape(text)
    # Our own script, run in the page: it scrolls the box (not the window) to the mark. The
    # document's text is escaped above, so nothing of it can run.
    st.html(
        f'<div class="zk-viewer-text" id="zk-viewer-text">{body}</div>'
        "<script>(function(){const m=document.getElementById('zk-viewer-mark');"
        "if(!m)return;const b=m.closest('.zk-viewer-text');"
        "b.scrollTop=Math.max(0,m.offsetTop-b.offsetTop-b.clientHeight/3);})();</script>",
        unsafe_allow_javascript=True,
    )


def viewer_panel(settings: Settings) -> None:
    """The open source, or nothing when none is open."""
    source = current_source()
    if source is None:
        return
    st.html('<span class="zk-viewer"></span>')
    head, close = st.columns([6, 1], vertical_alignment="center")
    where = f" · 第 {source.page} 页" if source.page is not None else ""
    head.markdown(
        f"**[{source.number}] {escape_markdown(source.title)}**  \n"
        f":gray[{escape_markdown(file_name(source.source))}{where}]"
    )
    close.button(
        "",
        icon=":material/close:",
        key="zk_viewer_close",
        on_click=close_source,
        help="关闭原文",
        type="tertiary",
    )
    # through the service, as the person using the page: one whose right to read the
    # knowledge base was taken away since the answer sees no more of it
    service, who = get_service(settings), current_user()
    doc = _document(service, who, source)
    if doc is None:
        st.warning("这篇文档已不在知识库中,无法打开原文。", icon=":material/warning:")
        _quote_only(source)
        return
    pdf = source.doc_type == "pdf"
    path = service.source_file(who, source.kb, doc.doc_id) if pdf else None
    if pdf and path is not None and source.page is not None:
        _pdf_view(source, path, doc.pages, *_ocr_lines(service, who, source))
        return
    if pdf:
        why = (
            "也无法从共享的状态数据库取回"
            if service.storage(who, source.kb).originals_in_database
            else "也没有保存副本(KEEP_ORIGINALS=false)"
        )
        st.info(f"原 PDF 文件已不在原处,{why}:下面显示导入时提取的文字。", icon=":material/info:")
    stored = service.page_text(
        who, source.kb, source.doc_id, source.page_seq, source.start, source.end
    )
    if source.source.startswith(("http://", "https://")):
        st.link_button("打开网页原文", source.source, icon=":material/open_in_new:")
    st.caption(
        "原文(导入时提取的文字),引用的句子已高亮"
        if stored.span != (0, 0)
        else "原文(导入时提取的文字)"
    )
    _text_view(stored.text, *stored.span)


def _document(service: Service, who: Principal, source: OpenSource) -> DocumentRecord | None:
    """The cited document, or None when it (or its knowledge base) is gone, or the person may
    not read it (any more)."""
    try:
        return service.document(who, source.kb, source.doc_id)
    except (ServiceError, StoreError):
        return None


def _quote_only(source: OpenSource) -> None:
    st.html(f'<div class="zk-viewer-text"><mark>{html.escape(source.quote)}</mark></div>')


def _pdf_view(
    source: OpenSource,
    path: Path,
    pages: int,
    ocr_boxes: tuple[tuple[int, int, int, int], ...] = (),
    ocr_size: tuple[int, int] = (0, 0),
) -> None:
    cited = source.page or 1
    shown = source.shown_page or cited
    quote = source.quote if shown == cited else ""
    if shown != cited:
        ocr_boxes = ()
    try:
        image = _page_image(str(path), path.stat().st_mtime, shown, quote, ocr_boxes, ocr_size)
    except Exception as exc:  # a damaged file: say so, keep the chat working
        st.error(f"无法渲染这一页:{escape_markdown(str(exc))}", icon=":material/error:")
        return
    total = int(image["pages"])  # type: ignore[call-overload]
    back, label, forward = st.columns([1, 3, 1], vertical_alignment="center")
    back.button(
        "",
        icon=":material/chevron_left:",
        key="zk_viewer_prev",
        disabled=shown <= 1,
        on_click=_turn_page,
        args=(source, shown - 1),
        help="上一页",
    )
    forward.button(
        "",
        icon=":material/chevron_right:",
        key="zk_viewer_next",
        disabled=shown >= total,
        on_click=_turn_page,
        args=(source, shown + 1),
        help="下一页",
    )
    state = "引用所在页" if shown == cited else f"引用在第 {cited} 页"
    label.html(
        f'<div class="zk-viewer-page" data-page="{shown}">第 {shown} / {total} 页 · '
        f"{html.escape(state)}</div>"
    )
    boxes = json.dumps(image["boxes"])
    found = str(image["found"])
    if quote:
        note = "" if image["complete"] else "(只找到部分文字)"
        st.html(
            f"<div class=\"zk-viewer-found\" data-boxes='{html.escape(boxes)}'>"
            f"高亮{html.escape(note)}:<mark>{html.escape(found) or '(未在页面上找到)'}</mark>"
            "</div>"
        )
    if image["zoom_png"]:
        st.image(image["zoom_png"], caption="引用处(放大)", width="stretch")  # type: ignore[arg-type]
        st.caption("整页:")
    st.image(image["png"], width="stretch")  # type: ignore[arg-type]
