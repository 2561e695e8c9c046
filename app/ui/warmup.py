"""The warm-up's progress on the chat page (see `app/_warmup.py`): drawn with the page, redrawn
every second, and the whole page drawn again once everything is ready (the badges then name
the answering backend)."""

from __future__ import annotations

import streamlit as st

from app._warmup import Warmup
from app.ui.markdown import escape_markdown

_MARKS = {
    "waiting": ":material/schedule:",
    "running": ":material/progress_activity:",
    "done": ":material/check_circle:",
    "failed": ":material/error:",
    "skipped": ":material/remove_circle_outline:",
}


@st.fragment(run_every=1.0)
def warmup_progress(warmup: Warmup) -> None:
    if warmup.done:
        st.rerun()  # the whole page, now with the backend's badge and notices
    snapshot = warmup.snapshot()
    seconds = snapshot["seconds"] or 0.0
    st.progress(
        warmup.fraction(),
        text=f"正在准备模型和索引,完成后第一个问题无需再等待(已用 {seconds:.0f} 秒)…",
    )
    lines = []
    for step in snapshot["steps"]:
        took = f" · {step['seconds']:.1f} 秒" if step["seconds"] is not None else ""
        lines.append(f"{_MARKS[step['state']]} {escape_markdown(step['label_zh'])}{took}")
    st.caption("  \n".join(lines))
