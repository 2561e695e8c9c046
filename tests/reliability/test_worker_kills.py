"""The embedded model's worker killed in the middle of a streamed answer, for real.

Through `answer()`, as the CLI, the API and the web app call it, with the real worker and the
bundled model: the worker is sent SIGKILL (what the kernel's OOM killer does) or SIGSEGV (what a
fault in native code does) after the first tokens, ten times each. Every time the user keeps the
partial answer, marked as cut off, with a message naming the signal; the next question is
answered by a fresh worker; nothing hangs and no zombie process is left.
"""

from __future__ import annotations

import importlib.util
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from support import MODELS_DIR, SMALL_CORPUS, build_kb, make_settings

import app._llm_llamacpp as llamacpp
from app._gguf import bundled_parts
from app._llm import LlmError, ResolvedBackend, resolve_backend
from app._rag import AnswerResult, Final, Token, answer
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


def ask(
    kb: KnowledgeBase,
    settings: Settings,
    embedder: Embedder,
    backend: ResolvedBackend,
    kill_with: signal.Signals | None = None,
) -> tuple[AnswerResult, str]:
    """One answer; with `kill_with`, the worker gets that signal after the first two tokens."""
    streamed = ""
    result = None
    tokens = 0
    for event in answer(QUESTION, [], kb, settings, embedder, backend):
        if isinstance(event, Token):
            streamed += event.text
            tokens += 1
            if kill_with is not None and tokens == 2:
                pid = llamacpp_pid(backend)
                os.kill(pid, kill_with)
        elif isinstance(event, Final):
            result = event.result
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
            assert cut.partial, cut.error_en
            assert cut.error_zh is not None and kill_with.name in cut.error_zh
            assert cut.answer and streamed.startswith(cut.answer[:2])
            assert killed not in {p.pid for p in psutil.Process().children()}  # reaped

            whole, _ = ask(kb, kb_settings, embedder, backend)
            assert whole.error_en is None and not whole.partial
            assert not whole.refused and "香樟" in whole.answer, whole.answer
            assert zombies() == []
    assert len(pids) == KILLS_PER_SIGNAL  # a fresh worker after every kill
    children = [p for p in psutil.Process().children() if p.status() != psutil.STATUS_ZOMBIE]
    assert [p.pid for p in children] == [llamacpp_pid(backend)]  # only the live one
