"""The embedded LLM as a supervised worker process, behind a LangChain chat model.

The model itself runs in a worker process, one per (runtime, model, context size, threads) per
app process, started on demand and kept warm: `app/llm_node/worker.mjs` (node-llama-cpp, whose
llama.cpp picks its CPU code when it starts) or `app/_worker.py` (the `xllamacpp` wheel, AVX2),
chosen by `app/_llm_runtimes.py`; when the first fails its self-check, the next is used.
A `WorkerSupervisor` owns that process: it starts it and waits for its self-check, sends one
request at a time (a second caller waits its turn, up to `busy_timeout_s`, then is told the
model is busy), notices when it dies, says why in English and Chinese (SIGILL: this CPU lacks
an instruction the build uses), starts a fresh one for the next question, and after repeated
crashes (several in a row, with no answer completed between them) stops trying, so that
answering falls back to retrieval only. `WorkerChat` is the chat
model answering code uses, the same interface as the Ollama backend.
"""

from __future__ import annotations

import atexit
import collections
import hashlib
import itertools
import json
import logging
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel, generate_from_stream
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGenerationChunk, ChatResult

from app._gguf import INSTALL_HINT, Progress, _no_progress, bundled_parts, resolve_gguf
from app._llm import LlmError
from app._llm_runtimes import Runtime, runtime_version, runtimes_for, worker_command
from ingest import cpu_flags
from ingest.settings import Settings

# Loading maps 1.1 GB and runs one token; minutes only on a machine that is swapping.
START_TIMEOUT_S = 300.0
# No token for this long while answering: the worker is stuck, not slow.
STALL_TIMEOUT_S = 300.0
# This many crashes in a row (no answer completed between them) within the window, and the
# embedded model is switched off for the process: a worker that dies at every question only
# makes the user wait for nothing. A crash now and then is survived by restarting.
MAX_CRASHES = 3
CRASH_WINDOW_S = 600.0

logger = logging.getLogger(__name__)

State = Literal["stopped", "starting", "ready", "disabled"]


def llamacpp_installed(settings: Settings | None = None) -> bool:
    """Whether the embedded backend can run: a llama.cpp runtime is installed (checked without
    loading it here: the worker process is the one that loads it) and the model is there."""
    if not runtimes_for(settings or Settings()):
        return False
    if settings is not None and settings.llamacpp_model_path is not None:
        return Path(settings.llamacpp_model_path).expanduser().is_file()
    try:
        bundled_parts()
    except LlmError:
        return False
    return True


# --------------------------------------------------------------------------- why it died


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


_WHEN = {
    "start": ("at its start-up self-check", "启动自检时"),
    "answer": ("while answering", "回答过程中"),
}


