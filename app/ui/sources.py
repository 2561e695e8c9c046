"""Web pages and sites on the knowledge-base page: a URL field (one page, or a whole site) with a
schedule, and per source its last sync, next sync, 立即同步, 删除来源 and its sync history.

The scheduler lives once per data home per app process (`app._background`), shared by every
session; `zhiku web` starts it with the process, so due sources are synced with no page open.
`ensure_scheduler` runs on every script run as well, for an app started another way.
"""

from __future__ import annotations

from datetime import UTC, datetime, time

import streamlit as st

from app._background import background
from app.service import ServiceError
from app.sources import Schedule, Source, SourceError, SyncRecord
from app.sources.scheduler import Scheduler
from app.ui.login import current_user
from app.ui.markdown import escape_markdown as md
from app.ui.resources import get_service, store_error_zh
from ingest.settings import Settings
from ingest.store import StoreError
from ingest.web import is_web_url

POLL_S = 2.0
_FLASH = "kb_sources_flash"
_SCHEDULES = {
    "手动同步": None,
    "每 30 分钟": "30m",
    "每 2 小时": "2h",
    "每 6 小时": "6h",
    "每天定时": "daily",
}
STATUS_ZH = {"added": "新增", "updated": "更新", "removed": "移除", "failed": "失败"}
TRIGGER_ZH = {
    "schedule": "定时",
    "manual": "手动",
    "cli": "命令行",
    "api": "API",
    "watch": "文件变化",
}


def ensure_scheduler(settings: Settings) -> Scheduler:
    """The app's source scheduler, started (a no-op once it runs)."""
    scheduler = background(settings).scheduler
    scheduler.start()
    return scheduler


