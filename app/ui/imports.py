"""Importing files from the browser: the ingestion progress display and the result table of an
upload (saving and ingesting are library calls: `save_uploads` + `ingest_paths`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import streamlit as st

from app.ui.markdown import escape_markdown, file_name
from ingest._embed import Embedder
from ingest._insert import FileOutcome, Progress
from ingest._reasons import Rejection
from ingest.settings import Settings

STATUS_ZH = {
    "added": "新增",
    "updated": "更新",
    "skipped": "跳过",
    "failed": "失败",
    "removed": "移除",
}
# Streamlit's bundled icon font: emoji would depend on the fonts of the user's system.
STATUS_ICON = {
    "added": ":green[:material/check_circle:]",
    "updated": ":blue[:material/sync:]",
    "skipped": ":gray[:material/skip_next:]",
    "failed": ":red[:material/error:]",
    "removed": ":gray[:material/delete:]",
}


def outcome_reason_zh(outcome: FileOutcome) -> str:
    return outcome.reason_zh


@dataclass
class StreamlitProgress(Progress):
    """Shows an ingest run as an overall progress bar and one status line per file."""

    bar: st.delta_generator.DeltaGenerator
    status: st.delta_generator.DeltaGenerator
    display_name: Callable[[str], str] = file_name
    files: int = 0
    done: int = 0
    planned: int = 0
    embedded: int = 0
    shown: float = 0.0
    lines: list[str] = field(default_factory=list)

    def start(self, files: int) -> None:
        self.files = files
        self._draw()

    def file_done(self, outcome: FileOutcome) -> None:
        self.done += 1
        line = f"{STATUS_ICON[outcome.status]} {escape_markdown(self.display_name(outcome.path))}:"
        line += STATUS_ZH[outcome.status]
        if outcome.status in ("added", "updated"):
            line += f"({outcome.chunks} 个段落)"
        reason = outcome_reason_zh(outcome)
        if reason:
            line += f" — {escape_markdown(reason)}"
        self.lines.append(line)
        self.status.write(line)
        self._draw()

    def chunks_planned(self, chunks: int) -> None:
        self.planned += chunks
        self._draw()

    def chunks_embedded(self, chunks: int) -> None:
        self.embedded += chunks
        self._draw()

    def message(self, text: str) -> None:
        self.status.caption(escape_markdown(text))

    def rejected(self, name: str, reason: str) -> None:
        """A file kept out before ingestion (bad name, type or size)."""
        line = f"{STATUS_ICON['failed']} {escape_markdown(name)}:{STATUS_ZH['failed']}"
        line += f" — {escape_markdown(reason)}"
        self.lines.append(line)
        self.status.write(line)

    def _draw(self) -> None:
        # Files finish only after their batch is embedded, so embedding progress moves the bar
        # during one large file; it never moves backwards when more chunks are planned.
        files = self.done / self.files if self.files else 0.0
        chunks = self.embedded / self.planned if self.planned else files
        self.shown = max(self.shown, min(1.0, 0.5 * files + 0.5 * chunks))
        text = f"已处理 {self.done}/{self.files} 个文件"
        if self.planned:
            text += f" · 已向量化 {self.embedded}/{self.planned} 个段落"
        self.bar.progress(self.shown, text=text)


def rejection_zh(rejection: Rejection | None) -> str:
    return rejection.zh if rejection is not None else ""


# ----- importing uploads --------------------------------------------------------------------


@dataclass(frozen=True)
class ImportRow:
    """One uploaded file in the result table."""

    name: str  # as uploaded
    stored_name: str  # as saved, when that differs
    status: str  # added / updated / skipped / failed
    documents: int
    chunks: int
    reason: str  # Chinese

    def as_table_row(self) -> dict[str, object]:
        return {
            "文件": self.name,
            "结果": STATUS_ZH[self.status],
            "文档": self.documents,
            "段落": self.chunks,
            "说明": self.reason,
        }


def import_uploads(
    settings: Settings,
    kb_name: str,
    files: Sequence[tuple[str, bytes]],
    embedder: Embedder,
    progress: StreamlitProgress,
) -> list[ImportRow]:
    """Save uploaded files, ingest the ones that were saved, and report every file.
    Raises StoreError when the knowledge base itself cannot be written."""
    from ingest._insert import ingest_paths
    from ingest._upload import save_uploads

    saved = save_uploads(settings, kb_name, files)
    for upload in saved:
        if upload.rejection is not None:
            progress.rejected(upload.name, upload.rejection.zh)
    by_path = {str(s.path): s for s in saved if s.path is not None}
    names = {path: s.name for path, s in by_path.items()}
    progress.display_name = lambda path: names.get(path, file_name(path))
    outcomes: dict[str, FileOutcome] = {}
    if by_path:
        paths = list(dict.fromkeys(s.path for s in saved if s.path is not None))
        report = ingest_paths(
            settings,
            paths,
            kb_name,
            progress=progress,
            embedder=embedder,  # type: ignore[arg-type]
        )
        outcomes = {o.path: o for o in report.outcomes}
    rows: list[ImportRow] = []
    for upload in saved:
        if upload.rejection is not None or upload.path is None:
            rows.append(ImportRow(upload.name, "", "failed", 0, 0, rejection_zh(upload.rejection)))
            continue
        outcome = outcomes.get(str(upload.path))
        notes = []
        if upload.renamed:
            notes.append(f"已有同名的不同文件,另存为「{upload.stored_name}」")
        if outcome is None:  # cannot happen: every saved path is reported
            rows.append(ImportRow(upload.name, upload.stored_name, "failed", 0, 0, "未处理"))
            continue
        reason = outcome_reason_zh(outcome)
        if reason:
            notes.append(reason)
        rows.append(
            ImportRow(
                upload.name,
                upload.stored_name,
                outcome.status,
                outcome.documents,
                outcome.chunks,
                ";".join(notes),
            )
        )
    return rows