def crash_error(
    returncode: int | None, during: Literal["start", "answer"], runtime: str = "xllamacpp"
) -> LlmError:
    """What to tell the user when the `runtime`'s worker ended with `returncode` (negative: a
    signal)."""
    when, when_zh = _WHEN[during]
    if returncode is not None and returncode < 0:
        number = -returncode
        name = _signal_name(number)
        if number == signal.SIGILL and runtime == "node-llama-cpp":
            seen = cpu_summary()
            return LlmError(
                f"the embedded model stopped with SIGILL (an instruction this CPU does not "
                f"allow) {when}: node-llama-cpp loaded a CPU library ({seen}) this "
                "machine cannot run. LLAMACPP_RUNTIME=xllamacpp uses the AVX2 build instead; or "
                "use Ollama (OLLAMA_HOST) or LLM_BACKEND=none.",
                f"内置大模型{when_zh}因 SIGILL(本机 CPU 的指令集不支持该指令)而退出:"
                f"node-llama-cpp 为本机选择的 CPU 库({seen})无法在本机运行。"
                "可设置 LLAMACPP_RUNTIME=xllamacpp 改用 AVX2 版本,或改用 Ollama(设置 OLLAMA_HOST),"
                "或设置 LLM_BACKEND=none。",
            )
        if number == signal.SIGILL:
            flags = cpu_flags()
            wanted = ["avx2", "fma", "f16c"]
            missing = [f for f in wanted if flags and f not in flags]
            seen = cpu_summary()
            lack = f"; this CPU lacks {', '.join(missing)}" if missing else ""
            lack_zh = f";本机 CPU 缺少 {', '.join(missing)}" if missing else ""
            return LlmError(
                f"the embedded model stopped with SIGILL (an instruction this CPU does not "
                f"allow) {when}: the llama.cpp build needs x86-64 AVX2 with FMA and F16C; "
                f"{seen}{lack}. Use Ollama (OLLAMA_HOST) or LLM_BACKEND=none.",
                f"内置大模型{when_zh}因 SIGILL(本机 CPU 的指令集不支持该指令)而退出:内置的 "
                f"llama.cpp 需要支持 AVX2、FMA 和 F16C 的 x86-64 CPU({seen})"
                f"{lack_zh}。请改用 Ollama(设置 OLLAMA_HOST)或设置 LLM_BACKEND=none。",
            )
        if number == signal.SIGKILL:
            return LlmError(
                f"the embedded model was killed (SIGKILL) {when}, most often by the kernel's "
                "out-of-memory killer: free some memory or use a smaller LLAMACPP_N_CTX",
                f"内置大模型{when_zh}被强制终止(SIGKILL),通常是内存不足被系统结束;"
                "请释放内存或减小 LLAMACPP_N_CTX",
            )
        return LlmError(
            f"the embedded model crashed ({name}) {when}; the next question starts it again",
            f"内置大模型{when_zh}崩溃({name});下一个问题会重新启动它",
        )
    return LlmError(
        f"the embedded model's process ended (exit code {returncode}) {when}; "
        "the next question starts it again",
        f"内置大模型进程{when_zh}意外退出(退出码 {returncode});下一个问题会重新启动它",
    )


def cpu_summary() -> str:
    """The instruction sets that matter to llama.cpp's CPU code that this CPU reports."""
    flags = cpu_flags()
    have = [f for f in ("avx2", "avx512f", "amx_tile") if f in flags]
    return "the CPU reports " + (", ".join(have) or "none of avx2/avx512f/amx_tile")


class WorkerCrashed(LlmError):
    """The worker process died; `partial` answers keep what it said before."""


# --------------------------------------------------------------------------- one process


_EOF = object()


class WorkerProcess:
    """One running worker: its process, and a thread turning its stdout into messages."""

    def __init__(self, argv: list[str], log_path: Path | None) -> None:
        env = dict(os.environ)
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        log = open(log_path, "ab") if log_path is not None else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                # No PR_SET_PDEATHSIG: Linux sends it when the *thread* that started the worker
                # ends, and Streamlit runs each page in a thread that ends after every rerun.
                # The worker exits instead when its stdin pipe closes, which the kernel does
                # when this process dies in any way.
            )
        finally:
            if log is not subprocess.DEVNULL:
                log.close()
        self.messages: queue.Queue[Any] = queue.Queue()
        self.ready: dict[str, Any] | None = None
        threading.Thread(target=self._read, name="llm-worker-reader", daemon=True).start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                self.messages.put(json.loads(line))
            except ValueError:
                continue
        self.process.stdout.close()
        self.process.wait()  # reaps it: no zombie is left behind
        self.messages.put(_EOF)

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(message, ensure_ascii=False) + "\n").encode())
        self.process.stdin.flush()

    def next_message(self, timeout: float) -> Any:
        """The next message, `_EOF` once the process has ended, or raises `queue.Empty`."""
        return self.messages.get(timeout=timeout)

    def returncode(self, wait_s: float = 5.0) -> int | None:
        with suppress(subprocess.TimeoutExpired):
            return self.process.wait(timeout=wait_s)
        return None

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        with suppress(OSError):
            if self.process.stdin is not None:
                self.process.stdin.close()  # a healthy worker exits at EOF
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


# --------------------------------------------------------------------------- the supervisor


