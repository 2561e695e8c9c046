"""Settings: `.env.example` lists every setting with its true default, and `.env` is read."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import REPO

from ingest.settings import Settings


def example_values() -> dict[str, str]:
    values = {}
    for line in (REPO / ".env.example").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def test_env_example_lists_every_setting_with_its_default() -> None:
    example = example_values()
    fields = Settings.model_fields
    assert sorted(example) == sorted(name.upper() for name in fields)
    for name, field in fields.items():
        default = field.default
        shown = example[name.upper()]
        if default is None:
            assert shown == "", name
        elif isinstance(default, bool):
            assert shown.lower() == str(default).lower(), name
        elif isinstance(default, Path):
            assert Path(shown) == default, name
        else:
            assert type(default)(shown) == default, name


def test_the_example_parses_to_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text((REPO / ".env.example").read_text(encoding="utf-8"))
    assert Settings() == Settings(_env_file=None)


def test_env_file_and_environment_are_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("TOP_K=7\nLLM_BACKEND=none\nZHIKU_HOME=/data/zhiku\n")
    monkeypatch.setenv("TOP_K", "9")
    settings = Settings()
    assert settings.top_k == 9  # the environment wins over .env
    assert settings.llm_backend == "none"
    assert settings.models_dir == Path("/data/zhiku/models")
