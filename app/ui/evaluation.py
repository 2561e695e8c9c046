"""The evaluation set made from feedback, on the knowledge-base page: the cases of the person
using the page (`Service.evaluation_cases`: their own, and for an admin also those of nobody),
deleting one, and running them against the knowledge base with progress, the figures and the
failing questions. The work is `app._evalset`, run through the service as the person."""

from __future__ import annotations

import streamlit as st

from app.service import Service, ServiceError
from app.ui.login import current_user
from app.ui.markdown import escape_markdown as md
from app.ui.resources import get_backend
from ingest.settings import Settings
from ingest.store import StoreError

_EVAL_RESULT = "kb_eval_result"


def evalset_section(settings: Settings, kb_name: str, exists: bool, service: Service) -> None:
    st.subheader("评测题")
    who = current_user()
    cases = service.evaluation_cases(who, kb_name)
    folder = service.evalset_folder(who, kb_name)
    if not cases:
        st.caption(
            "还没有评测题。在问答页对回答点 👍 或 👎,再点「反馈」→「存为评测题」,"
            "问题、期望答案(或“应当拒答”)和答案所在的文档就会存到这里。"
        )
        return
    docs = service.documents(who, kb_name) if exists else []
    titles = {doc.doc_id: doc.title for doc in docs}
    st.dataframe(
        [
            {
                "问题": c.question,
                "期望": "应当拒答"
                if not c.answerable
                else ("、".join(g[0] for g in c.answer_groups) or "(任意非拒答)"),
                "标准文档": "、".join(titles.get(g, g) for g in c.gold_ids) or "—",
                "说明": c.note,
            }
            for c in cases
        ],
        hide_index=True,
        width="stretch",
    )
    mine = "(只列出你保存的题目)" if who.person_id is not None else ""
    st.caption(
        f"共 {len(cases)} 题{mine},整个评测集导出在 {md(str(folder.resolve()))}"
        f"(`zhiku eval` 格式);命令行:`zhiku eval {md(str(folder))}`"
    )
    left, middle, right = st.columns([4, 1, 1], vertical_alignment="bottom")
    by_qid = {c.qid: c for c in cases}
    chosen = left.selectbox(
        "选择评测题", list(by_qid), format_func=lambda q: by_qid[q].question, key="kb_case"
    )
    if middle.button("删除此题", icon=":material/delete:", width="stretch"):
        try:
            service.remove_evaluation_case(who, kb_name, chosen)
        except ServiceError as exc:  # removed in another tab meanwhile
            st.error(md(exc.zh), icon=":material/error:")
            return
        st.session_state.pop(_EVAL_RESULT, None)
        st.rerun()
    if right.button("运行评测", icon=":material/play_arrow:", type="primary", width="stretch"):
        if not exists:
            st.error("知识库不存在。", icon=":material/error:")
            return
        run_evaluation(settings, service, kb_name, set(by_qid))
    show_evaluation()


def run_evaluation(settings: Settings, service: Service, kb_name: str, qids: set[str]) -> None:
    backend, problem = get_backend(settings)
    if problem is not None:
        st.warning(md(problem.zh), icon=":material/info:")
    bar = st.progress(0.0, text="准备中…")

    def step(done: int, total: int, question: str) -> None:
        phase = "检索" if done <= total // 2 else "回答"
        bar.progress(min(1.0, done / max(total, 1)), text=f"{phase} {done}/{total}:{question}")

    try:
        run = service.run_evaluation(current_user(), kb_name, backend, step, qids)
    except ServiceError as exc:
        st.error(f"评测失败:{md(exc.zh)}", icon=":material/error:")
        return
    except (StoreError, OSError, ValueError) as exc:
        st.error(f"评测失败:{md(str(exc))}", icon=":material/error:")
        return
    bar.progress(1.0, text="评测完成")
    st.session_state[_EVAL_RESULT] = (run, backend.info.label_zh)


def show_evaluation() -> None:
    stored = st.session_state.get(_EVAL_RESULT)
    if not stored:
        return
    run, label = stored
    with st.container(border=True):
        st.markdown(f"**评测结果** · {md(label)}")
        cols = st.columns(4)
        r = run.retrieval
        cols[0].metric("检索 recall@1", f"{r['recall@1']:.2f}")
        cols[1].metric("检索 recall@5", f"{r['recall@5']:.2f}")
        if run.answers is not None:
            a = run.answers
            cols[2].metric(
                "回答正确率",
                _share(a["answer_accuracy"]),
                help="只看回答本身,不算回答下方引用的原文",
            )
            cols[3].metric("拒答正确率", _share(a["refusal_accuracy"]))
        else:
            cols[2].metric("回答正确率", "—", help="仅检索模式:没有大模型回答")
            refused = [row.refused for row in run.answer_rows if not row.answerable]
            cols[3].metric("拒答正确率", _share(sum(refused) / len(refused)) if refused else "—")
        failures = run.failures()
        if failures:
            st.markdown(f"**未通过的题目**({len(failures)})")
            st.table(
                [{"问题": q, "期望": want, "实际": got} for q, want, got in failures],
                hide_index=True,
            )
        else:
            st.success("全部通过。", icon=":material/check_circle:")


def _share(value: float) -> str:
    return "—" if value != value else f"{value:.2f}"  # NaN: no question of that kind
