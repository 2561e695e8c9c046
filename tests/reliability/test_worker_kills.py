"""The embedded model's worker killed in the middle of a streamed answer, for real.

Through `answer()`, as the CLI, the API and the web app call it, with the real worker and the
bundled model: the worker is sent SIGKILL (what the kernel's OOM killer does) or SIGSEGV (what a
fault in native code does) after the model's first two tokens, ten times each. Every time the
user keeps what was already shown (the checked sentences; often nothing yet, since a sentence is
shown once it is whole) with a message naming the signal; the next question is answered by a
fresh worker; nothing hangs and no zombie process is left.
"""

from __future__ import annotations

import importlib.util
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from langchain_core.callbacks import BaseCallbackHandler
from support import MODELS_DIR, SMALL_CORPUS, build_kb, make_settings

import app._llm_llamacpp as llamacpp
from app._gguf import bundled_parts
from app._llm import LlmError, ResolvedBackend, resolve_backend
from app._llm_runtimes import is_worker
from app.answer import AnswerResult, Final, Token, answer
from ingest._embed import Embedder
from ingest._store import KnowledgeBase
from ingest.settings import Settings

KILLS_PER_SIGNAL = 10
QUESTION = "杭州的市树是什么？"


def _model_missing() -> str | None:
    if importlib.util.find_spec("xllamacpp") is None:
        return "xllamacpp is not installed"
    try:
        bundled_parts()
    except LlmError as exc:
        return exc.en
    return None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(_model_missing() is not None, reason=f"no embedded LLM: {_model_missing()}"),
]


@pytest.fixture
def kb_settings(tmp_path: Path, embedder: Embedder) -> Iterator[Settings]:
    settings = make_settings(
        tmp_path / "home",
        zhiku_models_dir=MODELS_DIR,
        llm_backend="llamacpp",
        llm_max_tokens=24,  # the answer's length is not what is tested here
        context_chars=300,
    )
    build_kb(settings, embedder, SMALL_CORPUS, name=settings.default_kb)
    llamacpp.stop_workers()
    yield settings
    llamacpp.stop_workers()


class KillAfter(BaseCallbackHandler):
    """Sends the worker a signal after the model's `after`-th generated token (the raw stream,
    before any check: what the user sees comes later, sentence by sentence)."""

    def __init__(self, pid: int, kill_with: signal.Signals, after: int = 2) -> None:
        self.pid, self.kill_with, self.after, self.seen = pid, kill_with, after, 0

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.seen += 1
        if self.seen == self.after:
            os.kill(self.pid, self.kill_with)


def ask(
    kb: KnowledgeBase,
    settings: Settings,
    embedder: Embedder,
    backend: ResolvedBackend,
    kill_with: signal.Signals | None = None,
) -> tuple[AnswerResult, str]:
    """One answer; with `kill_with`, the worker gets that signal after the first two tokens."""
    chat = backend.chat
    assert isinstance(chat, llamacpp.WorkerChat)
    chat.callbacks = [KillAfter(llamacpp_pid(backend), kill_with)] if kill_with else None
    streamed = ""
    result = None
    try:
        for event in answer(QUESTION, [], kb, settings, embedder, backend):
            if isinstance(event, Token):
                streamed += event.text
            elif isinstance(event, Final):
                result = event.result
    finally:
        chat.callbacks = None
    assert result is not None
    return result, streamed


def llamacpp_pid(backend: ResolvedBackend) -> int:
    assert isinstance(backend.chat, llamacpp.WorkerChat)
    pid = backend.chat.supervisor.status.pid
    assert pid is not None
    return pid


def zombies() -> list[psutil.Process]:
    return [p for p in psutil.Process().children() if p.status() == psutil.STATUS_ZOMBIE]


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("kill_with", [signal.SIGKILL, signal.SIGSEGV], ids=["SIGKILL", "SIGSEGV"])
def test_a_killed_worker_keeps_the_partial_answer_and_the_next_question_is_answered(
    kb_settings: Settings, embedder: Embedder, kill_with: signal.Signals
) -> None:
    backend = resolve_backend(kb_settings)
    assert backend.info.kind == "llamacpp"
    pids: set[int] = set()
    with KnowledgeBase.open(kb_settings) as kb:
        for _ in range(KILLS_PER_SIGNAL):
            killed = llamacpp_pid(backend)
            pids.add(killed)
            cut, streamed = ask(kb, kb_settings, embedder, backend, kill_with=kill_with)
            assert cut.error_zh is not None and kill_with.name in cut.error_zh, cut
            assert not cut.refused
            # what was shown stays, marked as incomplete; nothing else is made up
            assert (cut.partial and cut.answer.startswith(streamed[:2])) or not streamed
            assert killed not in {p.pid for p in psutil.Process().children()}  # reaped

            whole, _ = ask(kb, kb_settings, embedder, backend)
            assert whole.error_en is None and not whole.partial
            assert not whole.refused and "香樟" in whole.answer, whole.answer
            assert zombies() == []
    assert len(pids) == KILLS_PER_SIGNAL  # a fresh worker after every kill
    # of the embedded-model workers this process started, only the live one is left (other
    # tests of the session keep servers of their own running)
    workers = [
        p.pid
        for p in psutil.Process().children()
        if p.status() != psutil.STATUS_ZOMBIE and is_worker(p.cmdline())
    ]
    assert workers == [llamacpp_pid(backend)]
