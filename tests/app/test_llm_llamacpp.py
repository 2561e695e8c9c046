"""The embedded model in its supervised worker process.

Most tests run the real worker (`app/_worker.py`) with the bundled model. Two behaviours cannot be
produced by the real worker on these machines, and use the protocol-speaking test double
`fake_worker.py` instead: a CPU that traps (SIGILL) at the first generation, and scripted
answers to count turns and crashes without a model's minutes per case.
"""

from __future__ import annotations

import importlib.util
import json
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
from app._llm import BackendInfo, LlmError, ResolvedBackend, current, resolve_backend
from app._llm_runtimes import Runtime, runtime_installed
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


def test_speculation_and_flash_attention_go_to_the_runtime_that_has_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(mod, "worker_command", lambda runtime: [runtime])
    monkeypatch.setattr(mod, "runtime_version", lambda runtime: "1.0")
    node = mod.WorkerSpec("m.gguf", 4096, 2, "p.json", "/kv/prefix.bin", "node-llama-cpp", 3, True)
    argv = node.argv()
    assert argv[argv.index("--draft") + 1] == "3" and "--flash-attention" in argv
    # flash attention lays the KV cache out otherwise: its saved prefix is a file of its own
    assert argv[-1] == "/kv/prefix-node-llama-cpp-1.0-fa.bin"
    plain = mod.WorkerSpec("m.gguf", 4096, 2, "p.json", "/kv/prefix.bin", "node-llama-cpp", 0)
    assert "--flash-attention" not in plain.argv()
    assert plain.argv()[-1] == "/kv/prefix-node-llama-cpp-1.0.bin"
    # xllamacpp's worker takes neither option
    python = mod.WorkerSpec("m.gguf", 4096, 2, "p.json", "/kv/prefix.bin", "xllamacpp", 3, True)
    assert "--draft" not in python.argv() and "--flash-attention" not in python.argv()
    assert python.argv()[-1] == "/kv/prefix-xllamacpp-1.0.bin"


def test_crash_messages_name_the_signal_and_what_to_do() -> None:
    sigill = mod.crash_error(-signal.SIGILL, "start")
    assert "SIGILL" in sigill.en and "AVX2" in sigill.en and "Ollama" in sigill.en
    assert "SIGILL" in sigill.zh and "指令集" in sigill.zh and "LLM_BACKEND=none" in sigill.zh
    # node-llama-cpp picks its CPU library itself: the way out is the other runtime
    chosen = mod.crash_error(-signal.SIGILL, "answer", "node-llama-cpp")
    assert "AVX2 with FMA" not in chosen.en and "LLAMACPP_RUNTIME=xllamacpp" in chosen.en
    assert "LLAMACPP_RUNTIME=xllamacpp" in chosen.zh and "CPU 库" in chosen.zh
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

    # reported once: the same process does not try (and crash) again at every question, with
    # any runtime installed here (each failed once, the next took over, the last one failed)
    supervisors = list(mod._SUPERVISORS.values())
    assert supervisors and all(s.status.starts == 1 for s in supervisors)
    with pytest.raises(LlmError, match="SIGILL"):
        resolve_backend(settings, "llamacpp")
    assert all(s.status.starts == 1 for s in supervisors)


