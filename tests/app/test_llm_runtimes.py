"""Which llama.cpp runtime answers: chosen by the CPU, named explicitly, or absent.

The CPU flags are set by the tests (one machine cannot be both CPU kinds); what each runtime does
on the real CPU is tested with the real model in test_llm_llamacpp.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support import make_settings

import app._llm_runtimes as mod

AVX2 = frozenset({"avx", "avx2", "fma", "f16c", "bmi2"})
AVX512 = AVX2 | {"avx512f", "avx512bw", "avx512vl", "avx512_vnni"}


def with_cpu(monkeypatch: pytest.MonkeyPatch, flags: frozenset[str], installed: set[str]) -> None:
    monkeypatch.setattr(mod, "cpu_flags", lambda: flags, raising=False)
    monkeypatch.setattr(mod, "runtime_installed", lambda runtime: runtime in installed)


def test_auto_puts_node_llama_cpp_first_on_every_cpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # measured faster to the first sentence with AVX-512 and on the AVX2-only path alike
    settings = make_settings(tmp_path)
    both = {"node-llama-cpp", "xllamacpp"}
    for flags in (AVX512, AVX2 | {"avx_vnni"}, AVX2):
        with_cpu(monkeypatch, flags, both)
        assert mod.runtimes_for(settings) == ("node-llama-cpp", "xllamacpp")


def test_auto_offers_only_what_is_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path)
    with_cpu(monkeypatch, AVX512, {"xllamacpp"})  # no Node.js here
    assert mod.runtimes_for(settings) == ("xllamacpp",)
    with_cpu(monkeypatch, frozenset({"sse4_2"}), {"node-llama-cpp"})
    assert mod.runtimes_for(settings) == ("node-llama-cpp",)
    with_cpu(monkeypatch, AVX512, set())
    assert mod.runtimes_for(settings) == ()


def test_a_runtime_named_in_the_settings_is_the_only_one_tried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_cpu(monkeypatch, AVX512, {"node-llama-cpp", "xllamacpp"})
    settings = make_settings(tmp_path, llamacpp_runtime="xllamacpp")
    assert mod.runtimes_for(settings) == ("xllamacpp",)


def test_node_needs_its_packages_and_a_recent_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mod, "NODE_PACKAGE", tmp_path / "llm_node")  # nothing installed there
    mod.node_command.cache_clear()
    try:
        assert mod.node_command() is None
        assert not mod.runtime_installed("node-llama-cpp")
        assert mod.runtime_version("node-llama-cpp") == ""
        with pytest.raises(FileNotFoundError, match="make install"):
            mod.worker_command("node-llama-cpp")
    finally:
        mod.node_command.cache_clear()
    assert mod.worker_command("xllamacpp")[-2:] == ["-m", "app._worker"]