@dataclass(frozen=True)
class WorkerSpec:
    model_path: str
    n_ctx: int
    threads: int
    prefix_file: str | None = None  # the messages every prompt starts with (JSON)
    kv_cache: str | None = None  # where the worker keeps their KV cache (per runtime, see argv)
    runtime: Runtime = "xllamacpp"
    # node-llama-cpp only (xllamacpp's bindings offer neither): tokens guessed ahead from the
    # prompt and checked in one batch, and flash attention
    draft_tokens: int = 0
    flash_attention: bool = False

    def argv(self) -> list[str]:
        argv = [*worker_command(self.runtime), "--model", self.model_path]
        argv += ["--n-ctx", str(self.n_ctx), "--threads", str(self.threads)]
        flash = self.flash_attention and self.runtime == "node-llama-cpp"
        if self.runtime == "node-llama-cpp":
            argv += ["--draft", str(self.draft_tokens)] + (["--flash-attention"] if flash else [])
        if self.prefix_file and self.kv_cache:
            # Each runtime (and version) saves the KV cache in its own format, and flash
            # attention lays the cache out otherwise.
            kv = Path(self.kv_cache)
            version = runtime_version(self.runtime) + ("-fa" if flash else "")
            own = kv.with_name(f"{kv.stem}-{self.runtime}-{version}{kv.suffix}")
            argv += ["--prefix", self.prefix_file, "--kv-cache", str(own)]
        return argv


@dataclass
class WorkerStatus:
    state: State
    pid: int | None = None
    starts: int = 0
    crashes: int = 0
    last_error: LlmError | None = None
    ready_info: dict[str, Any] = field(default_factory=dict)


