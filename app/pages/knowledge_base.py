"""The knowledge-base page: upload documents, bind watched folders, see and manage what a
knowledge base holds, and create, switch or delete knowledge bases. Everything it reads or
changes goes through the service as the person using the page, which checks their rights first
(uploads: `import_uploads` → `Service.save_files` + `Service.ingest_files`, run in the background
by `ImportJob` so the page can show progress and cancel it); the watched folders are drawn by
`app/ui/watched.py`; this page only shows them.
"""

from __future__ import annotations

import math
from datetime import datetime

import streamlit as st

from app.service import Forbidden, KbInfo, ServiceError
from app.ui.evaluation import evalset_section
from app.ui.imports import (
    STATUS_ZH,
    ImportJob,
    ImportRow,
    StreamlitProgress,
    outcome_reason_zh,
    running_import,
)
from app.ui.interrupted import Interrupted, lost_upload_panel, resume_upload
from app.ui.login import current_user, require_page
from app.ui.markdown import escape_markdown as md
from app.ui.markdown import file_name
from app.ui.resources import (
    KB_KEY,
    RETURN_TO_KB_KEY,
    current_settings,
    forget_kb,
    get_service,
    hero,
    kb_info,
    load_embedder,
    request_kb_switch,
    store_error_zh,
)
from app.ui.sources import sources_section
from app.ui.watched import watched_section
from ingest.load import SUPPORTED_SUFFIXES
from ingest.settings import Settings
from ingest.store import DocumentRecord, StoreError

_FLASH = "kb_flash"
_LAST_IMPORT = "kb_last_import"
_IMPORT_JOB = "kb_import_job"
# how often the page looks at a running upload (seconds): the progress line and the cancel
# button answer within this
IMPORT_POLL_S = 0.7
_UPLOADER_ROUND = "kb_uploader_round"
_CONFIRM_DOC = "kb_confirm_doc"
_CONFIRM_KB = "kb_confirm_kb"
_TYPE_LABELS = {
    "pdf": "PDF",
    "txt": "文本",
    "md": "Markdown",
    "docx": "Word",
    "html": "网页",
    "jsonl": "JSONL",
    "xlsx": "Excel",
    "csv": "CSV",
    "pptx": "PowerPoint",
    "image": "图片(OCR)",
}


# ----- small helpers ------------------------------------------------------------------------


def flash(kind: str, text: str) -> None:
    """A message that survives the rerun that follows an action."""
    st.session_state[_FLASH] = (kind, text)


def show_flash() -> None:
    kind, text = st.session_state.pop(_FLASH, (None, ""))
    if kind == "success":
        st.success(text, icon=":material/check_circle:")
    elif kind == "error":
        st.error(text, icon=":material/error:")
    elif kind == "info":
        st.info(text, icon=":material/info:")


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024**2:
        return f"{size / 1024:.1f} KB"
    return f"{size / 1024**2:.1f} MB"


