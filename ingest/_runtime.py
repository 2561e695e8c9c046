"""The embedding runtimes, chosen by measuring them on this CPU.

Which runtime embeds fastest depends on the CPU: on an AMD EPYC without AVX-512 the int8 ONNX
graph ran 2.3-2.6x torch, while on an Intel Xeon with AVX-512 torch's oneDNN kernels ran about
as fast as int8. So `zhiku prepare` times passages (torch, the fp32 ONNX graph, its int8
quantisation) and single questions (torch, ONNX) on a fixed sample, records the figures and the
choice in `<models>/runtime-choice.json` beside the CPU they were measured on, and
`PASSAGE_RUNTIME=auto` / `QUERY_RUNTIME=auto` (the defaults) use that choice. A record made on
another CPU (another model name, instruction set or core count) or for another embedding model
is ignored until `zhiku prepare` measures again; without one the defaults are onnx-int8 and onnx.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingest._cpu import cpu_signature
from ingest.settings import Settings

CHOICE_FILE = "runtime-choice.json"
_FORMAT = 1
DEFAULT_PASSAGE_RUNTIME = "onnx-int8"
DEFAULT_QUERY_RUNTIME = "onnx"
PASSAGE_RUNTIMES = ("torch", "onnx", "onnx-int8")
QUERY_RUNTIMES = ("torch", "onnx")
# int8 vectors are close to the full-precision ones, not equal: int8 is chosen only when it is
# clearly faster than the best full-precision runtime, not within the noise of a short run.
INT8_MARGIN = 1.15

# The measurement's passages: Chinese and English prose cut to the chunk length ingestion makes
# (about 300 tokens), so the sample costs what real chunks cost.
_SAMPLE = (
    "知识库问答系统先把文档切分成段落,再为每个段落计算向量,并建立关键词索引。用户提问时,系统同时"
    "进行向量检索和关键词检索,融合两路结果,把最相关的几个段落交给大模型,由它根据段落内容作答,并"
    "为每句话标注出处。杭州是浙江省省会,位于中国东南沿海,京杭大运河的南端;西湖文化景观于 2011 年"
    "列入世界遗产名录。员工每年享有十五天带薪年假,年假需要提前两周在系统中申请,未休完的年假可以"
    "顺延到次年三月底。差旅报销须在出差结束后三十天内提交,住宿标准为每晚不超过五百元。"
    "A retrieval-augmented assistant answers questions from the documents it was given and "
    "cites the sentence that supports each claim; when nothing relevant is found it says so "
    "instead of guessing. Scaling laws relate a model's loss to its parameters, data and compute."
)
_QUESTIONS = (
    "杭州的市花是什么?",
    "年假需要提前多久申请?",
    "What do scaling laws relate?",
    "出差报销的期限是多久?",
)


def sample_passages(count: int, length: int = 300) -> list[str]:
    """`count` different passages of `length` characters from the sample text."""
    text = _SAMPLE * (1 + (count * 37 + length) // len(_SAMPLE))
    return [text[(i * 37) % len(_SAMPLE) :][:length] for i in range(count)]


def choice_path(settings: Settings) -> Path:
    return settings.models_dir / CHOICE_FILE


def read_choice(settings: Settings) -> dict[str, Any] | None:
    """The recorded measurement when it applies here: this CPU, this embedding model."""
    try:
        record = json.loads(choice_path(settings).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != _FORMAT:
        return None
    if record.get("embedding_model") != settings.embedding_model:
        return None
    if record.get("cpu") != json.loads(json.dumps(cpu_signature())):
        return None
    return record


def effective_runtimes(settings: Settings) -> tuple[str, str]:
    """(query runtime, passage runtime): the settings', with `auto` resolved to the recorded
    measurement's choice, or to the defaults when there is none for this CPU."""
    record = read_choice(settings) if "auto" in (
        settings.query_runtime,
        settings.passage_runtime,
    ) else None  # fmt: skip
    query = settings.query_runtime
    if query == "auto":
        query = (record or {}).get("query_runtime", DEFAULT_QUERY_RUNTIME)
    passage = settings.passage_runtime
    if passage == "auto":
        passage = (record or {}).get("passage_runtime", DEFAULT_PASSAGE_RUNTIME)
    return query, passage


def choose(passages: dict[str, float], queries: dict[str, float]) -> tuple[str, str, str]:
    """(query runtime, passage runtime, why) from the measured rates (higher is faster)."""
    full = max(("torch", "onnx"), key=lambda r: passages.get(r, 0.0))
    int8 = passages.get("onnx-int8", 0.0)
    if int8 >= INT8_MARGIN * passages.get(full, 0.0):
        passage = "onnx-int8"
        why = f"onnx-int8 {int8 / passages[full]:.2f}x {full}"
    else:
        passage = full
        ratio = int8 / passages[full] if passages.get(full) else 0.0
        why = (
            f"{full} fastest at full precision; onnx-int8 only {ratio:.2f}x "
            f"(needs {INT8_MARGIN:.2f}x to be worth its approximate vectors)"
        )
    query = "onnx" if queries.get("onnx", 0.0) >= queries.get("torch", 0.0) else "torch"
    return query, passage, why