class WorkerSupervisor:
    """Starts, watches and restarts the worker for one `WorkerSpec`; one generation at a time."""

    def __init__(self, spec: WorkerSpec, log_path: Path | None = None) -> None:
        self.spec = spec
        self.log_path = log_path
        self._worker: WorkerProcess | None = None
        self._start_lock = threading.RLock()  # a failed restart records its crash under it
        self._generation_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._crash_times: collections.deque[float] = collections.deque(maxlen=MAX_CRASHES)
        self.status = WorkerStatus("stopped")

    # ----- lifecycle

    @property
    def disabled(self) -> LlmError | None:
        return self.status.last_error if self.status.state == "disabled" else None

    def start(self) -> WorkerProcess:
        """The running worker, started (and self-checked) now when there is none."""
        with self._start_lock:
            if self.disabled is not None:
                raise self.disabled
            worker = self._worker
            if worker is not None and worker.alive():
                return worker
            self.status.state = "starting"
            self.status.starts += 1
            try:
                worker = self._spawn()
            except LlmError as exc:
                if not self.status.ready_info:
                    # Never started in this process: a worker that cannot pass its self-check
                    # will not pass it next time either (same CPU, same file). Stop trying and
                    # say so once.
                    self.status.state = "disabled"
                    self.status.last_error = exc
                    raise
                raise self._record_crash(exc) from None
            self._worker = worker
            self.status.state = "ready"
            self.status.pid = worker.pid
            return worker

    def _spawn(self) -> WorkerProcess:
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            worker = WorkerProcess(self.spec.argv(), self.log_path)
        except OSError as exc:
            raise LlmError(
                f"the embedded model's process could not start: {exc}",
                f"无法启动内置大模型进程:{exc}",
            ) from exc
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                message = worker.next_message(max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                worker.process.kill()
                worker.returncode()
                raise LlmError(
                    f"the embedded model did not start within {START_TIMEOUT_S:.0f} s",
                    f"内置大模型在 {START_TIMEOUT_S:.0f} 秒内未能启动",
                ) from None
            if message is _EOF:
                raise crash_error(worker.returncode(), "start", self.spec.runtime)
            if message.get("event") == "failed":
                worker.stop()
                raise LlmError(
                    f"llama.cpp could not load {Path(self.spec.model_path).name}: "
                    f"{message.get('message')}",
                    f"llama.cpp 无法加载 {Path(self.spec.model_path).name}:"
                    f"{message.get('message')}",
                )
            if message.get("event") == "ready":
                worker.ready = message
                self.status.ready_info = message
                return worker

    def stop(self) -> None:
        with self._start_lock:
            worker, self._worker = self._worker, None
            if self.status.state != "disabled":
                self.status.state = "stopped"
        if worker is not None:
            worker.stop()

    def _crashed(self, worker: WorkerProcess) -> LlmError:
        return self._record_crash(crash_error(worker.returncode(), "answer", self.spec.runtime))

    def _record_crash(self, error: LlmError) -> LlmError:
        """Count a crash (a start that failed after earlier successes counts too); the error
        to raise, which says so when this crash switched the embedded model off."""
        with self._start_lock:
            now = time.monotonic()
            self._crash_times.append(now)
            self.status.crashes += 1
            self.status.last_error = error
            self._worker = None
            recent = [t for t in self._crash_times if now - t <= CRASH_WINDOW_S]
            if len(recent) >= MAX_CRASHES:
                self.status.state = "disabled"
                self.status.last_error = LlmError(
                    f"{error.en}. It crashed {len(recent)} times in a row, so answers are now "
                    "retrieval only until the app restarts.",
                    f"{error.zh}。它已连续崩溃 {len(recent)} 次,在应用重启前改为仅检索回答。",
                )
                return WorkerCrashed(self.status.last_error.en, self.status.last_error.zh)
            self.status.state = "stopped"
        return WorkerCrashed(error.en, error.zh)

    # ----- generation

    def generate(self, request: dict[str, Any], busy_timeout_s: float) -> Iterator[dict[str, Any]]:
        """Stream the worker's `token` messages for `request`, then its `done` message.

        Raises `LlmError` when busy beyond `busy_timeout_s`, `WorkerCrashed` when the worker
        dies (what was streamed stays with the caller). Closing the iterator early cancels
        the generation in the worker.
        """
        if not self._generation_lock.acquire(timeout=busy_timeout_s):
            raise LlmError(
                "the embedded LLM is busy answering another question; try again shortly",
                "内置大模型正在回答另一个问题,请稍后再试",
            )
        try:
            worker = self.start()
            request_id = next(self._ids)
            try:
                worker.send({"op": "chat", "id": request_id, "request": request})
            except OSError:
                raise self._crashed(worker) from None
            finished = False
            try:
                while True:
                    try:
                        message = worker.next_message(STALL_TIMEOUT_S)
                    except queue.Empty:
                        worker.process.kill()
                        worker.returncode()
                        raise self._record_crash(
                            LlmError(
                                f"the embedded model produced nothing for {STALL_TIMEOUT_S:.0f} "
                                "s and was stopped",
                                f"内置大模型 {STALL_TIMEOUT_S:.0f} 秒没有输出,已被结束",
                            )
                        ) from None
                    if message is _EOF:
                        raise self._crashed(worker)
                    if message.get("id") != request_id:
                        continue  # the tail of a cancelled earlier request
                    event = message.get("event")
                    if event == "error":
                        finished = True
                        raise _request_error(str(message.get("message")), self.spec.n_ctx)
                    finished = event == "done"
                    if finished:
                        self._crash_times.clear()  # it works: earlier crashes were passing
                    yield message
                    if finished:
                        return
            finally:
                if not finished and worker.alive():
                    self._cancel(worker, request_id)
        finally:
            self._generation_lock.release()

    def _cancel(self, worker: WorkerProcess, request_id: int) -> None:
        """Stop the worker's generation and wait for its end, so the next request starts clean."""
        with suppress(OSError):
            worker.send({"op": "cancel", "id": request_id})
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:
            try:
                message = worker.next_message(max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if message is _EOF:
                return
            if message.get("id") == request_id and message.get("event") in ("done", "error"):
                return
        worker.process.kill()  # would not stop: a fresh worker is cheaper than a stuck one
        worker.returncode()
        with self._start_lock:
            self._worker = None
            if self.status.state != "disabled":
                self.status.state = "stopped"


def _request_error(message: str, n_ctx: int) -> LlmError:
    if "context" in message.lower() and ("exceed" in message.lower() or "size" in message):
        return LlmError(
            f"the question and passages are too long for the model ({message}); the context "
            f"holds {n_ctx} tokens (LLAMACPP_N_CTX); ask with fewer passages",
            f"问题和资料超出了模型的上下文长度({message}),上限 {n_ctx} 个词元"
            "(LLAMACPP_N_CTX);请减少引用的资料",
        )
    return LlmError(
        f"the embedded model could not answer: {message}", f"内置大模型无法回答:{message}"
    )


_SUPERVISORS: dict[WorkerSpec, WorkerSupervisor] = {}
_SUPERVISORS_LOCK = threading.Lock()


def supervisor_for(spec: WorkerSpec, log_path: Path | None = None) -> WorkerSupervisor:
    """The process-wide supervisor for `spec`: every chat model and web session shares it."""
    with _SUPERVISORS_LOCK:
        found = _SUPERVISORS.get(spec)
        if found is None:
            found = _SUPERVISORS[spec] = WorkerSupervisor(spec, log_path)
        return found


def stop_workers() -> None:
    """Stop every worker this process started (at exit, in tests, on a settings change)."""
    with _SUPERVISORS_LOCK:
        supervisors = list(_SUPERVISORS.values())
        _SUPERVISORS.clear()
    for supervisor in supervisors:
        supervisor.stop()


atexit.register(stop_workers)


# --------------------------------------------------------------------------- LangChain model


def to_openai_messages(messages: list[BaseMessage]) -> list[dict[str, str]]:
    roles: list[tuple[type[BaseMessage], str]] = [
        (SystemMessage, "system"),
        (HumanMessage, "user"),
        (AIMessage, "assistant"),
    ]
    converted = []
    for message in messages:
        role = next((name for cls, name in roles if isinstance(message, cls)), None)
        if isinstance(message, ChatMessage):
            role = message.role
        if role is None:
            raise ValueError(f"unsupported message type for llama.cpp: {type(message).__name__}")
        converted.append({"role": role, "content": str(message.text)})
    return converted


def response_format(schema: dict[str, Any] | str | None) -> dict[str, Any] | None:
    """Ollama's `format` (a JSON schema, or "json") as llama.cpp's OpenAI `response_format`."""
    if schema is None:
        return None
    if schema == "json":
        return {"type": "json_object"}
    if isinstance(schema, dict):
        return {"type": "json_schema", "json_schema": {"schema": schema}}
    raise ValueError(f"unsupported format for llama.cpp: {schema!r}")


# Why our own class rather than langchain-community's ChatLlamaCpp: that one loads llama.cpp
# into the calling process, and a crash there ends the web server; this one talks to the
# supervised worker.
class WorkerChat(BaseChatModel):
    """A chat model answered by the embedded model's worker process.

    Building it is cheap; the worker starts on the first generation (or `start()`).
    `.stream(messages, format=SCHEMA)` constrains the output to a JSON schema, as with Ollama.
    """

    model_path: str
    n_ctx: int = 4096
    threads: int = 2
    temperature: float = 0.0
    max_tokens: int = 384
    stop: list[str] | None = None
    log_path: str | None = None
    prefix_file: str | None = None
    kv_cache: str | None = None
    # The llama.cpp runtimes to try, best first (`app/_llm_runtimes.py`).
    runtimes: tuple[Runtime, ...] = ("xllamacpp",)
    draft_tokens: int = 0
    flash_attention: bool = False
    # A second caller waits this long for the answer in progress before being told it is busy.
    busy_timeout_s: float = 600.0

    @property
    def _llm_type(self) -> str:
        return "zhiku-llamacpp-worker"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_path": self.model_path,
            "n_ctx": self.n_ctx,
            "threads": self.threads,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }

    def _supervisors(self) -> list[WorkerSupervisor]:
        log = Path(self.log_path) if self.log_path else None
        return [
            supervisor_for(
                WorkerSpec(
                    str(Path(self.model_path).resolve()),
                    self.n_ctx,
                    self.threads,
                    self.prefix_file,
                    self.kv_cache,
                    runtime,
                    self.draft_tokens,
                    self.flash_attention,
                ),
                log,
            )
            for runtime in self.runtimes
        ]

    @property
    def supervisor(self) -> WorkerSupervisor:
        """The first runtime's supervisor that is not switched off: one whose worker could not
        start or failed its self-check on this CPU hands over to the next."""
        supervisors = self._supervisors()
        return next((s for s in supervisors[:-1] if s.disabled is None), supervisors[-1])

    @property
    def runtime_label(self) -> str:
        """The runtime answering now, with the CPU library it loaded ("node-llama-cpp
        (sapphirerapids)"); the runtime alone before its worker has started."""
        supervisor = self.supervisor
        variant = supervisor.status.ready_info.get("cpu_variant") or ""
        return supervisor.spec.runtime + (f" ({variant})" if variant else "")

    def start(self) -> WorkerProcess:
        while True:
            supervisor = self.supervisor
            try:
                return supervisor.start()
            except LlmError as exc:
                if supervisor.disabled is None or supervisor is self._supervisors()[-1]:
                    raise
                logger.warning(
                    "the %s runtime cannot run here (%s); using the next one",
                    supervisor.spec.runtime,
                    exc.en,
                )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        request: dict[str, Any] = {
            "messages": to_openai_messages(messages),
            "temperature": kwargs.get("temperature", self.temperature),
            "max_tokens": kwargs.get("max_tokens", self.max_tokens),
            "cache_prompt": True,
            "seed": 0,
        }
        stops = [*(self.stop or []), *(stop or [])]
        if stops:
            request["stop"] = stops
        formatted = response_format(kwargs.get("format"))
        if formatted is not None:
            request["response_format"] = formatted
        done: dict[str, Any] = {}
        self.start()  # here, so that a runtime failing its self-check hands over first
        for message in self.supervisor.generate(request, self.busy_timeout_s):
            if message["event"] == "done":
                done = message
                break
            text = str(message.get("text") or "")
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=text))
            if run_manager is not None:
                run_manager.on_llm_new_token(text, chunk=chunk)
            yield chunk
        timings = done.get("timings") or {}
        cached = int(timings.get("cache_n", 0))
        prompt_tokens = cached + int(timings.get("prompt_n", 0))
        completion_tokens = int(timings.get("predicted_n", 0))
        usage = UsageMetadata(
            input_tokens=prompt_tokens,
            output_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
            input_token_details={"cache_read": cached},
        )
        info = {
            "finish_reason": done.get("finish_reason"),
            "model_name": Path(self.model_path).name,
            "timings": timings,
        }
        yield ChatGenerationChunk(
            message=AIMessageChunk(content="", usage_metadata=usage, response_metadata=info),
            generation_info={**info, "usage": dict(usage)},
        )


