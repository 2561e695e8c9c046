"""What every page of the web app shares: settings, the cached models and knowledge bases, the
page header and the knowledge-base selector.

Settings are read from the environment (and `.env`) on every run: that costs about 2 ms, lets a
changed `.env` apply without a restart, and lets tests point the app at a throwaway data home by
setting environment variables. Everything expensive is cached per process, keyed by the setting
values it depends on: the embedder per model (the library's own process-wide cache), the
resolved LLM backend per (kind, temperature) (`st.cache_resource`), and, in `app._background`
beside the scheduler, watchers and warm-up that `zhiku web` starts with the process, one
`KnowledgeBase` per data home and name (it is thread-safe and re-reads its database on every
call, so one instance serves every session). Document lists are never cached: the CLI may change
them at any time.

Pages read and write knowledge bases only through the service (`get_service`), which checks the
rights of the person using the page (`current_user`) before it does anything.
"""

from __future__ import annotations

import html

import streamlit as st

from app._background import BACKEND_FIELDS, background
from app._llm import BackendInfo, LlmError, ResolvedBackend, current, resolve_backend
from app._warmup import Warmup
from app.service import KbInfo, Service, ServiceError
from app.ui.login import current_user
from app.ui.markdown import escape_markdown
from ingest.settings import Settings
from ingest.store import ModelMismatch, StoreError

APP_TITLE = "知库"
APP_ICON = "📚"
KB_KEY = "kb"  # session-state key of the selected knowledge base
_SWITCH_KEY = "kb_switch_to"
RETURN_TO_KB_KEY = "return_to_kb_page"  # the knowledge-base page asked the router to come back
RETURN_TO_INSPECT_KEY = "return_to_inspect_page"  # the same for the inspector
RETURN_TO_PEOPLE_KEY = "return_to_people_page"  # and for 成员与权限

BACKEND_CHOICES = ("auto", "ollama", "llamacpp", "none")
BACKEND_LABELS = {
    "auto": "自动选择",
    "ollama": "Ollama",
    "llamacpp": "内置模型(llama.cpp)",
    "none": "仅检索(不生成回答)",
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
.zk-chunk {max-height:10rem;}
[data-testid="stColumn"]:has(.zk-viewer) {position:sticky; top:3.5rem; align-self:flex-start;
  max-height:calc(100vh - 8rem); overflow-y:auto; border-left:1px solid #e5e7eb;
  padding-left:.8rem;}
.zk-viewer-text {white-space:pre-wrap; word-break:break-word; font-size:.92rem; line-height:1.8;
  color:#1f2937; max-height:60vh; overflow:auto; background:#fafafa; border:1px solid #e5e7eb;
  border-radius:.4rem; padding:.6rem .8rem;}
.zk-viewer-text mark, .zk-viewer-found mark {background:#fde68a; padding:0 .1rem;
  border-radius:.15rem;}
.zk-viewer-page {text-align:center; font-size:.9rem; color:#374151;}
.zk-viewer-found {font-size:.85rem; color:#374151; margin:.2rem 0 .4rem 0;}
.zk-tokens {display:flex; flex-wrap:wrap; gap:.3rem; align-items:center; font-size:.9rem;}
.zk-token {border-radius:.3rem; background:#eef2ff; color:#3730a3; padding:0 .4rem;
  font-family:monospace;}
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


def get_service(settings: Settings) -> Service:
    """The service every page acts through, with this run's settings and the app's shared
    knowledge-base instances (`app._background`: the ones the warm-up loaded)."""
    return background(settings).service(settings)


@st.cache_resource(show_spinner="正在加载嵌入模型(首次启动需要十几秒)…")
def _embedder_loaded(model: str, models_dir: str, _settings: Settings) -> bool:
    get_service(_settings).embedder()
    return True


def load_embedder(settings: Settings) -> None:
    """Load the embedding model (once per model: later calls return at once), with a spinner."""
    _embedder_loaded(settings.embedding_model, str(settings.models_dir.resolve()), settings)


def kb_info(settings: Settings, name: str) -> KbInfo | None:
    """What knowledge base `name` holds, or None when it does not exist (yet), or when the
    person using the page may not read it."""
    who, service = current_user(), get_service(settings)
    if name not in service.kb_names(who):
        return None
    return service.kb_info(who, name)


def forget_kb(settings: Settings, name: str) -> None:
    """Drop the shared instance of a deleted knowledge base."""
    background(settings).forget_kb(name)


@st.cache_resource(
    show_spinner="正在准备大模型(内置模型首次启动需加载并自检)…", ttl=300, max_entries=16
)
def _cached_backend(
    kind: str, temperature: float, settings_key: str, _settings: Settings
) -> ResolvedBackend:
    # Expires after a few minutes so that "auto" notices an Ollama started meanwhile; the
    # embedded model's worker process stays running, shared by every session of this app.
    return resolve_backend(_settings, kind)  # type: ignore[arg-type]


def get_backend(settings: Settings) -> tuple[ResolvedBackend, LlmError | None]:
    """The backend for `settings.llm_backend` at `settings.llm_temperature`. An explicit choice
    that cannot work (not cached, so it is retried on the next question) falls back to
    retrieval only, with the reason to show."""
    try:
        resolved = _cached_backend(
            settings.llm_backend,
            settings.llm_temperature,
            settings.model_dump_json(include=BACKEND_FIELDS),
            settings,
        )
    except LlmError as exc:
        return ResolvedBackend(None, BackendInfo("none", ""), exc), exc
    return current(resolved), None


def get_warmup(settings: Settings, kb_name: str) -> Warmup:
    """The app's warm-up for these settings and knowledge base: the one `zhiku web` started
    with the process for the default knowledge base, or started now by the first page that asks
    (in background threads: the page draws meanwhile and shows its progress)."""
    return background(settings).warmup(settings, kb_name)


def store_error_zh(exc: Exception) -> str:
    """A Chinese message for a knowledge-base problem; the English detail stays for searching."""
    if isinstance(exc, ModelMismatch):
        return escape_markdown(exc.rejection.zh)
    if isinstance(exc, StoreError | ServiceError):
        return escape_markdown(exc.zh)
    return f"知识库操作失败:{escape_markdown(str(exc))}"


# ----- the knowledge-base selector ----------------------------------------------------------


def request_kb_switch(name: str) -> None:
    """Select `name` on the next run (a widget's value cannot change once it is drawn)."""
    st.session_state[_SWITCH_KEY] = name


def kb_selector(settings: Settings) -> str:
    """The sidebar selector shared by both pages; returns the selected knowledge base: one the
    person using the page may read (the page stops with why when there is none)."""
    who = current_user()
    names = get_service(settings).kb_names(who)
    if settings.default_kb not in names and who.can_write(settings.default_kb):
        names.insert(0, settings.default_kb)  # the default exists as soon as it gets a file
    if not names:
        st.info("还没有你可以访问的知识库：请让管理员为你授权。", icon=":material/lock:")
        st.stop()
    wanted = st.session_state.pop(_SWITCH_KEY, None)
    if wanted is not None:
        if wanted not in names and who.can_read(wanted):
            names.append(wanted)
        st.session_state[KB_KEY] = wanted
    if st.session_state.get(KB_KEY) not in names:
        # deleted elsewhere, a grant taken away, or the first run
        st.session_state[KB_KEY] = settings.default_kb if settings.default_kb in names else names[0]
    return st.sidebar.selectbox(
        "知识库",
        names,
        key=KB_KEY,
        help="问答和文档管理都针对这里选中的知识库;在「知识库」页面新建或删除。",
    )
