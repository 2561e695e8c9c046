"""Watched folders on the knowledge-base page: bind and unbind folders, and per folder its last
sync, the files waiting, the last sync's per-file table, "立即同步" and, for a watcher that
stopped on an error, the error and a restart button.

The watchers live once per data home per app process (`app._background`), shared by every
session; `zhiku web` starts them with the process, so bound folders are followed with no page
open. `ensure_watchers` runs on every script run too (it reads a few small files), so a binding
made in another session gets its watcher at once.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

import streamlit as st

from app._background import background
from app._watched import FolderWatcher, Watchers
from app.service import ServiceError
from app.sources.model import Source
from app.ui.imports import STATUS_ZH, JobProgress, outcome_rows
from app.ui.login import current_user
from app.ui.markdown import escape_markdown as md
from app.ui.resources import get_service, store_error_zh
from app.ui.sources import history_expander
from ingest.settings import Settings
from ingest.store import StoreError
from ingest.watch import WatchState

log = logging.getLogger(__name__)

# how often the folder panel re-reads its watchers (seconds)
WATCH_POLL_S = 2.0
_FLASH = "kb_watch_flash"
_SEEN = "kb_watch_seen"  # folder → the last sync this session has shown
# statuses listed first in a sync's table: what changed before what was left as it was
_ORDER = {"failed": 0, "added": 1, "updated": 2, "removed": 3, "skipped": 4}


class SyncProgress(JobProgress):
    """The counts of a watcher's sync under way; its per-file lines are not kept (a watcher
    runs for days: the last sync's table comes from its report)."""

    def add_line(self, line: str) -> None:
        pass


def get_watchers(settings: Settings) -> Watchers:
    return background(settings).watchers


def ensure_watchers(settings: Settings) -> Watchers:
    """Every bound folder has a running watcher (or the error that stopped it)."""
    watchers = get_watchers(settings)
    watchers.ensure(settings, lambda: get_service(settings).embedder(), SyncProgress)
    return watchers


def _when(ts: float | None) -> str:
    if ts is None:
        return "尚未同步"
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def watched_section(settings: Settings, kb_name: str) -> None:
    st.subheader("监视文件夹")
    st.caption(
        "把本机的文件夹绑定到这个知识库:应用运行期间,文件夹里新增和修改的文件在静置 "
        f"{settings.watch_quiet_s:g} 秒后自动导入,删除的文件从知识库移除;"
        "应用重新启动时先完整同步一次。编辑器的临时文件和隐藏文件不会导入。"
        "命令行的 `zhiku watch` 做同样的事。"
    )
    kind, text = st.session_state.pop(_FLASH, (None, ""))
    if kind == "success":
        st.success(text, icon=":material/check_circle:")
    with st.form("kb_watch_bind", clear_on_submit=True, border=False):
        left, right = st.columns([5, 1], vertical_alignment="bottom")
        raw = left.text_input(
            "绑定文件夹",
            placeholder="例如:/home/me/文档/合同",
            help="本机文件夹的完整路径;其中的文件和子文件夹都会导入。",
        )
        submitted = right.form_submit_button("绑定", icon=":material/add_link:", width="stretch")
    if submitted:
        service, who = get_service(settings), current_user()
        try:
            # checked, the knowledge base created when new (never half-made by the watcher)
            folder = service.bind_folder(who, kb_name, raw)
        except ServiceError as exc:
            st.error(md(exc.zh), icon=":material/error:")
        except StoreError as exc:
            st.error(store_error_zh(exc), icon=":material/error:")
        else:
            st.session_state[_FLASH] = (
                "success",
                f"已绑定 {md(str(folder))}:正在进行第一次同步,完成后文档会出现在下方列表中。",
            )
            ensure_watchers(settings)
            st.rerun()
    folders_panel(settings, kb_name)