def prefix_cache_files(
    settings: Settings, model: Path, prefix: list[dict[str, str]]
) -> tuple[Path, Path]:
    """The prefix's messages (written now) and its KV cache file, named by everything the cache
    depends on: the model file, the context size and the text (the worker adds its runtime and
    version to the name, `WorkerSpec.argv`)."""
    stat = model.stat()
    text = json.dumps(prefix, ensure_ascii=False, sort_keys=True)
    identity = f"{model.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{settings.llamacpp_n_ctx}"
    key = hashlib.sha256(f"{identity}|{text}".encode()).hexdigest()[:20]
    folder = settings.models_dir / "kv-cache"
    folder.mkdir(parents=True, exist_ok=True)
    messages = folder / f"prefix-{key}.json"
    if not messages.is_file():
        temporary = messages.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, messages)
    return messages, folder / f"prefix-{key}.bin"


def make_llamacpp_chat(
    settings: Settings,
    temperature: float | None = None,
    max_tokens: int | None = None,
    progress: Progress = _no_progress,
    prefix: list[dict[str, str]] | None = None,
) -> WorkerChat:
    """A ready chat model: the GGUF is assembled/verified now (LlmError if impossible), the
    worker starts on the first generation (or `.start()`). With `prefix`, the messages every
    prompt starts with, the worker keeps their KV cache on disk across restarts."""
    runtimes = runtimes_for(settings)
    if not runtimes:
        raise LlmError(
            f"no embedded LLM runtime ({settings.llamacpp_runtime}) is installed: run "
            f"{INSTALL_HINT}",
            f"未安装内置大模型运行库({settings.llamacpp_runtime}):请运行 {INSTALL_HINT}",
        )
    path = resolve_gguf(settings, progress)
    prefix_file, kv_cache = prefix_cache_files(settings, path, prefix) if prefix else (None, None)
    chat = WorkerChat(
        model_path=str(path),
        n_ctx=settings.llamacpp_n_ctx,
        threads=settings.threads,
        temperature=settings.llm_temperature if temperature is None else temperature,
        max_tokens=settings.llm_max_tokens if max_tokens is None else max_tokens,
        log_path=str(settings.zhiku_home / "logs" / "llm-worker.log"),
        prefix_file=str(prefix_file) if prefix_file else None,
        kv_cache=str(kv_cache) if kv_cache else None,
        runtimes=runtimes,
        draft_tokens=settings.llamacpp_draft_tokens,
        flash_attention=settings.llamacpp_flash_attention,
    )
    disabled = chat.supervisor.disabled
    if disabled is not None:
        raise disabled
    return chat