def local_time(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso


def limit_text(value: float) -> str:
    return f"{value:g} MB"


# ----- upload -------------------------------------------------------------------------------


def upload_section(settings: Settings, kb_name: str) -> None:
    st.subheader("上传文档")
    round_ = st.session_state.setdefault(_UPLOADER_ROUND, 0)
    kinds = "、".join(dict.fromkeys(_TYPE_LABELS.get(t, t) for t in SUPPORTED_SUFFIXES.values()))
    files = st.file_uploader(
        "拖入文件,或点击选择(可多选)",
        type=[suffix.lstrip(".") for suffix in SUPPORTED_SUFFIXES],
        accept_multiple_files=True,
        key=f"uploader-{round_}",
        max_upload_size=max(1, math.ceil(settings.max_file_mb)),
        help="文件会复制到本机的数据目录,不会上传到任何外部服务。",
    )
    service, who = get_service(settings), current_user()
    storage = service.storage(who, kb_name)
    st.caption(
        f"支持 {kinds} · 单个文件不超过 {limit_text(settings.max_file_mb)} · "
        f"每次上传合计不超过 {limit_text(settings.max_upload_mb)} · "
        f"文件保存在 {md(str(storage.uploads))}"
    )
    if storage.originals_in_database:
        st.caption(
            "上传的文件"
            + ("和命令行导入的文件" if settings.keep_originals else "")
            + "也存入共享的状态数据库(`ORIGINALS_STORE=database`):"
            "连接同一数据库的每台服务器都能打开引用所在的原文页。"
        )
    elif settings.keep_originals:
        st.caption(
            "用命令行 `zhiku ingest` 导入的文件也会在 "
            f"{md(str(storage.originals))} 保存一份副本,"
            "这样原文件移走或删除后,引用仍能打开到原文所在页。"
            "不需要时在 `.env` 中设置 `KEEP_ORIGINALS=false`。"
        )
    else:
        st.caption(
            "命令行导入的文件不保存副本(`KEEP_ORIGINALS=false`):原文件移走后,"
            "引用只能显示导入时提取的文字。"
        )
    job: ImportJob | None = st.session_state.get(_IMPORT_JOB)
    if job is None:  # a reload (a new session) while this knowledge base's upload runs
        job = running_import(kb_name)
        if job is not None:
            st.session_state[_IMPORT_JOB] = job
    label = f"导入 {len(files)} 个文件到「{md(kb_name)}」" if files else "导入到知识库"
    if st.button(
        label,
        type="primary",
        disabled=not files or job is not None,
        icon=":material/upload:",
        help="正在导入时请等待完成,或先取消。" if job is not None else None,
    ):
        start_import(settings, kb_name, [(f.name, f.getvalue()) for f in files or []])
    if job is not None:
        import_panel()
    else:  # an upload of another server, or one an app restart cut off
        lost_upload_panel(service, who, kb_name, resume_import)
    show_last_import()


def start_import(settings: Settings, kb_name: str, files: list[tuple[str, bytes]]) -> None:
    """Ingest in the background: the page keeps answering (progress, 取消导入) meanwhile."""
    try:
        load_embedder(settings)
    except Exception as exc:  # the embedding model cannot load: say so, not a traceback
        st.error(f"无法加载嵌入模型:{md(str(exc))}", icon=":material/error:")
        return
    service, who = get_service(settings), current_user()
    try:  # created here, not in the job: the page must never open it half-made
        service.ensure_kb(who, kb_name)  # the upload itself is audited when it is saved
    except ServiceError as exc:  # no right, or an old deletion of the name not finished
        st.error(md(exc.zh), icon=":material/error:")
        return
    except StoreError as exc:
        st.error(store_error_zh(exc), icon=":material/error:")
        return
    st.session_state.pop(_LAST_IMPORT, None)
    st.session_state[_IMPORT_JOB] = ImportJob.start(service, who, kb_name, files, store_error_zh)
    # A fresh uploader: the files are in; leaving them listed invites importing them twice.
    st.session_state[_UPLOADER_ROUND] = st.session_state.get(_UPLOADER_ROUND, 0) + 1
    st.rerun()


def resume_import(lost: Interrupted) -> None:
    """Ingest the files an interrupted upload saved and did not commit, as an upload."""
    settings = current_settings()
    kb_name = lost.record.kb
    service, who = get_service(settings), current_user()
    try:
        load_embedder(settings)
        service.require(who, "write", kb_name)
        names = [upload.name for upload in lost.remaining]
        service.audit(who, "upload", kb_name, detail={"files": names})
    except ServiceError as exc:
        st.error(md(exc.zh), icon=":material/error:")
        return
    except Exception as exc:  # the embedding model cannot load: say so, not a traceback
        st.error(f"无法继续导入:{md(str(exc))}", icon=":material/error:")
        return
    st.session_state.pop(_LAST_IMPORT, None)
    st.session_state[_IMPORT_JOB] = resume_upload(service, who, lost, store_error_zh)
    st.rerun()


@st.fragment(run_every=IMPORT_POLL_S)
def import_panel() -> None:
    """The running upload: progress with chunks/s and the time left, the files done so far,
    and the cancel button. Reruns on its own every IMPORT_POLL_S; the whole page reruns once
    the job is over (the result table and the document list then show it)."""
    job: ImportJob | None = st.session_state.get(_IMPORT_JOB)
    if job is None:
        return
    if job.wait(timeout=0.05):
        st.session_state.pop(_IMPORT_JOB, None)
        job.forget()
        if job.error is not None:
            flash("error", f"导入失败:{job.error}")
        else:
            st.session_state[_LAST_IMPORT] = (job.rows or [], job.progress.lines)
        st.rerun()
    box = st.container()  # drawn after the button: a click this run already shows
    if st.button(
        "取消导入",
        icon=":material/cancel:",
        disabled=job.cancel.is_set(),
        key="kb_import_cancel",
        help="已经完成的文件保留在知识库中;其余文件再次上传即可继续导入。",
    ):
        job.cancel.set()
    progress = job.progress
    stopping = job.cancel.is_set()
    label = (
        "正在取消:当前这一步完成后停止…"
        if stopping
        else f"正在导入 {job.count} 个文件到「{md(job.kb_name)}」…"
    )
    # not a `with` block: leaving one marks the status complete, and the run is not
    status = box.status(label, state="running", expanded=True)
    status.progress(progress.fraction(), text=progress.text())
    if progress.note and not progress.lines:
        status.caption(md(progress.note))
    for line in progress.lines[-8:]:
        status.write(line)


def import_summary(rows: list[ImportRow]) -> str:
    counts = {status: 0 for status in ("added", "updated", "skipped", "failed")}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    return " · ".join(f"{STATUS_ZH[s]} {n}" for s, n in counts.items() if n or s != "cancelled")


def show_last_import() -> None:
    last = st.session_state.get(_LAST_IMPORT)
    if not last:
        return
    rows, lines = last
    failed = any(row.status == "failed" for row in rows)
    cancelled = any(row.status == "cancelled" for row in rows)
    with st.status(
        f"{'导入已取消' if cancelled else '导入完成'}:{import_summary(rows)}",
        state="error" if failed else "complete",
        expanded=False,
    ):
        for line in lines:
            st.write(line)
    st.dataframe(
        [row.as_table_row() for row in rows],
        hide_index=True,
        width="stretch",
        column_config={"说明": st.column_config.TextColumn(width="large")},
    )
    if st.button("清除导入结果", type="tertiary", icon=":material/close:"):
        st.session_state.pop(_LAST_IMPORT, None)
        st.rerun()


# ----- documents ----------------------------------------------------------------------------


def _origin_state(doc: DocumentRecord, missing: set[str]) -> str:
    if doc.origin.startswith(("http://", "https://")):
        return "网页"  # kept in step by its source's sync, not looked up here
    return "已不存在" if doc.doc_id in missing else "存在"


def document_rows(docs: list[DocumentRecord], missing: set[str]) -> list[dict[str, object]]:
    return [
        {
            "标题": doc.title,
            "文件": file_name(doc.origin),
            "类型": _TYPE_LABELS.get(doc.doc_type, doc.doc_type),
            "页数": doc.pages,
            "段落": doc.chunks,
            "大小": human_size(doc.size),
            "导入时间": local_time(doc.ingested_at),
            "原文件": _origin_state(doc, missing),
        }
        for doc in docs
    ]


def documents_section(settings: Settings, kb_name: str, docs: list[DocumentRecord]) -> None:
    st.subheader("文档列表")
    if not docs:
        st.caption("这个知识库还没有文档。")
        return
    missing = get_service(settings).missing_originals(current_user(), kb_name)
    st.dataframe(
        document_rows(docs, missing),
        hide_index=True,
        width="stretch",
        # widths in pixels: all eight columns fit a 1280-pixel window with the sidebar open
        column_config={
            "标题": st.column_config.TextColumn(width=190),
            "文件": st.column_config.TextColumn(width=150),
            "类型": st.column_config.TextColumn(width=80),
            "页数": st.column_config.NumberColumn(width=50),
            "段落": st.column_config.NumberColumn(width=50),
            "大小": st.column_config.TextColumn(width=70),
            "导入时间": st.column_config.TextColumn(width=130),
            "原文件": st.column_config.TextColumn(width=70),
        },
    )
    by_id = {doc.doc_id: doc for doc in docs}
    left, middle, right = st.columns([4, 1, 1], vertical_alignment="bottom")
    chosen = left.selectbox(
        "选择文档进行操作",
        list(by_id),
        format_func=lambda doc_id: f"{by_id[doc_id].title} · {file_name(by_id[doc_id].origin)}",
        key="kb_doc_choice",
    )
    doc = by_id[chosen]
    if middle.button("重新导入", icon=":material/refresh:", width="stretch"):
        reingest(settings, kb_name, doc)
    if right.button("删除", icon=":material/delete:", width="stretch"):
        st.session_state[_CONFIRM_DOC] = doc.doc_id
        st.rerun()
    pending = by_id.get(st.session_state.get(_CONFIRM_DOC, ""))
    if pending is not None:
        confirm_document_deletion(settings, kb_name, pending)


def reingest(settings: Settings, kb_name: str, doc: DocumentRecord) -> None:
    if doc.doc_id in get_service(settings).missing_originals(current_user(), kb_name):
        st.error(
            f"原文件已不存在:{md(doc.origin)}。无法重新导入;可以删除这篇文档后重新上传。",
            icon=":material/error:",
        )
        return
    bar = st.progress(0.0, text="准备中…")
    status = st.status(f"正在重新导入「{md(doc.title)}」…", expanded=True)
    try:
        outcome = get_service(settings).reingest_document(
            current_user(), kb_name, doc.doc_id, progress=StreamlitProgress(bar, status)
        )
    except StoreError as exc:
        status.update(label="重新导入失败", state="error")
        st.error(store_error_zh(exc), icon=":material/error:")
        return
    except ServiceError as exc:
        status.update(label="重新导入失败", state="error")
        st.error(md(exc.zh), icon=":material/error:")
        return
    if outcome is None or outcome.status == "failed":
        reason = outcome_reason_zh(outcome) if outcome else "没有结果"
        flash("error", f"重新导入「{md(doc.title)}」失败:{md(reason)}")
    else:
        flash(
            "success",
            f"已重新导入「{md(doc.title)}」:{STATUS_ZH[outcome.status]},{outcome.chunks} 个段落。",
        )
    st.rerun()


def confirm_document_deletion(settings: Settings, kb_name: str, doc: DocumentRecord) -> None:
    with st.container(border=True):
        st.warning(
            f"确定从知识库「{md(kb_name)}」删除「{md(doc.title)}」吗?"
            "它的段落将不再参与问答;通过本页上传的文件副本也会一并删除。",
            icon=":material/warning:",
        )
        row = st.container(horizontal=True)
        yes, no = row, row
        if yes.button("确认删除", type="primary", key="kb_doc_delete_yes"):
            st.session_state.pop(_CONFIRM_DOC, None)
            try:  # the API's call: the document, its stored upload and its kept copy
                get_service(settings).remove_document(current_user(), kb_name, doc.doc_id)
            except Forbidden as exc:
                flash("error", md(exc.zh))
            except ServiceError:
                flash("info", f"「{md(doc.title)}」已不在知识库中。")
            except StoreError as exc:
                flash("error", store_error_zh(exc))
            else:
                flash("success", f"已删除「{md(doc.title)}」。")
            st.rerun()
        if no.button("取消", key="kb_doc_delete_no"):
            st.session_state.pop(_CONFIRM_DOC, None)
            st.rerun()


# ----- knowledge bases ----------------------------------------------------------------------


def manage_section(
    settings: Settings, kb_name: str, info: KbInfo | None, may_delete: bool = True
) -> None:
    st.subheader("管理知识库")
    create_col, delete_col = st.columns(2, gap="large")
    with create_col, st.form("kb_create", clear_on_submit=True, border=False):
        name = st.text_input(
            "新建知识库",
            placeholder="例如:产品手册",
            max_chars=64,
            help="1-64 个字符:汉字、字母、数字、“-”或“_”。",
        )
        if st.form_submit_button("新建并切换", icon=":material/add:"):
            create_kb(settings, name)
    unfinished = get_service(settings).deletion_unfinished(kb_name)
    if not may_delete:
        return
    with delete_col:
        st.markdown("删除知识库")
        st.caption(
            "删除当前知识库的全部文档、索引、上传的文件和导入文件的副本,"
            "以及它的对话记录、评测题和监视文件夹的绑定,无法恢复。"
        )
        if st.button(
            f"删除「{md(kb_name)}」",
            icon=":material/delete_forever:",
            disabled=info is None and not unfinished,
            key="kb_delete",
        ):
            st.session_state[_CONFIRM_KB] = kb_name
            st.rerun()
        if unfinished:
            st.caption(f"「{md(kb_name)}」上次没有删除完:再次删除即可删除剩下的部分。")
        if st.session_state.get(_CONFIRM_KB) == kb_name and (info is not None or unfinished):
            confirm_kb_deletion(settings, kb_name, info)


def create_kb(settings: Settings, raw_name: str) -> None:
    name = raw_name.strip()
    if not name:
        st.error("请输入知识库名称。", icon=":material/error:")
        return
    service, who = get_service(settings), current_user()
    try:  # what a deletion of the same name left unfinished goes first: it starts empty
        if name not in service.kb_names(who):  # one the person may read: switch to it
            service.create_kb(who, name)  # "already exists" when it exists unreadable
    except ServiceError as exc:
        st.error(md(exc.zh), icon=":material/error:")
        return
    except StoreError:
        st.error(
            f"无法用「{md(name)}」作为知识库名称:请使用 1-64 个汉字、字母、数字、“-”或“_”,"
            '不要以“.”开头,不要包含 / \\ : * ? " < > |。',
            icon=":material/error:",
        )
        return
    request_kb_switch(name)
    flash("success", f"已切换到知识库「{md(name)}」,现在可以上传文档了。")
    st.rerun()


def confirm_kb_deletion(settings: Settings, kb_name: str, info: KbInfo | None) -> None:
    documents = info.documents if info is not None else 0
    st.error(
        f"确定永久删除知识库「{md(kb_name)}」吗?其中的 {documents} 篇文档都会被删除。",
        icon=":material/warning:",
    )
    row = st.container(horizontal=True)
    yes, no = row, row
    if yes.button("确认删除", type="primary", key="kb_delete_yes"):
        st.session_state.pop(_CONFIRM_KB, None)
        try:  # the API's call, with this app's watchers to stop first
            get_service(settings).delete_kb(current_user(), kb_name)
        except ServiceError as exc:  # says what is left; deleting again finishes it
            forget_kb(settings, kb_name)
            flash("error", md(exc.zh))
            st.rerun()
        except StoreError as exc:
            flash("error", store_error_zh(exc))
            st.rerun()
        forget_kb(settings, kb_name)
        st.session_state.get("conversations", {}).pop(kb_name, None)
        request_kb_switch(settings.default_kb)
        flash("success", f"已删除知识库「{md(kb_name)}」。")
        st.rerun()
    if no.button("取消", key="kb_delete_no"):
        st.session_state.pop(_CONFIRM_KB, None)
        st.rerun()


# ----- the page -----------------------------------------------------------------------------


def page() -> None:
    if KB_KEY not in st.session_state:
        # Run on its own, as Streamlit does with `pages/` files until st.navigation has run once
        # (see KB_PAGE in app/main.py): go through the router, which comes back here.
        st.session_state[RETURN_TO_KB_KEY] = True
        st.switch_page("main.py")
    who = require_page("kb")
    settings = current_settings()
    kb_name: str = st.session_state[KB_KEY]
    info = kb_info(settings, kb_name)
    if not who.can_write(kb_name):
        # the page's every control changes the knowledge base: without write, only creating
        # a new one is offered
        hero(f"知识库 · {kb_name}", "上传、查看和管理文档;文件只保存在本机的数据目录")
        st.info(f"你对知识库「{md(kb_name)}」没有写入权限。", icon=":material/lock:")
        manage_section(settings, kb_name, None, may_delete=False)
        return
    # Read on every run, never cached: the CLI may have changed the knowledge base.
    docs = get_service(settings).documents(who, kb_name) if info is not None else []
    hero(f"知识库 · {kb_name}", "上传、查看和管理文档;文件只保存在本机的数据目录")
    show_flash()
    latest = max((doc.updated_at for doc in docs), default="")
    with st.container(border=True):
        cols = st.columns(3)
        cols[0].metric("文档", info.documents if info is not None else 0)
        cols[1].metric("段落", info.chunks if info is not None else 0)
        cols[2].metric("最近更新", local_time(latest)[5:] if latest else "—")
    upload_section(settings, kb_name)
    watched_section(settings, kb_name)
    sources_section(settings, kb_name)
    documents_section(settings, kb_name, docs)
    evalset_section(settings, kb_name, info is not None, get_service(settings))
    manage_section(settings, kb_name, info)


page()