def _local(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")


def summary_zh(record: SyncRecord) -> str:
    text = (
        f"新增 {record.added} · 更新 {record.updated} · 移除 {record.removed} · "
        f"失败 {record.failed} · 未变化 {record.skipped} · 用时 {record.seconds:.1f} 秒"
    )
    return f"{text} · 中止:{record.error_zh}" if record.error_zh else text


def sources_section(settings: Settings, kb_name: str) -> None:
    st.subheader("网页与网站")
    st.caption(
        "输入网址导入一个网页(及其链接的 PDF、Office 文件),"
        "或勾选「整个网站」从这个网址抓取同一网站、"
        "同一路径下的页面(遵守 robots.txt)。可以设置定时同步:只重新导入变化的页面,"
        f"页面连续 {settings.source_remove_after} 次同步都不存在(404/410)才会移除。"
        "命令行的 `zhiku sources` 做同样的事。"
    )
    kind, text = st.session_state.pop(_FLASH, (None, ""))
    if kind == "success":
        st.success(text, icon=":material/check_circle:")
    with st.form("kb_source_add", clear_on_submit=True, border=False):
        raw = st.text_input("网址", placeholder="https://help.example.com/docs/")
        left, middle, right = st.columns([2, 2, 1], vertical_alignment="bottom")
        choice = left.selectbox("同步", list(_SCHEDULES), index=0)
        at = middle.time_input("每天定时的时间", value=time(3, 0), step=900)
        crawl = right.checkbox("整个网站", value=False)
        submitted = st.form_submit_button("添加", icon=":material/add_link:")
    if submitted:
        add_source(settings, kb_name, raw, choice, at, crawl)
    sources_panel(settings, kb_name)


def add_source(
    settings: Settings, kb_name: str, raw: str, choice: str, at: time, crawl: bool
) -> None:
    url = raw.strip()
    if not is_web_url(url):
        st.error(f"请输入以 http:// 或 https:// 开头的网址:{md(url)}", icon=":material/error:")
        return
    every = _SCHEDULES[choice]
    service, who = get_service(settings), current_user()
    try:
        schedule = (
            Schedule.parse(at=at.strftime("%H:%M")) if every == "daily" else Schedule.parse(every)
        )
        source = service.add_source(who, kb_name, url, crawl=crawl, schedule=schedule)
    except (SourceError, ServiceError) as exc:
        st.error(md(exc.zh), icon=":material/error:")
        return
    except StoreError as exc:
        st.error(store_error_zh(exc), icon=":material/error:")
        return
    # the first sync is the person's: checked again and audited with their name
    ensure_scheduler(settings).sync_now(source, who=who)
    st.session_state[_FLASH] = (
        "success",
        f"已添加 {md(source.location)}:正在进行第一次同步,完成后文档会出现在下方列表中。",
    )
    st.rerun()


@st.fragment(run_every=POLL_S)
def sources_panel(settings: Settings, kb_name: str) -> None:
    sources = get_service(settings).sources(current_user(), kb_name)
    # watched folders have their own section, with their watcher's live state
    sources = [s for s in sources if not s.schedule.watch]
    if not sources:
        st.caption("还没有网页或网站来源。")
        return
    scheduler = ensure_scheduler(settings)
    for source in sources:
        source_card(settings, scheduler, source)


def source_card(settings: Settings, scheduler: Scheduler, source: Source) -> None:
    with st.container(border=True):
        if source.kind == "folder":
            st.markdown(f":material/folder: **文件夹** {md(source.location)}")
        else:
            label = "网站" if source.kind == "site" else "网页"
            st.markdown(
                f":material/language: **{label}** [{md(source.location)}]({source.location})"
            )
        busy = source.id in scheduler.busy or (
            scheduler.running_source is not None and scheduler.running_source.id == source.id
        )
        last = source.last_sync
        next_run = source.next_run(datetime.now(UTC))
        cols = st.columns(3)
        cols[0].metric("同步方式", source.schedule.describe_zh())
        cols[1].metric("最近同步", _local(last.started_at) if last else "尚未同步")
        cols[2].metric(
            "下次同步", next_run.astimezone().strftime("%m-%d %H:%M") if next_run else "—"
        )
        if busy:
            st.caption(":blue[:material/sync:] 正在同步…")
        elif last is not None:
            how = TRIGGER_ZH.get(last.trigger, last.trigger)
            st.caption(f"最近一次同步({how}):{summary_zh(last)}")
        row = st.container(horizontal=True)
        if row.button(
            "立即同步", icon=":material/sync:", key=f"source-sync-{source.id}", disabled=busy
        ):
            who = current_user()
            try:
                get_service(settings).check_change(who, source.kb)
            except ServiceError as exc:
                st.error(md(exc.zh), icon=":material/error:")
                return
            scheduler.sync_now(source, who=who)  # audited as theirs
            st.rerun(scope="fragment")
        if row.button(
            "删除来源",
            icon=":material/link_off:",
            key=f"source-remove-{source.id}",
            help="不再同步这个来源;已经导入的页面保留在知识库中。",
        ):
            try:
                get_service(settings).remove_source(current_user(), source.kb, source.id)
            except ServiceError as exc:
                st.error(md(exc.zh), icon=":material/error:")
                return
            st.session_state[_FLASH] = (
                "success",
                f"已删除来源 {md(source.location)};已导入的页面仍在知识库中。",
            )
            st.rerun(scope="app")
        history_expander(source)


def history_expander(source: Source) -> None:
    """A source's syncs, newest first, and the changes and failures of the last one."""
    if not source.history:
        return
    last = source.last_sync
    with st.expander(f"同步记录({len(source.history)} 次)"):
        st.dataframe(
            [
                {
                    "时间": _local(r.started_at),
                    "方式": TRIGGER_ZH.get(r.trigger, r.trigger),
                    "新增": r.added,
                    "更新": r.updated,
                    "移除": r.removed,
                    "失败": r.failed,
                    "未变化": r.skipped,
                    "用时(秒)": r.seconds,
                    "说明": r.error_zh,
                }
                for r in reversed(source.history)
            ],
            hide_index=True,
            width="stretch",
        )
        if last is not None and last.items:
            st.caption("最近一次同步的变化与失败:")
            st.dataframe(
                [
                    {
                        ("文件" if source.kind == "folder" else "网址"): i.url,
                        "结果": STATUS_ZH.get(i.status, i.status),
                        "说明": i.reason_zh,
                    }
                    for i in last.items
                ],
                hide_index=True,
                width="stretch",
                column_config={"说明": st.column_config.TextColumn(width="large")},
            )
