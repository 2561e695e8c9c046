"""命中测试 (the retrieval inspector): what retrieval finds for a question and why, what would
reach the prompt, why an answer would be refused; and every document's chunks in order, each
with a switch to leave it out of retrieval (for those who may write the knowledge base). The
work is `app._inspect.inspect`, run through the service as the person; this page only shows it.
"""

from __future__ import annotations

import html

import streamlit as st

from app._inspect import REFUSAL_ZH
from app.access import Principal
from app.service import Service, ServiceError
from app.ui.login import require_page
from app.ui.markdown import escape_markdown as md
from app.ui.markdown import file_name
from app.ui.resources import (
    KB_KEY,
    RETURN_TO_INSPECT_KEY,
    current_settings,
    get_service,
    hero,
    kb_info,
    store_error_zh,
)
from ingest.store import StoreError

CHUNKS_PER_PAGE = 20
_RESULT = "inspect_result"


def retrieval_test(service: Service, who: Principal, kb_name: str) -> None:
    with st.form("inspect_form", border=False):
        left, right = st.columns([5, 1], vertical_alignment="bottom")
        question = left.text_input("测试问题", placeholder="输入一个问题,看看检索到了什么")
        asked = right.form_submit_button("检索", icon=":material/search:", width="stretch")
    if asked and question.strip():
        try:
            st.session_state[_RESULT] = service.inspect_retrieval(who, kb_name, question.strip())
        except StoreError as exc:
            st.error(store_error_zh(exc), icon=":material/error:")
            return
        except ServiceError as exc:
            st.error(md(exc.zh), icon=":material/error:")
            return
    result = st.session_state.get(_RESULT)
    if result is None:
        st.caption(
            "和问答用同样的设置检索(不调用大模型):显示问题的分词、每个段落的语义/关键词/"
            "综合得分、哪些段落会放进提示词,以及会不会直接拒答。"
        )
        return
    st.markdown(f"**问题:** {md(result.question)}")
    st.html(
        '<div class="zk-tokens">分词(jieba):'
        + "".join(f'<span class="zk-token">{html.escape(t)}</span>' for t in result.tokens)
        + "</div>"
    )
    with st.expander("关键词检索式(FTS5)"):
        st.code(result.expression or "(无)", language="sql", wrap_lines=True)
        st.caption("检索词(去掉疑问词后):" + md("、".join(result.terms)))
    if result.refusal:
        text = REFUSAL_ZH[result.refusal]
        if result.missing:
            text += " 缺少的名称:" + "、".join(f"“{n}”" for n in result.missing)
        st.warning(md(text), icon=":material/block:")
    else:
        st.success(
            f"{len(result.in_prompt)} 个段落会放进提示词:"
            + "、".join(f"[{p.number}]" for p in result.in_prompt),
            icon=":material/check_circle:",
        )
    if result.excluded:
        st.caption(f"这个知识库有 {result.excluded} 个段落已设为不参与检索。")
    by_chunk = {h.chunk.id: h for h in result.hits}
    st.markdown("**检索到的段落**(按进入提示词的顺序编号)")
    st.table(
        [
            {
                "编号": f"[{v.passage.number}]",
                "进入提示词": "✓" if v.in_prompt else "✗ " + v.why_not,
                "文档": v.passage.title,
                "页": _page(v.passage.page),
                "语义相似度": f"{v.passage.dense:.4f}",
                "相关度下限": f"{v.floor:.2f}",
                "关键词 BM25": "{:.3f}".format(
                    max(
                        (by_chunk[i].keyword for i in v.passage.chunk_ids if i in by_chunk),
                        default=0.0,
                    )
                ),
                "综合得分": f"{v.passage.score:.4f}",
                "段落 id": ", ".join(map(str, v.passage.chunk_ids)),
            }
            for v in result.verdicts
        ],
        hide_index=True,
    )
    st.markdown("**每个检索单元的得分**(稠密检索与关键词检索各自的名次,融合后的得分)")
    st.table(
        [
            {
                "名次": str(rank),
                "段落 id": str(h.chunk.id),
                "文档": h.chunk.title,
                "页": _page(h.chunk.page),
                "语义相似度": f"{h.dense:.4f}",
                "稠密名次": _page(h.dense_rank),
                "BM25": f"{h.keyword:.3f}",
                "关键词名次": _page(h.keyword_rank),
                "综合得分": f"{h.score:.4f}",
            }
            for rank, h in enumerate(result.hits, start=1)
        ],
        hide_index=True,
    )
    for verdict in result.verdicts:
        p = verdict.passage
        mark = "✓" if verdict.in_prompt else "✗"
        with st.expander(f"{mark} [{p.number}] {p.title} · {file_name(p.source)}"):
            st.html(f'<div class="zk-passage zk-hit-text">{html.escape(p.text)}</div>')


