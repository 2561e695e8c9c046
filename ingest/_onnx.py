"""Queries through ONNX Runtime: the same embedding model, three times faster for one question.

One short query through sentence-transformers costs ~50 ms on two cores, most of it torch's
small-matrix kernels (MKL on AMD), and it is most of a hybrid search's latency. ONNX Runtime
runs the same exported graph in ~17 ms with vectors equal to torch's to 1e-6, so queries and the
passages embedded by torch still meet in one index. Passages can run through the same graph
(`PASSAGE_RUNTIME=onnx`, the same vectors) or through a dynamically int8-quantised copy of it
(`onnx-int8`: vectors differ slightly, so such an index records it in its model name).

Hand-written rather than sentence-transformers' own `backend="onnx"` because that needs
`optimum-onnx`, which pins transformers < 4.58 (we run 5.x). The export is checked against torch
on probe queries before it is used; any model or graph it cannot reproduce stays on torch.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

# Mixed Chinese/English probes of different lengths: a graph traced at one length that does not
# generalise fails here, not in a user's search.
_PROBES = (
    "query: 测试",
    "query: GPT-1 有多少参数?",
    "query: 多机 TP 模式跨节点通信一般走什么网络？请说明原因和常见的替代方案。",
    "query: What does the knowledge base say about Perplexity?",
)
_MIN_PROBE_COSINE = 0.9999
_FORMAT = 2  # bump when the exported graph changes


class OnnxUnavailable(RuntimeError):
    """Why queries stay on torch (said once, at load)."""


def _fingerprint(location: str) -> dict[str, object]:
    """What the exported graph was made from: the weight files' sizes and times. Not the
    folder's path: the same model reached as ".zhiku/models/…" and "/home/…/.zhiku/models/…"
    (a relative and an absolute ZHIKU_HOME) must not export the graph again on every switch."""
    root = Path(location)
    weights = sorted(
        (str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns)
        for pattern in ("*.safetensors", "*.bin")
        for p in (root.glob(pattern) if root.is_dir() else [])
    )
    return {"format": _FORMAT, "weights": weights}


def _check_pipeline(model: object) -> str:
    """The pooling mode when `model` is Transformer → Pooling(mean|cls) [→ Normalize]."""
    modules = list(model)  # type: ignore[call-overload]
    names = [type(m).__name__ for m in modules]
    if names not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise OnnxUnavailable(f"pipeline {' → '.join(names)} is not Transformer → Pooling")
    pooling = modules[1]
    mode = getattr(pooling, "pooling_mode", None)
    if mode not in ("mean", "cls"):
        raise OnnxUnavailable(f"pooling mode {mode!r} is not mean or cls")
    if not getattr(pooling, "include_prompt", True):
        raise OnnxUnavailable("the pooling excludes the prompt tokens")
    return str(mode)


def _export(model: object, target: Path) -> None:
    import warnings

    import torch

    class LastHiddenState(torch.nn.Module):
        def __init__(self, transformer: torch.nn.Module) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(
            self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor
        ) -> torch.Tensor:
            out = self.transformer(inputs_embeds=inputs_embeds, attention_mask=attention_mask)
            return out.last_hidden_state

    transformer = model[0].auto_model.eval()  # type: ignore[index]
    sample = model.preprocess([_PROBES[1]])  # type: ignore[attr-defined]
    sample_embeds = transformer.get_input_embeddings()(sample["input_ids"])
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer notes about constants that are constant here
        # The TorchScript exporter: the torch.export one needs onnxscript and gains nothing here.
        torch.onnx.export(
            LastHiddenState(transformer),
            (sample_embeds, sample["attention_mask"]),
            str(partial),
            input_names=["inputs_embeds", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_axes={
                "inputs_embeds": {0: "batch", 1: "tokens"},
                "attention_mask": {0: "batch", 1: "tokens"},
                "last_hidden_state": {0: "batch", 1: "tokens"},
            },
            opset_version=17,
            dynamo=False,
        )
    os.replace(partial, target)


class OnnxQueryEncoder:
    """`encode(texts, prompt)` like `SentenceTransformer.encode(..., normalize_embeddings=True)`,
    through ONNX Runtime, with the model's own tokenizer and truncation."""

    def __init__(
        self, model: object, graph: Path, pooling: str, threads: int, spinning: bool = False
    ) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Spinning worker threads would take the cores from the keyword search that runs
        # beside the query embedding; passage batches have the cores to themselves.
        options.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if spinning else "0"
        )
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(graph), options, providers=["CPUExecutionProvider"]
        )
        self._model = model
        self._pooling = pooling
        # The token-embedding table (250k × 384 for e5: 370 MB) is looked up here, in torch's
        # own memory, and left out of the graph: the session would hold a second copy.
        table = model[0].auto_model.get_input_embeddings().weight  # type: ignore[index]
        self._token_embeddings = table.detach().numpy()

    def encode(self, texts: Sequence[str], prompt: str = "") -> np.ndarray:
        features = self._model.preprocess(list(texts), prompt=prompt or None)  # type: ignore[attr-defined]
        ids = features["input_ids"].numpy().astype(np.int64)
        mask = features["attention_mask"].numpy().astype(np.int64)
        embeds = self._token_embeddings[ids]
        # InferenceSession.run is thread-safe: concurrent sessions of the web app need no lock.
        (hidden,) = self._session.run(None, {"inputs_embeds": embeds, "attention_mask": mask})
        if self._pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return np.ascontiguousarray(pooled / np.maximum(norms, 1e-12), dtype=np.float32)

    def encode_batched(
        self, texts: Sequence[str], prompt: str = "", batch_size: int = 32
    ) -> np.ndarray:
        """Many passages: batches of similar length (little padding), in the input order."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        out = np.zeros((len(texts), self._token_embeddings.shape[1]), dtype=np.float32)
        for lo in range(0, len(order), batch_size):
            chosen = order[lo : lo + batch_size]
            out[chosen] = self.encode([texts[i] for i in chosen], prompt)
        return out


def graph_path(models_dir: Path, model_name: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model_name).strip("_") or "model"
    return models_dir / "onnx" / slug / "encoder.onnx"


def load_query_encoder(
    model: object,
    model_name: str,
    location: str,
    models_dir: Path,
    threads: int,
    progress: Callable[[str], None] = lambda m: None,
) -> OnnxQueryEncoder:
    """Export once (cached under the models folder), then verify against torch on every load.

    Raises OnnxUnavailable with the reason when the graph cannot be made or does not match.
    """
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise OnnxUnavailable("onnxruntime is not installed") from exc
    pooling = _check_pipeline(model)
    graph = graph_path(models_dir, model_name)
    stamp = graph.with_name("source.json")
    fingerprint = json.loads(json.dumps(_fingerprint(location)))  # as it reads back
    for attempt in ("cached", "fresh"):
        current = graph.exists() and stamp.exists() and _read_json(stamp) == fingerprint
        if attempt == "fresh" or not current:
            progress("exporting the query encoder to ONNX (once, a few seconds)")
            try:
                _export(model, graph)
            except Exception as exc:  # the exporter raises many types for graphs it cannot trace
                raise OnnxUnavailable(f"ONNX export failed: {exc}") from exc
            stamp.write_text(json.dumps(fingerprint), encoding="utf-8")
        try:
            encoder = OnnxQueryEncoder(model, graph, pooling, threads)
            cosine = _probe_cosine(model, encoder)
        except Exception as exc:  # a damaged or foreign file: export again, once
            if attempt == "fresh":
                raise OnnxUnavailable(f"ONNX graph {graph} cannot run: {exc}") from exc
            continue
        if cosine >= _MIN_PROBE_COSINE:
            return encoder
        if attempt == "fresh":
            raise OnnxUnavailable(f"ONNX vectors differ from torch's (cosine {cosine:.6f})")
    raise AssertionError("unreachable")


def _probe_cosine(model: object, encoder: OnnxQueryEncoder) -> float:
    import torch

    with torch.inference_mode():
        reference = model.encode(  # type: ignore[attr-defined]
            list(_PROBES), normalize_embeddings=True, convert_to_numpy=True
        )
    candidate = encoder.encode(list(_PROBES))
    return float(np.min(np.sum(reference * candidate, axis=1)))


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


_MIN_INT8_COSINE = 0.98  # int8 vectors are close, not equal: this catches a broken quantisation


def load_passage_encoder(
    model: object,
    model_name: str,
    location: str,
    models_dir: Path,
    threads: int,
    quantized: bool,
    progress: Callable[[str], None] = lambda m: None,
) -> OnnxQueryEncoder:
    """The passage encoder: the verified fp32 graph, or its dynamic int8 quantisation (made
    once beside it, checked against torch on the probes on every load)."""
    load_query_encoder(model, model_name, location, models_dir, threads, progress)  # verifies
    graph = graph_path(models_dir, model_name)
    pooling = _check_pipeline(model)
    if not quantized:
        return OnnxQueryEncoder(model, graph, pooling, threads, spinning=True)
    int8 = graph.with_name("encoder-int8.onnx")
    stamp = int8.with_name("source-int8.json")
    fingerprint = json.loads(json.dumps(_fingerprint(location)))
    if not (int8.exists() and _read_json(stamp) == fingerprint):
        progress("quantising the passage encoder to int8 (once, a few seconds)")
        try:
            _quantize(graph, int8)
        except Exception as exc:  # the quantiser raises many types for graphs it cannot handle
            raise OnnxUnavailable(f"int8 quantisation failed: {exc}") from exc
        stamp.write_text(json.dumps(fingerprint), encoding="utf-8")
    try:
        encoder = OnnxQueryEncoder(model, int8, pooling, threads, spinning=True)
        cosine = _probe_cosine(model, encoder)
    except Exception as exc:
        raise OnnxUnavailable(f"int8 graph {int8} cannot run: {exc}") from exc
    if cosine < _MIN_INT8_COSINE:
        raise OnnxUnavailable(f"int8 vectors too far from torch's (cosine {cosine:.4f})")
    return encoder


def _quantize(graph: Path, target: Path) -> None:
    """Dynamic int8: weights quantised once, activations per batch at run time; MatMul only
    (the attention and feed-forward weights, where the time goes)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    partial = target.with_name(target.name + ".partial")
    quantize_dynamic(
        str(graph), str(partial), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"]
    )
    os.replace(partial, target)