def test_a_runtime_failing_its_self_check_hands_over_to_the_next(
    tmp_path: Path, fake_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The CPU-dispatching runtime dies with SIGILL where the AVX2 one answers.
    monkeypatch.setattr(
        mod.WorkerSpec,
        "argv",
        lambda self: [
            sys.executable,
            str(FAKE_WORKER),
            "sigill-at-check" if self.runtime == "node-llama-cpp" else "answer",
        ],
    )
    monkeypatch.setattr(mod, "runtimes_for", lambda settings: ("node-llama-cpp", "xllamacpp"))
    chat = mod.make_llamacpp_chat(fake_settings(tmp_path, fake_gguf))
    answer = "".join(mod_tokens())

    resolved = ResolvedBackend(chat, BackendInfo("llamacpp", "fake.gguf", "node-llama-cpp"))
    assert chat.invoke("问题").content == answer
    assert chat.supervisor.spec.runtime == "xllamacpp"
    # what the page says answers now: the runtime that took over
    assert current(resolved).info.label_zh == "内置模型 · fake.gguf · xllamacpp"
    [node] = [s for s in mod._SUPERVISORS.values() if s.spec.runtime == "node-llama-cpp"]
    assert node.disabled is not None and "SIGILL" in node.disabled.en
    assert chat.invoke("再问").content == answer
    assert node.status.starts == 1  # not tried again at every question

    # Named explicitly, a runtime that cannot run is an error, not a silent switch.
    mod.stop_workers()
    monkeypatch.setattr(mod, "runtimes_for", lambda settings: ("node-llama-cpp",))
    with pytest.raises(LlmError, match="SIGILL"):
        mod.make_llamacpp_chat(fake_settings(tmp_path, fake_gguf)).invoke("问题")


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
    # Each installed runtime in turn: crashes in a row switch one off and the next takes over.
    for runtime in chat.runtimes:
        for crash in range(mod.MAX_CRASHES):
            assert chat.supervisor.spec.runtime == runtime
            crash_once(chat)
            if runtime != chat.runtimes[-1] or crash < mod.MAX_CRASHES - 1:
                # the next question starts a fresh worker (of the runtime that took over)
                now = current(resolved)
                assert now.chat is chat and now.info.runtime == chat.supervisor.spec.runtime
    fallback = current(resolved)
    assert fallback.chat is None and fallback.notice is not None
    assert "仅检索" in fallback.notice.zh and "SIGSEGV" in fallback.notice.zh


def crash_once(chat: mod.WorkerChat) -> None:
    stream = chat.stream([HumanMessage("问")])
    next(stream)
    os.kill(chat.supervisor.status.pid or 0, signal.SIGSEGV)
    with pytest.raises(mod.WorkerCrashed):
        list(stream)


def test_a_completed_answer_ends_a_crash_streak(
    tmp_path: Path, fake_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash now and then is survived: only crashes in a row switch the model off."""
    with_fake_worker(monkeypatch, "answer")
    resolved = resolve_backend(fake_settings(tmp_path, fake_gguf), "llamacpp")
    chat = resolved.chat
    assert isinstance(chat, mod.WorkerChat)
    for _ in range(3):
        for _ in range(mod.MAX_CRASHES - 1):
            crash_once(chat)
        assert "".join(str(c.content) for c in chat.stream([HumanMessage("问")])).endswith("。")
    assert current(resolved) is resolved
    assert chat.supervisor.status.crashes == 3 * (mod.MAX_CRASHES - 1)


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


def real_settings(tmp_path: Path, **overrides: Any) -> Settings:
    # the models folder the app uses: the GGUF is assembled only once for app and tests
    values: dict[str, Any] = {"zhiku_models_dir": MODELS_DIR, "llamacpp_threads": 2}
    return make_settings(tmp_path / "home", **(values | overrides))


INSTALLED_RUNTIMES = [r for r in ("node-llama-cpp", "xllamacpp") if runtime_installed(r)]


@real_model
@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("runtime", INSTALLED_RUNTIMES)
def test_real_bundled_model_answers_from_the_passage(tmp_path: Path, runtime: Runtime) -> None:
    settings = real_settings(tmp_path, llamacpp_runtime=runtime)
    chat = mod.make_llamacpp_chat(settings, temperature=0.0, max_tokens=64)
    assert Path(chat.model_path).name == BUNDLED_GGUF_NAME
    assert chat.supervisor.spec.runtime == runtime
    messages = [
        SystemMessage("只根据用户给出的资料回答问题,用中文简短回答。"),
        HumanMessage("资料:[1] 珠穆朗玛峰海拔 8848.86 米。问题:珠穆朗玛峰有多高?"),
    ]
    chunks = [c for c in chat.stream(messages) if c.content]
    answer = "".join(str(c.content) for c in chunks)
    assert len(chunks) >= 2, answer
    assert "8848" in answer
    ready = chat.supervisor.status.ready_info
    if runtime == "xllamacpp":  # one build, for every x86-64 CPU with AVX2
        assert "AVX2 = 1" in ready["system_info"] and "AVX512" not in ready["system_info"]
    else:  # the CPU library picked at start is one this CPU (and its OS) can run
        assert_cpu_runs(ready["cpu_variant"])
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


def test_a_restart_that_fails_after_earlier_answers_counts_as_one_crash(
    tmp_path: Path, fake_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a worker that never started is given up at once; a failed restart (the OOM killer at
    a busy moment) is one crash of the streak, and the next question tries again."""
    with_fake_worker(monkeypatch, "answer")
    resolved = resolve_backend(fake_settings(tmp_path, fake_gguf), "llamacpp")
    chat = resolved.chat
    assert isinstance(chat, mod.WorkerChat)
    crash_once(chat)
    with_fake_worker(monkeypatch, "sigill-at-check")
    with pytest.raises(mod.WorkerCrashed, match="SIGILL"):
        list(chat.stream([HumanMessage("问")]))
    assert current(resolved) is resolved
    with_fake_worker(monkeypatch, "answer")
    assert "".join(str(c.content) for c in chat.stream([HumanMessage("问")])).endswith("。")


# What each of llama.cpp's x86-64 CPU libraries (GGML_CPU_ALL_VARIANTS) is compiled for, as
# /proc/cpuinfo names it: the library picked at start must need nothing this CPU lacks.
VARIANT_NEEDS: dict[str, set[str]] = {
    "x64": set(),
    "sse42": {"sse4_2"},
    "sandybridge": {"sse4_2", "avx"},
    "ivybridge": {"sse4_2", "avx", "f16c"},
    "piledriver": {"sse4_2", "avx", "f16c", "fma"},
    "haswell": {"avx2", "fma", "f16c", "bmi2"},
    "skylakex": {"avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512dq"},
    "cannonlake": {"avx512f", "avx512bw", "avx512vl", "avx512vbmi"},
    "cascadelake": {"avx512f", "avx512bw", "avx512vl", "avx512_vnni"},
    "icelake": {"avx512f", "avx512bw", "avx512vl", "avx512vbmi", "avx512_vnni"},
    "cooperlake": {"avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16"},
    "zen4": {"avx512f", "avx512bw", "avx512vl", "avx512vbmi", "avx512_vnni", "avx512_bf16"},
    "alderlake": {"avx2", "fma", "f16c", "avx_vnni"},
    "sapphirerapids": {"avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8"},
}


def assert_cpu_runs(variant: str) -> None:
    from ingest._cpu import amx_granted, cpu_flags

    assert variant in VARIANT_NEEDS, f"an unknown CPU library was loaded: {variant!r}"
    missing = VARIANT_NEEDS[variant] - cpu_flags()
    assert not missing, f"{variant} needs {sorted(missing)}, which this CPU does not report"
    if "amx_tile" in VARIANT_NEEDS[variant]:
        assert amx_granted(), "an AMX library was loaded where the OS does not grant AMX"


@real_model
@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.skipif(len(INSTALLED_RUNTIMES) < 2, reason="one llama.cpp runtime installed")
def test_both_runtimes_read_the_same_prompt_and_answer_alike(tmp_path: Path) -> None:
    """The node worker renders messages with the GGUF's chat template as llama.cpp's server
    does: a different rendering would change every answer's prompt."""
    from app.answer.prompt import answer_schema

    messages = [
        SystemMessage("只根据资料回答问题。先列出依据的句子编号,再写答案。"),
        HumanMessage(
            "资料:\n[1] 杭州的市树是香樟。\n[2] 杭州的市花是桂花。\n问题:杭州的市花是什么?"
        ),
    ]
    replies = {}
    for runtime in INSTALLED_RUNTIMES:
        settings = real_settings(tmp_path, llamacpp_runtime=runtime)
        chat = mod.make_llamacpp_chat(settings, temperature=0.0, max_tokens=48)
        reply = chat.invoke(messages, format=answer_schema(2))
        usage = reply.usage_metadata
        assert usage is not None
        replies[runtime] = (usage["input_tokens"], json.loads(str(reply.content)))
        mod.stop_workers()
    prompt_tokens = {tokens for tokens, _ in replies.values()}
    assert len(prompt_tokens) == 1, replies
    for _, parsed in replies.values():
        assert parsed["evidence"] == [2] and "桂花" in parsed["answer"], replies


@real_model
@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.skipif("node-llama-cpp" not in INSTALLED_RUNTIMES, reason="node-llama-cpp missing")
def test_tokens_guessed_from_the_prompt_leave_the_reply_as_it_was(tmp_path: Path) -> None:
    """Speculative decoding from the prompt (`LLAMACPP_DRAFT_TOKENS`): a reply that copies the
    prompt's words is confirmed several tokens a batch (with `app/llm_node/patch.mjs`'s fix to
    node-llama-cpp), and at temperature 0 it is the reply the model writes token by token."""
    from app.answer.prompt import answer_schema

    sentence = "2007年5月21日推出的双核处理器的速度为4.7 GHz,是上一代处理器的2倍。"
    copy = [SystemMessage("把用户给出的句子原样抄写一遍,一字不改。"), HumanMessage(sentence)]
    answer = [
        SystemMessage("只根据资料回答问题。先列出依据的句子编号,再摘录原句作答。"),
        HumanMessage(
            f"资料:\n[1] 杭州的市树是香樟。\n[2] {sentence}\n问题:这款处理器的速度是多少?"
        ),
    ]
    replies, timings = {}, {}
    for draft in (0, 3):
        settings = real_settings(
            tmp_path, llamacpp_runtime="node-llama-cpp", llamacpp_draft_tokens=draft
        )
        chat = mod.make_llamacpp_chat(settings, temperature=0.0, max_tokens=64)
        for name, messages, schema in (("copy", copy, None), ("answer", answer, answer_schema(2))):
            chunks = list(chat.stream(messages, format=schema))
            replies[draft, name] = "".join(str(c.content) for c in chunks)
            [timings[draft, name]] = [
                c.response_metadata["timings"] for c in chunks if "timings" in c.response_metadata
            ]
        assert chat.supervisor.status.ready_info["draft_tokens"] == draft
        mod.stop_workers()
    for name in ("copy", "answer"):
        assert replies[3, name] == replies[0, name], replies
        assert timings[0, name]["draft_accepted"] == 0
    assert "4.7 GHz" in replies[0, "copy"] and "4.7 GHz" in replies[0, "answer"]
    # the copied sentence came in batches: most of its ~29 tokens were guesses the model confirmed
    # (unfixed, the library confirms one a batch: about one in two)
    copied = timings[3, "copy"]
    assert copied["draft_accepted"] >= 0.6 * copied["predicted_n"], copied


@real_model
@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("runtime", INSTALLED_RUNTIMES)
def test_the_prompt_prefix_is_evaluated_once_and_restored_by_the_next_worker(
    tmp_path: Path, runtime: Runtime
) -> None:
    from app.answer.prompt import as_langchain, prefix_messages

    prefix = prefix_messages()
    (tmp_path / "models").mkdir()
    # the bundled GGUF, not a copy: only the KV cache folder is this test's own
    settings = real_settings(
        tmp_path,
        llamacpp_runtime=runtime,
        zhiku_models_dir=tmp_path / "models",
        llamacpp_model_path=MODELS_DIR / BUNDLED_GGUF_NAME,
    )
    first = mod.make_llamacpp_chat(settings, temperature=0.0, max_tokens=8, prefix=prefix)
    first.start()
    evaluated = first.supervisor.status.ready_info["prefix"]
    assert evaluated["restored"] is False and evaluated["tokens"] > 300
    mod.stop_workers()

    second = mod.make_llamacpp_chat(settings, temperature=0.0, max_tokens=8, prefix=prefix)
    second.start()
    restored = second.supervisor.status.ready_info["prefix"]
    assert restored["restored"] is True and restored["tokens"] >= evaluated["tokens"] - 8
    reply = second.invoke(
        [*as_langchain(prefix), HumanMessage("资料:\n[1] 天空是蓝色的。\n问题:天空是什么颜色?")]
    )
    usage = reply.usage_metadata
    assert usage is not None
    # the question's prompt read the prefix from the restored cache, not evaluated again
    assert usage["input_token_details"]["cache_read"] >= evaluated["tokens"] - 8


@real_model
@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("runtime", INSTALLED_RUNTIMES)
def test_stop_strings_cancelling_and_the_next_answer(tmp_path: Path, runtime: Runtime) -> None:
    """What follow-up rewriting (a stop string) and an abandoned answer (cancel) rely on."""
    settings = real_settings(tmp_path, llamacpp_runtime=runtime)
    chat = mod.make_llamacpp_chat(settings, temperature=0.0, max_tokens=40)
    count = [HumanMessage("从 1 数到 10,每个数字单独一行,只输出数字。")]
    lines = str(chat.invoke(count).content)
    assert "\n" in lines.strip() and "1" in lines
    first_line = str(chat.invoke(count, stop=["\n"]).content)
    assert "\n" not in first_line and first_line.strip() == lines.strip().split("\n")[0]

    stream = chat.stream(count)
    next(stream)
    stream.close()  # the reader left: the worker stops generating that answer
    reply = chat.invoke(
        [HumanMessage("资料:[1] 珠穆朗玛峰海拔 8848.86 米。问题:珠穆朗玛峰有多高?")]
    )
    assert "8848" in str(reply.content)
    assert chat.supervisor.status.starts == 1  # the same worker, not a restarted one


@real_model
@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("runtime", INSTALLED_RUNTIMES)
def test_a_synonym_question_between_answers_keeps_the_answering_prefix(
    tmp_path: Path, runtime: Runtime
) -> None:
    """`sibling_terms` asks the model a short question of another shape before the answer:
    the model tells a synonym from another thing of its kind, and the answering prompt that
    follows still reads its prefix from the cache (node-llama-cpp reads it back from the saved
    state, xllamacpp from llama.cpp's prompt cache in RAM)."""
    from app.answer.generate import synonym_judge
    from app.answer.prompt import as_langchain, prefix_messages

    prefix = prefix_messages()
    settings = real_settings(tmp_path, llamacpp_runtime=runtime)
    chat = mod.make_llamacpp_chat(settings, temperature=0.0, max_tokens=8, prefix=prefix)
    chat.start()
    evaluated = chat.supervisor.status.ready_info["prefix"]["tokens"]
    asked = HumanMessage("资料:\n[1] 天空是蓝色的。\n问题:天空是什么颜色?")
    question = [*as_langchain(prefix), asked]
    chat.invoke(question)

    synonym = synonym_judge(chat)
    assert synonym("番茄", "西红柿") or synonym("西红柿", "番茄")
    assert synonym("冬季", "夏季") is False and synonym("夏季", "冬季") is False

    reply = chat.invoke(question)
    usage = reply.usage_metadata
    assert usage is not None
    assert usage["input_token_details"]["cache_read"] >= evaluated - 8