def _rate(encode: Callable[[list[str]], object], texts: list[str]) -> float:
    started = time.perf_counter()
    encode(texts)
    return len(texts) / (time.perf_counter() - started)


def measure(
    settings: Settings,
    model: Any,
    progress: Callable[[str], None] = lambda m: None,
    passages: int = 32,
    rounds: int = 2,
    target: Path | None = None,
) -> dict[str, Any]:
    """Time every runtime on this CPU over `model` (the loaded SentenceTransformer; about a
    minute on 2 cores), record the figures and the choice in `<models>/runtime-choice.json`,
    and return the record (written to `target` instead when given)."""
    import importlib.metadata

    import torch

    from ingest._embed import default_model_dir
    from ingest._onnx import OnnxUnavailable, load_passage_encoder, load_query_encoder
    from ingest.settings import DEFAULT_EMBEDDING_MODEL

    location = (
        str(default_model_dir(settings))
        if settings.embedding_model == DEFAULT_EMBEDDING_MODEL
        else settings.embedding_model
    )
    threads = os.cpu_count() or 1
    prompts = model.prompts or {}
    passage_prompt = next(
        (prompts[n] for n in ("document", "passage", "corpus") if prompts.get(n)), ""
    )
    query_prompt = prompts.get("query", "")

    def torch_encoder(prompt: str) -> Callable[[list[str]], object]:
        def encode(texts: list[str]) -> object:
            with torch.inference_mode():
                return model.encode(texts, prompt=prompt, batch_size=32, normalize_embeddings=True)

        return encode

    passage_encoders: dict[str, Callable[[list[str]], object]] = {
        "torch": torch_encoder(passage_prompt)
    }
    query_encoders: dict[str, Callable[[list[str]], object]] = {
        "torch": torch_encoder(query_prompt)
    }
    unavailable: dict[str, str] = {}
    try:
        onnx_query = load_query_encoder(
            model, settings.embedding_model, location, settings.models_dir, threads, progress
        )
        query_encoders["onnx"] = lambda texts: onnx_query.encode(texts, query_prompt)
    except OnnxUnavailable as exc:
        unavailable["onnx"] = str(exc)
    for runtime in ("onnx", "onnx-int8"):
        try:
            encoder = load_passage_encoder(
                model,
                settings.embedding_model,
                location,
                settings.models_dir,
                threads,
                runtime == "onnx-int8",
                progress,
            )
        except OnnxUnavailable as exc:
            unavailable[runtime] = str(exc)
            continue
        passage_encoders[runtime] = lambda texts, e=encoder: e.encode_batched(texts, passage_prompt)

    texts = sample_passages(passages * rounds + 8)
    for encode in passage_encoders.values():
        encode(texts[:8])  # first-call allocations and thread pools stay out of the figures
    rates: dict[str, list[float]] = {r: [] for r in passage_encoders}
    names = list(passage_encoders)
    for number in range(rounds):
        sample = texts[8 + number * passages :][:passages]
        # a different runtime first each round: a shared machine's load falls on all alike
        for runtime in names[number % len(names) :] + names[: number % len(names)]:
            progress(f"measuring passage runtime {runtime} ({number + 1}/{rounds})")
            rates[runtime].append(_rate(passage_encoders[runtime], sample))
    query_rates: dict[str, list[float]] = {r: [] for r in query_encoders}
    for encode in query_encoders.values():
        encode([_QUESTIONS[0]])
    for _ in range(3):
        for question in _QUESTIONS:
            for runtime, encode in query_encoders.items():
                query_rates[runtime].append(_rate(encode, [question]))
    passage_figures = {r: round(statistics.median(v), 3) for r, v in rates.items()}
    query_figures = {r: round(statistics.median(v), 2) for r, v in query_rates.items()}
    query, passage, why = choose(passage_figures, query_figures)
    record = {
        "format": _FORMAT,
        "embedding_model": settings.embedding_model,
        "cpu": cpu_signature(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "threads": threads,
        "passage_chunks_per_s": passage_figures,
        "query_per_s": query_figures,
        "unavailable": unavailable,
        "passage_runtime": passage,
        "query_runtime": query,
        "why": why,
        "versions": {name: importlib.metadata.version(name) for name in ("torch", "onnxruntime")},
    }
    target = target or choice_path(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(record, indent=1), encoding="utf-8")
    os.replace(partial, target)
    return record
