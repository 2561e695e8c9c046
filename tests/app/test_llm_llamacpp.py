"""The embedded model in its supervised worker process.

Most tests run the real worker (`app/_worker.py`) with the bundled model. Two behaviours cannot be
produced by the real worker on these machines, and use the protocol-speaking test double
`fake_worker.py` instead: a CPU that traps (SIGILL) at the first generation, and scripted
answers to count turns and crashes without a model's minutes per case.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from langchain_core.messages import AIMessage, ChatMessage, HumanMessage, SystemMessage, ToolMessage
from support import MODELS_DIR, make_settings

import app._llm_llamacpp as mod
from app._gguf import BUNDLED_GGUF_NAME, bundled_parts
from app._llm import LlmError, current, resolve_backend
from ingest.settings import Settings

FAKE_WORKER = Path(__file__).with_name("fake_worker.py")


@pytest.fixture(autouse=True)
def no_workers_left() -> Iterator[None]:
    mod.stop_workers()
    yield
    mod.stop_workers()
    zombies = [p for p in psutil.Process().children() if p.status() == psutil.STATUS_ZOMBIE]
    assert zombies == []


@pytest.fixture
def fake_gguf(tmp_path: Path) -> Path:
    path = tmp_path / "fake.gguf"
    path.write_bytes(b"GGUF\x03\x00\x00\x00")
    return path


def with_fake_worker(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    monkeypatch.setattr(
        mod.WorkerSpec, "argv", lambda self: [sys.executable, str(FAKE_WORKER), mode]
    )


def fake_settings(tmp_path: Path, gguf: Path, **overrides: Any) -> Settings:
    return make_settings(tmp_path / "home", llamacpp_model_path=gguf, **overrides)


# --------------------------------------------------------------------------- pure parts


def test_messages_become_role_dicts() -> None:
    messages = [
        SystemMessage("规则"),
        HumanMessage("问题"),
        AIMessage("回答"),
        ChatMessage(role="user", content="再问"),
    ]
    assert mod.to_openai_messages(messages) == [
        {"role": "system", "content": "规则"},
        {"role": "user", "content": "问题"},
        {"role": "assistant", "content": "回答"},
        {"role": "user", "content": "再问"},
    ]
    with pytest.raises(ValueError, match="ToolMessage"):
        mod.to_openai_messages([ToolMessage("x", tool_call_id="1")])


def test_ollama_format_becomes_llamacpp_response_format() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    assert mod.response_format(None) is None
    assert mod.response_format("json") == {"type": "json_object"}
    assert mod.response_format(schema) == {"type": "json_schema", "json_schema": {"schema": schema}}


def test_crash_messages_name_the_signal_and_what_to_do() -> None:
    sigill = mod.crash_error(-signal.SIGILL, "start")
    assert "SIGILL" in sigill.en and "AVX2" in sigill.en and "Ollama" in sigill.en
    assert "SIGILL" in sigill.zh and "指令集" in sigill.zh and "LLM_BACKEND=none" in sigill.zh
    killed = mod.crash_error(-signal.SIGKILL, "answer")
    assert "out-of-memory" in killed.en and "内存不足" in killed.zh
    segv = mod.crash_error(-signal.SIGSEGV, "answer")
    assert "SIGSEGV" in segv.en and "重新启动" in segv.zh
    assert "exit code 7" in mod.crash_error(7, "answer").en


# --------------------------------------------------------------------------- test double


def test_sigill_at_the_self_check_falls_back_to_retrieval_with_the_reason(
    tmp_path: Path, fake_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_fake_worker(monkeypatch, "sigill-at-check")
    monkeypatch.setattr(mod, "cpu_flags", lambda: {"avx", "avx512f", "amx_tile", "fma", "f16c"})
    monkeypatch.setattr(mod, "llamacpp_installed", lambda settings=None: True)
    settings = fake_settings(
        tmp_path, fake_gguf, llm_backend="auto", ollama_host="http://127.0.0.1:9"
    )

    resolved = resolve_backend(settings)
    assert resolved.chat is None and resolved.info.kind == "none"
    assert resolved.notice is not None
    assert "SIGILL" in resolved.notice.zh and "启动自检时" in resolved.notice.zh
    # the CPU flags involved, and that AVX2 (which the build needs) is missing on this "CPU"
    assert "avx512f, amx_tile" in resolved.notice.en and "lacks avx2" in resolved.notice.en

    # reported once: the same process does not try (and crash) again at every question
    spec = mod.WorkerSpec(str(fake_gguf.resolve()), settings.llamacpp_n_ctx, settings.threads)
    starts = mod.supervisor_for(spec).status.starts
    assert starts == 1
    with pytest.raises(LlmError, match="SIGILL"):
        resolve_backend(settings, "llamacpp")
    assert mod.supervisor_for(spec).status.starts == starts


def test_a_worker_that_cannot_load_the_model_says_so(
    tmp_path: Path, fake_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_fake_worker(monkeypatch, "fail-to-load")
    with pytest.raises(LlmError, match=r"could not load fake\.gguf: llama_model_load"):
        resolve_backend(fake_settings(tmp_path, fake_gguf, llamacpp_threads=2), "llamacpp")


def test_second_caller_waits_its_turn_and_gets_its_own_answer(
    tmp_path: Path, fake_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_fake_worker(monkeypatch, "answer")
    chat = resolve_backend(fake_settings(tmp_path, fake_gguf), "llamacpp").chat
    assert chat is not None
    answers: dict[str, str] = {}

    def ask(name: str) -> None:
        answers[name] = "".join(str(c.content) for c in chat.stream([HumanMessage(name)]))

    threads = [threading.Thread(target=ask, args=(f"tab{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    whole = "".join(mod_tokens())
    assert answers == {"tab0": whole, "tab1": whole, "tab2": whole}  # none interleaved


def mod_tokens() -> list[str]:
    sys.path.insert(0, str(FAKE_WORKER.parent))
    try:
        import fake_worker

        return list(fake_worker.TOKENS)
    finally:
        sys.path.pop(0)


def test_a_busy_model_tells_the_second_caller(
    tmp_path: Path, fake_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_fake_worker(monkeypatch, "answer")
    chat = resolve_backend(fake_settings(tmp_path, fake_gguf), "llamacpp").chat
    assert isinstance(chat, mod.WorkerChat)
    impatient = chat.model_copy(update={"busy_timeout_s": 0.01})
    first = chat.stream([HumanMessage("一")])
    next(first)  # holds the model
    with pytest.raises(LlmError, match="busy") as info:
        list(impatient.stream([HumanMessage("二")]))
    assert "正在回答另一个问题" in info.value.zh
    rest = "".join(str(c.content) for c in first)
    assert rest.endswith("。")
    # an abandoned stream releases the model and cancels the generation in the worker
    abandoned = chat.stream([HumanMessage("三")])
    next(abandoned)
    abandoned.close()
    assert "".join(str(c.content) for c in impatient.stream([HumanMessage("四")])).endswith("。")


def test_usage_reports_prompt_tokens_and_the_cached_prefix(
    tmp_path: Path, fake_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_fake_worker(monkeypatch, "answer")
    chat = resolve_backend(fake_settings(tmp_path, fake_gguf), "llamacpp").chat
    assert chat is not None
    message = chat.invoke([HumanMessage("问")])
    assert message.usage_metadata is not None
    assert message.usage_metadata["input_tokens"] == 15  # 10 evaluated + 5 from the cache
    assert message.usage_metadata["input_token_details"] == {"cache_read": 5}


def test_repeated_crashes_switch_to_retrieval_only(
    tmp_path: Path, fake_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_fake_worker(monkeypatch, "answer")
    resolved = resolve_backend(fake_settings(tmp_path, fake_gguf), "llamacpp")
    chat = resolved.chat
    assert isinstance(chat, mod.WorkerChat)
    for crash in range(mod.MAX_CRASHES):
        stream = chat.stream([HumanMessage("问")])
        next(stream)
        os.kill(chat.supervisor.status.pid or 0, signal.SIGSEGV)
        with pytest.raises(mod.WorkerCrashed, match="SIGSEGV"):
            list(stream)
        if crash < mod.MAX_CRASHES - 1:
            assert current(resolved) is resolved  # the next question starts a fresh worker
    fallback = current(resolved)
    assert fallback.chat is None and fallback.notice is not None
    assert "仅检索" in fallback.notice.zh and "SIGSEGV" in fallback.notice.zh


# --------------------------------------------------------------------------- the real worker


def _real_model_missing() -> str | None:
    if importlib.util.find_spec("xllamacpp") is None:
        return 'xllamacpp is not installed (pip install -e ".[llm]")'
    try:
        bundled_parts()
    except LlmError as exc:
        return exc.en
    return None


real_model = pytest.mark.skipif(
    _real_model_missing() is not None, reason=f"embedded LLM not installed: {_real_model_missing()}"
)


def real_settings(tmp_path: Path) -> Settings:
    # the models folder the app uses: the GGUF is assembled only once for app and tests
    return make_settings(tmp_path / "home", zhiku_models_dir=MODELS_DIR, llamacpp_threads=2)


@real_model
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_real_bundled_model_answers_from_the_passage(tmp_path: Path) -> None:
    chat = mod.make_llamacpp_chat(real_settings(tmp_path), temperature=0.0, max_tokens=64)
    assert Path(chat.model_path).name == BUNDLED_GGUF_NAME
    messages = [
        SystemMessage("只根据用户给出的资料回答问题,用中文简短回答。"),
        HumanMessage("资料:[1] 珠穆朗玛峰海拔 8848.86 米。问题:珠穆朗玛峰有多高?"),
    ]
    chunks = [c for c in chat.stream(messages) if c.content]
    answer = "".join(str(c.content) for c in chunks)
    assert len(chunks) >= 2, answer
    assert "8848" in answer
    ready = chat.supervisor.status.ready_info
    assert "AVX2 = 1" in ready["system_info"] and "AVX512" not in ready["system_info"]
    # a JSON schema constrains the output, as Ollama's `format` does
    schema = {
        "type": "object",
        "properties": {"height_m": {"type": "number"}},
        "required": ["height_m"],
    }
    reply = chat.invoke(messages, format=schema)
    assert str(reply.content).strip().startswith("{") and "8848" in str(reply.content)


@real_model
@pytest.mark.slow
def test_worker_process_ends_with_its_parent(tmp_path: Path) -> None:
    """A worker must never outlive the app that started it, even one killed with SIGKILL."""
    import subprocess

    script = (
        "import sys, time\n"
        "from app._llm_llamacpp import make_llamacpp_chat\n"
        "from support import make_settings, MODELS_DIR\n"
        "from pathlib import Path\n"
        f"s = make_settings(Path({str(tmp_path)!r}), zhiku_models_dir=MODELS_DIR)\n"
        "chat = make_llamacpp_chat(s)\n"
        "print(chat.start().pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    paths = [str(Path(__file__).parents[2]), str(Path(__file__).parents[1])]  # repo, tests
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env)
    assert parent.stdout is not None
    worker_pid = int(parent.stdout.readline())
    worker = psutil.Process(worker_pid)
    assert worker.ppid() == parent.pid
    parent.kill()
    parent.wait()
    worker.wait(timeout=30)  # raises if it is still running
    assert not psutil.pid_exists(worker_pid) or worker.status() == psutil.STATUS_ZOMBIE
