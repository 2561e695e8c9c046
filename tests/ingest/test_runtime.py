"""The embedding runtimes chosen by measurement: `zhiku prepare` times them on this CPU and
records the figures; `auto` settings use the record made on this CPU for this model only."""

from __future__ import annotations

import json
from pathlib import Path

from support import make_settings

from ingest._cpu import cpu_signature
from ingest._embed import Embedder
from ingest._runtime import (
    CHOICE_FILE,
    DEFAULT_PASSAGE_RUNTIME,
    DEFAULT_QUERY_RUNTIME,
    choose,
    effective_runtimes,
    measure,
    read_choice,
    sample_passages,
)


def test_int8_only_when_clearly_faster_than_full_precision() -> None:
    # the AMD development machine: int8 2.3x torch
    assert choose({"torch": 1.0, "onnx": 1.5, "onnx-int8": 2.3}, {"torch": 15, "onnx": 45})[:2] == (
        "onnx",
        "onnx-int8",
    )
    # the Intel Xeon with AVX-512: int8 about as fast as torch, which keeps exact vectors
    query, passage, why = choose({"torch": 10.0, "onnx": 9.0, "onnx-int8": 10.5}, {"torch": 30})
    assert (query, passage) == ("torch", "torch")
    assert "onnx-int8 only 1.05x" in why


def auto_settings(tmp_path: Path, **overrides: object):  # type: ignore[no-untyped-def]
    return make_settings(
        tmp_path / "home",
        zhiku_models_dir=tmp_path / "models",
        query_runtime="auto",
        passage_runtime="auto",
        **overrides,
    )


def write_record(settings, **changes: object) -> None:  # type: ignore[no-untyped-def]
    record = {
        "format": 1,
        "embedding_model": settings.embedding_model,
        "cpu": cpu_signature(),
        "passage_runtime": "torch",
        "query_runtime": "torch",
        **changes,
    }
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    (settings.models_dir / CHOICE_FILE).write_text(json.dumps(record), encoding="utf-8")


def test_auto_uses_the_measurement_made_on_this_cpu_for_this_model(tmp_path: Path) -> None:
    settings = auto_settings(tmp_path)
    assert effective_runtimes(settings) == (DEFAULT_QUERY_RUNTIME, DEFAULT_PASSAGE_RUNTIME)
    write_record(settings)
    assert effective_runtimes(settings) == ("torch", "torch")
    # a setting other than auto is the user's choice, whatever was measured
    pinned = settings.model_copy(update={"passage_runtime": "onnx-int8"})
    assert effective_runtimes(pinned) == ("torch", "onnx-int8")
    # measured on another CPU (say the disk was copied to an AMD machine): measure again
    # (never this machine's own signature: the test runs on AMD and Intel machines alike)
    other_cpu = {**cpu_signature(), "model": "a CPU this one is not", "flags": ["sse2"]}
    write_record(settings, cpu=other_cpu)
    assert read_choice(settings) is None
    assert effective_runtimes(settings) == (DEFAULT_QUERY_RUNTIME, DEFAULT_PASSAGE_RUNTIME)
    write_record(settings, embedding_model="BAAI/bge-small-zh-v1.5")
    assert effective_runtimes(settings) == (DEFAULT_QUERY_RUNTIME, DEFAULT_PASSAGE_RUNTIME)
    (settings.models_dir / CHOICE_FILE).write_text("{not json", encoding="utf-8")
    assert effective_runtimes(settings) == (DEFAULT_QUERY_RUNTIME, DEFAULT_PASSAGE_RUNTIME)


def test_sample_passages_differ_and_have_the_chunk_length() -> None:
    texts = sample_passages(40)
    assert len(set(texts)) == 40 and {len(t) for t in texts} == {300}


def test_a_short_real_measurement_records_every_runtime_and_its_choice(
    tmp_path: Path, embedder: Embedder
) -> None:
    settings = make_settings(tmp_path / "home")
    target = tmp_path / CHOICE_FILE
    record = measure(settings, embedder.model, passages=4, rounds=1, target=target)
    assert json.loads(target.read_text(encoding="utf-8")) == record
    assert set(record["passage_chunks_per_s"]) == {"torch", "onnx", "onnx-int8"}
    assert set(record["query_per_s"]) == {"torch", "onnx"}
    assert all(rate > 0 for rate in record["passage_chunks_per_s"].values())
    assert (record["query_runtime"], record["passage_runtime"], record["why"]) == choose(
        record["passage_chunks_per_s"], record["query_per_s"]
    )
    assert record["cpu"] == cpu_signature() and "avx2" in record["cpu"]["flags"]
