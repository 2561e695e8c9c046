"""What both pages of the web app share: settings, the cached models and knowledge bases, the
knowledge-base selector, source cards, and the ingestion progress display.

Settings are read from the environment (and `.env`) on every run: that costs about 2 ms, lets a
changed `.env` apply without a restart, and lets tests point the app at a throwaway data home by
setting environment variables. Everything expensive is cached per process with
`st.cache_resource`, keyed by the setting values it depends on: the embedder per model, one
`KnowledgeBase` per data home and name (it is thread-safe and re-reads its database on every
call, so one instance serves every session), and the resolved LLM backend per (kind,
temperature). Document lists are never cached: the CLI may change them at any time.

Document text is never rendered as HTML: it goes through `html.escape` into markup written here,
or through `escape_markdown` when it is part of an answer.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from app._llm import BackendInfo, LlmError, ResolvedBackend, current, resolve_backend, warm_up
from ingest._embed import Embedder, load_embedder
from ingest._insert import FileOutcome, Progress
from ingest._reasons import Rejection
from ingest._store import DB_FILE, KnowledgeBase, ModelMismatch, StoreError, kb_path, list_kbs
from ingest.settings import Settings

if TYPE_CHECKING:
    from app._passages import Passage
    from app._rag import AnswerResult

APP_TITLE = "知库"
APP_ICON = "📚"
KB_KEY = "kb"  # session-state key of the selected knowledge base
_SWITCH_KEY = "kb_switch_to"
RETURN_TO_KB_KEY = "return_to_kb_page"  # the knowledge-base page asked the router to come back

BACKEND_CHOICES = ("auto", "ollama", "llamacpp", "none")
BACKEND_LABELS = {
    "auto": "自动选择",
    "ollama": "Ollama",
    "llamacpp": "内置模型(llama.cpp)",
    "none": "仅检索(不生成回答)",
}
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

ENABLE_GENERATION_ZH = (
    "要生成回答,请启动 Ollama(`ollama serve`,再 `ollama pull qwen2.5:3b`),"
    "或运行 `make install` 安装内置模型,然后在侧边栏选择回答方式。"
)

_CSS = """
<style>
.zk-hero {display:flex; align-items:center; gap:.8rem; margin:-.5rem 0 .25rem 0;}
.zk-logo {width:2.6rem; height:2.6rem; border-radius:.7rem; display:flex; align-items:center;
  justify-content:center; background:linear-gradient(135deg,#2563eb,#7c3aed); color:#fff;
  font-size:1.45rem; font-weight:700; flex:none;}
.zk-hero-text {display:flex; flex-direction:column; line-height:1.25;}
.zk-hero-title {font-size:1.6rem; font-weight:700; color:#111827;}
.zk-tagline {color:rgba(49,51,63,.65); font-size:.9rem;}
.zk-card-head {display:flex; flex-wrap:wrap; align-items:baseline; gap:.4rem .6rem;
  font-size:.95rem; line-height:1.5;}
.zk-num {display:inline-block; min-width:1.9rem; text-align:center; font-weight:600;
  border-radius:.4rem; background:#e8f0fe; color:#1a56db; padding:0 .3rem;}
.zk-title {font-weight:600;}
.zk-meta {color:rgba(49,51,63,.6); font-size:.85rem;}
.zk-tag {font-size:.75rem; border-radius:.6rem; padding:.05rem .5rem; background:#fff4e5;
  color:#9a5b00; border:1px solid #ffd8a8;}
.zk-score {margin-left:auto; font-size:.8rem; color:rgba(49,51,63,.65);}
.zk-bar {display:inline-block; width:3.5rem; height:.4rem; border-radius:.2rem;
  background:#e6e9ef; vertical-align:middle; margin-left:.3rem; overflow:hidden;}
.zk-bar > span {display:block; height:100%; background:#3b82f6;}
.zk-quote {margin:.35rem 0 0 0; padding:.35rem .7rem; border-left:3px solid #93c5fd;
  background:#f8fafc; color:#334155; font-size:.9rem; line-height:1.65; word-break:break-word;}
.zk-passage {white-space:pre-wrap; word-break:break-word; font-size:.9rem; line-height:1.75;
  color:#1f2937; max-height:24rem; overflow:auto;}
.zk-passage mark, .zk-quote mark {background:#fde68a; padding:0 .1rem; border-radius:.15rem;}
</style>
"""


# ----- settings and cached resources --------------------------------------------------------


def current_settings() -> Settings:
    """Read on every run (see the module docstring)."""
    return Settings()


def inject_css() -> None:
    st.html(_CSS)


def hero(title: str, tagline: str) -> None:
    """The page header: the 知 logo, a title and one line on what the page is for."""
    st.html(
        '<div class="zk-hero"><div class="zk-logo">知</div><div class="zk-hero-text">'
        f'<span class="zk-hero-title">{html.escape(title)}</span>'
        f'<span class="zk-tagline">{html.escape(tagline)}</span></div></div>'
    )


@st.cache_resource(show_spinner="正在加载嵌入模型(首次启动需要十几秒)…")
def _cached_embedder(model: str, models_dir: str, _settings: Settings) -> Embedder:
    return load_embedder(_settings)


def get_embedder(settings: Settings) -> Embedder:
    return _cached_embedder(settings.embedding_model, str(settings.models_dir.resolve()), settings)


@st.cache_resource(show_spinner=False, max_entries=32)
def _cached_kb(home: str, name: str, _settings: Settings) -> tuple[KnowledgeBase, int]:
    kb = KnowledgeBase.open(_settings, name)
    return kb, (kb.path / DB_FILE).stat().st_ino


def get_kb(settings: Settings, name: str) -> KnowledgeBase | None:
    """The shared instance of knowledge base `name`, or None when it does not exist (yet).
    A knowledge base deleted and created again (say by the CLI) is a new database file, so
    the cached instance is checked against the file it opened."""
    try:
        db = kb_path(settings, name) / DB_FILE
    except StoreError:
        return None
    if not db.is_file():
        return None
    home = str(settings.zhiku_home.resolve())
    kb, inode = _cached_kb(home, name, settings)
    try:
        current = db.stat().st_ino
    except OSError:
        return None
    if current != inode:
        _cached_kb.clear(home, name, settings)
        kb, _ = _cached_kb(home, name, settings)
    return kb


def forget_kb(settings: Settings, name: str) -> None:
    """Drop the cached instance of a deleted knowledge base."""
    _cached_kb.clear(str(settings.zhiku_home.resolve()), name, settings)


# What else a resolved backend depends on (top-k and the like do not make a new one).
_BACKEND_FIELDS = {
    "zhiku_home",
    "zhiku_models_dir",
    "ollama_host",
    "ollama_model",
    "ollama_timeout_s",
    "llamacpp_model_path",
    "llamacpp_threads",
    "llamacpp_n_ctx",
    "llm_max_tokens",
}


@st.cache_resource(show_spinner="正在准备大模型…", ttl=300, max_entries=16)
def _cached_backend(
    kind: str, temperature: float, settings_key: str, _settings: Settings
) -> ResolvedBackend:
    # Expires after a few minutes so that "auto" notices an Ollama started meanwhile; the
    # llama.cpp weights themselves stay loaded in their own per-process cache.
    resolved = resolve_backend(_settings, kind)  # type: ignore[arg-type]
    warm_up(resolved)
    return resolved


def get_backend(settings: Settings) -> tuple[ResolvedBackend, LlmError | None]:
    """The backend for `settings.llm_backend` at `settings.llm_temperature`. An explicit choice
    that cannot work (not cached, so it is retried on the next question) falls back to
    retrieval only, with the reason to show."""
    try:
        resolved = _cached_backend(
            settings.llm_backend,
            settings.llm_temperature,
            settings.model_dump_json(include=_BACKEND_FIELDS),
            settings,
        )
    except LlmError as exc:
        return ResolvedBackend(None, BackendInfo("none", ""), exc), exc
    return current(resolved), None


def store_error_zh(exc: Exception) -> str:
    """A Chinese message for a knowledge-base problem; the English detail stays for searching."""
    if isinstance(exc, ModelMismatch):
        return escape_markdown(exc.rejection.zh)
    if isinstance(exc, StoreError):
        return escape_markdown(exc.zh)
    return f"知识库操作失败:{escape_markdown(str(exc))}"


# ----- the knowledge-base selector ----------------------------------------------------------


def request_kb_switch(name: str) -> None:
    """Select `name` on the next run (a widget's value cannot change once it is drawn)."""
    st.session_state[_SWITCH_KEY] = name


def kb_selector(settings: Settings) -> str:
    """The sidebar selector shared by both pages; returns the selected knowledge base."""
    names = list_kbs(settings)
    if settings.default_kb not in names:
        names.insert(0, settings.default_kb)  # the default exists as soon as it gets a file
    wanted = st.session_state.pop(_SWITCH_KEY, None)
    if wanted is not None:
        if wanted not in names:
            names.append(wanted)
        st.session_state[KB_KEY] = wanted
    if st.session_state.get(KB_KEY) not in names:
        st.session_state[KB_KEY] = settings.default_kb  # deleted elsewhere, or first run
    return st.sidebar.selectbox(
        "知识库",
        names,
        key=KB_KEY,
        help="问答和文档管理都针对这里选中的知识库;在「知识库」页面新建或删除。",
    )


# ----- markdown and html --------------------------------------------------------------------

# Characters that would let text become a link, an image, raw HTML or a formula; the rest of
# Markdown (lists, bold, code) stays, since answers use it.
_MARKDOWN_ACTIVE = re.compile(r"([\\\[\]<>&$`])")
_CITATION = re.compile(r"\[(\d{1,3})\]")


def escape_markdown(text: str) -> str:
    return _MARKDOWN_ACTIVE.sub(r"\\\1", text)


_BARE_URL = re.compile(r"\bhttps?://[^\s<>()`,;,;。、)]+")


def message_markdown(text: str) -> str:
    """A library message (`LlmError.zh`, `Notice.zh`) for Markdown: its `code` stays, and a
    bare URL is closed off, since Markdown would otherwise run the link into the Chinese text
    that follows it without a space."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):  # outside code spans only
        parts[i] = _BARE_URL.sub(lambda m: f"<{m.group(0)}>", parts[i])
    return "`".join(parts)


def anchor_id(turn: int, number: int) -> str:
    return f"zk-src-{turn}-{number}"


def answer_markdown(text: str, turn: int, numbers: Sequence[int]) -> str:
    """The answer as Markdown whose `[n]` markers link to source card n of this turn."""
    known = set(numbers)
    parts: list[str] = []
    position = 0
    for match in _CITATION.finditer(text):
        parts.append(escape_markdown(text[position : match.start()]))
        number = int(match.group(1))
        marker = escape_markdown(match.group(0))
        parts.append(f"[{marker}](#{anchor_id(turn, number)})" if number in known else marker)
        position = match.end()
    parts.append(escape_markdown(text[position:]))
    return "".join(parts)


def file_name(source: str) -> str:
    """The file a source came from: a JSONL record's source is `file.jsonl#record`."""
    return Path(source.split("#", 1)[0]).name


def _highlight(text: str, lo: int, hi: int) -> str:
    lo, hi = max(0, min(lo, len(text))), max(0, min(hi, len(text)))
    if hi <= lo:
        return html.escape(text)
    return (
        html.escape(text[:lo])
        + "<mark>"
        + html.escape(text[lo:hi])
        + "</mark>"
        + html.escape(text[hi:])
    )


def _preview(text: str, span: tuple[int, int] | None, room: int = 120) -> str:
    """The card's one-glance line: the supporting span (or the passage's start), on one line,
    escaped; the whole passage is in the card's expander."""
    lo, hi = span if span and span[1] > span[0] else (0, 0)
    piece = text[lo:hi] if hi > lo else text
    flat = " ".join(piece.split())
    cut = flat[:room] + ("…" if len(flat) > room else "")
    before = "…" if lo > 0 else ""
    after = "…" if hi and hi < len(text) and not cut.endswith("…") else ""
    body = html.escape(before + cut + after)
    return f"<mark>{body}</mark>" if hi > lo else body


@dataclass(frozen=True)
class SourceCard:
    """What a source card shows; the span is in passage-text offsets."""

    number: int
    passage: Passage
    span: tuple[int, int] | None = None  # the supporting span; None highlights nothing
    tag: str = ""  # e.g. 可能相关


def card_for_citation(number: int, passage: Passage, span_start: int, span_end: int) -> SourceCard:
    """Citation spans are page offsets; cards highlight in the passage's own text."""
    lo = span_start - passage.start + passage.header_len
    hi = span_end - passage.start + passage.header_len
    return SourceCard(number, passage, (lo, hi))


def render_source_card(card: SourceCard, turn: int) -> None:
    p = card.passage
    where = [html.escape(file_name(p.source))]
    if p.page is not None:
        where.append(f"第 {p.page} 页")
    headings = [h for h in p.headings if h != p.title]
    if headings:
        where.append(html.escape(" › ".join(headings)))
    # The cosine is what the relevance floor applies to; the bar shows the fused score, which
    # ranks passages within this one question.
    rank = max(0.0, min(1.0, p.score))
    tag = f'<span class="zk-tag">{html.escape(card.tag)}</span>' if card.tag else ""
    lo, hi = card.span or (0, 0)
    with st.container(border=True):
        st.html(
            f'<div id="{anchor_id(turn, card.number)}" class="zk-card-head">'
            f'<span class="zk-num">[{card.number}]</span>'
            f'<span class="zk-title">{html.escape(p.title)}</span>'
            f'<span class="zk-meta">{" · ".join(where)}</span>{tag}'
            f'<span class="zk-score" title="语义相似度 {p.dense:.3f} · '
            f'本次检索排名得分 {rank:.2f}">'
            f'相关度 {p.dense:.2f}<span class="zk-bar"><span style="width:{rank:.0%}">'
            "</span></span></span></div>"
            f'<div class="zk-quote">{_preview(p.text, card.span)}</div>'
        )
        with st.expander("展开原文段落"):
            st.html(f'<div class="zk-passage">{_highlight(p.text, lo, hi)}</div>')
            st.caption(
                f"文件:{file_name(p.source)} · 语义相似度 {p.dense:.3f} · 综合得分 {p.score:.2f}"
            )


# ----- answers as Markdown ------------------------------------------------------------------


def _source_line(number: int, passage: Passage) -> str:
    page = f",第 {passage.page} 页" if passage.page is not None else ""
    return f"[{number}] 《{passage.title}》 {file_name(passage.source)}{page}"


def export_markdown(question: str, result: AnswerResult) -> str:
    """An answer with its sources, for copying into notes."""
    lines = [f"**问:** {question}", ""]
    if result.refused:
        lines.append("知识库中没有找到相关内容。")
    elif result.answer:
        lines.append(result.answer)
    else:
        lines.append("(仅检索模式:以下为最相关的段落)")
    if result.citations:
        lines += ["", "**来源**", ""]
        for citation in result.citations:
            lines.append(_source_line(citation.number, citation.passage))
            quote = " ".join(citation.quote.split())
            if quote:
                lines.append(f"> {quote}")
            lines.append("")
    lines.append(f"*由 知库 生成 · {result.backend.label_zh}*")
    return "\n".join(lines).rstrip() + "\n"


def timing_line(result: AnswerResult) -> str:
    t = result.timings
    parts = [result.backend.label_zh, f"检索 {t.get('retrieval_s', 0):.2f} 秒"]
    if "first_token_s" in t:
        parts.append(f"首字 {t['first_token_s']:.1f} 秒")
    parts.append(f"共 {t.get('total_s', 0):.1f} 秒")
    return " · ".join(parts)


# ----- ingestion progress -------------------------------------------------------------------


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