@st.fragment(run_every=WATCH_POLL_S)
def folders_panel(settings: Settings, kb_name: str) -> None:
    sources = get_service(settings).sources(current_user(), kb_name)
    bindings = [s for s in sources if s.kind == "folder" and s.schedule.watch]
    if not bindings:
        st.caption("还没有绑定文件夹。")
        return
    watchers = get_watchers(settings)
    # A sync that finished since this session last looked redraws the whole page: the
    # document list and counts above show what it brought in.
    seen: dict[str, float | None] = st.session_state.setdefault(_SEEN, {})
    changed = False
    for binding in bindings:
        watcher = watchers.get(kb_name, Path(binding.location))
        key = f"{kb_name}\n{binding.location}"
        last = watcher.state.last_sync if watcher is not None else None
        changed |= key in seen and seen[key] != last
        seen[key] = last
    if changed:
        st.rerun(scope="app")
    for binding in bindings:
        folder = Path(binding.location)
        folder_card(settings, kb_name, folder, binding, watchers.get(kb_name, folder))


def folder_card(
    settings: Settings,
    kb_name: str,
    folder: Path,
    source: Source,
    watcher: FolderWatcher | None,
) -> None:
    key = f"{kb_name}-{folder}"
    with st.container(border=True):
        st.markdown(f":material/folder: **{md(str(folder))}**")
        if watcher is None:
            st.caption("监视即将启动…")
        elif watcher.error is not None:
            st.error(f"监视已停止:{md(watcher.error)}", icon=":material/error:")
        elif watcher.state.syncing:
            first = watcher.state.last_sync is None
            line = "正在进行第一次完整同步" if first else "正在同步"
            if isinstance(watcher.progress, JobProgress) and watcher.progress.files:
                line += ":" + watcher.progress.text()
            st.caption(f":blue[:material/sync:] {line}…")
        elif watcher.running:
            st.caption(":green[:material/visibility:] 监视中")
        state = watcher.state if watcher is not None else None
        cols = st.columns(2)
        cols[0].metric("最近同步", _when(state.last_sync if state else None))
        cols[1].metric("待处理文件", state.pending if state else 0)
        row = st.container(horizontal=True)
        if watcher is not None and watcher.error is not None:
            restart = row.button(
                "重新启动监视", icon=":material/restart_alt:", key=f"watch-restart-{key}"
            )
            if restart and _may_change(settings, kb_name):
                get_watchers(settings).restart(kb_name, folder)
                st.rerun(scope="app")
        elif row.button(
            "立即同步",
            icon=":material/sync:",
            key=f"watch-sync-{key}",
            disabled=watcher is None or not watcher.running,
            help="重新检查整个文件夹:新增、修改和删除的文件都会处理。",
        ):
            assert watcher is not None
            if _may_change(settings, kb_name):
                watcher.sync_now()
        if row.button(
            "解除绑定",
            icon=":material/link_off:",
            key=f"watch-unbind-{key}",
            help="停止监视这个文件夹;已经导入的文档保留在知识库中。",
        ):
            try:  # its watcher here stops with it
                get_service(settings).unbind_folder(current_user(), kb_name, folder)
            except ServiceError as exc:
                st.error(md(exc.zh), icon=":material/error:")
                return
            st.session_state[_FLASH] = (
                "success",
                f"已解除绑定 {md(str(folder))};已导入的文档仍在知识库中。",
            )
            st.rerun(scope="app")
        if state is not None and state.reports:
            last_sync_table(folder, state)
        history_expander(source)


def _may_change(settings: Settings, kb_name: str) -> bool:
    """Whether the person may write the knowledge base (the reason shown when not)."""
    try:
        get_service(settings).check_change(current_user(), kb_name)
    except ServiceError as exc:
        st.error(md(exc.zh), icon=":material/error:")
        return False
    return True


def last_sync_table(folder: Path, state: WatchState) -> None:
    report = state.reports[-1]
    outcomes = sorted(report.outcomes, key=lambda o: _ORDER.get(o.status, 9))
    totals = report.totals()
    summary = " · ".join(
        f"{STATUS_ZH[s]} {totals[s]}" for s in ("added", "updated", "removed", "failed", "skipped")
    )
    st.caption(f"最近一次同步的结果:{summary} · 用时 {report.seconds:.1f} 秒")

    def shown(path: str) -> str:
        try:
            return str(Path(path).relative_to(folder))
        except ValueError:
            return path

    st.dataframe(
        outcome_rows(outcomes, shown),
        hide_index=True,
        width="stretch",
        column_config={"说明": st.column_config.TextColumn(width="large")},
    )