def _page(value: int | None) -> str:
    return "—" if value is None else str(value)


def chunk_viewer(service: Service, who: Principal, kb_name: str) -> None:
    docs = service.documents(who, kb_name)
    if not docs:
        st.caption("这个知识库还没有文档。")
        return
    by_id = {d.doc_id: d for d in docs}
    chosen = st.selectbox(
        "文档",
        list(by_id),
        format_func=lambda d: f"{by_id[d].title} · {file_name(by_id[d].origin)}",
        key="inspect_doc",
    )
    chunks = service.document_chunks(who, kb_name, chosen)
    excluded = service.excluded_chunks(who, kb_name)
    may_switch = who.can_write(kb_name)
    off = sum(1 for c in chunks if c.chunk_key in excluded)
    st.caption(
        f"共 {len(chunks)} 个段落"
        + (f",其中 {off} 个不参与检索" if off else "")
        + "。关掉「参与检索」的段落不会再被检索到,问答和评测都不会用到它;随时可以再打开。"
        + ("" if may_switch else "(你对这个知识库没有写入权限,只能查看。)")
    )
    pages = max(1, -(-len(chunks) // CHUNKS_PER_PAGE))
    page = 1
    if pages > 1:
        page = st.number_input("页", 1, pages, 1, key=f"inspect_page_{chosen}")
    for chunk in chunks[(page - 1) * CHUNKS_PER_PAGE : page * CHUNKS_PER_PAGE]:
        with st.container(border=True):
            head, switch = st.columns([5, 1.3], vertical_alignment="center")
            where = [f"#{chunk.ordinal + 1}", f"id {chunk.id}"]
            if chunk.page is not None:
                where.append(f"第 {chunk.page} 页")
            where.append(f"字符 {chunk.start}–{chunk.end}")
            if chunk.headings:
                where.append(" › ".join(chunk.headings))
            head.caption(md(" · ".join(where)))
            switch.toggle(
                "参与检索",
                value=chunk.chunk_key not in excluded,
                key=f"inspect_on_{chunk.chunk_key}",
                on_change=_switch,
                args=(service, who, kb_name, chunk.chunk_key),
                disabled=not may_switch,
            )
            st.html(f'<div class="zk-passage zk-chunk">{html.escape(chunk.text)}</div>')


def _switch(service: Service, who: Principal, kb_name: str, chunk_key: str) -> None:
    on = bool(st.session_state.get(f"inspect_on_{chunk_key}"))
    try:
        service.exclude_chunk(who, kb_name, chunk_key, not on)
    except StoreError as exc:
        st.session_state["inspect_error"] = store_error_zh(exc)
    except ServiceError as exc:
        st.session_state["inspect_error"] = md(exc.zh)
    st.session_state.pop(_RESULT, None)  # the old result no longer holds


def page() -> None:
    if KB_KEY not in st.session_state:
        # Run on its own (see KB_PAGE in app/main.py): go through the router, which comes back.
        st.session_state[RETURN_TO_INSPECT_KEY] = True
        st.switch_page("main.py")
    who = require_page("inspect")
    settings = current_settings()
    kb_name: str = st.session_state[KB_KEY]
    hero(f"命中测试 · {kb_name}", "看检索找到了什么、为什么;不调用大模型")
    error = st.session_state.pop("inspect_error", None)
    if error:
        st.error(error, icon=":material/error:")
    try:
        info = kb_info(settings, kb_name)
    except StoreError as exc:
        st.error(store_error_zh(exc), icon=":material/error:")
        return
    if info is None or not info.documents:
        st.info(f"知识库「{md(kb_name)}」里还没有文档。", icon=":material/upload_file:")
        return
    service = get_service(settings)
    test, chunks = st.tabs(["检索测试", "段落浏览"])
    with test:
        retrieval_test(service, who, kb_name)
    with chunks:
        chunk_viewer(service, who, kb_name)


page()
