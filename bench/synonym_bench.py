"""Measure the two readings `sibling_terms` (app/answer/verify/sibling_terms.py) rests on, on
word pairs written for this project (`tests/data/term_pairs/pairs.tsv`: synonyms such as
电脑/计算机 and siblings, other things of one kind, such as 早餐/午餐; split `dev`, on which the
question to the model was chosen among eleven wordings, and `heldout`, written after):

- the model's "Is A a synonym of B?" in both orders: how many synonyms it keeps (at least one
  "yes") and how many siblings it catches (two "no"s);
- the embedding cosine (multilingual-e5-small, both as queries) of siblings, synonyms and
  unrelated pairs (random pairs of the same words): what SIBLING_FLOOR lets through.

    .venv/bin/python -m bench.synonym_bench [--floor 0.88] [--no-llm]
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import numpy as np

from app._llm import resolve_backend
from app.answer.generate import synonym_judge
from ingest._embed import load_embedder
from ingest.settings import get_settings

PAIRS = Path(__file__).resolve().parent.parent / "tests/data/term_pairs/pairs.tsv"


def pairs() -> list[tuple[str, str, bool, str]]:
    rows = PAIRS.read_text(encoding="utf-8").splitlines()[1:]
    return [(a, b, rel == "synonym", split) for a, b, rel, split in (r.split("\t") for r in rows)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--floor", type=float, default=None)
    parser.add_argument("--no-llm", action="store_true")
    args = parser.parse_args()
    settings = get_settings()
    floor = settings.sibling_floor if args.floor is None else args.floor
    data = pairs()

    embedder = load_embedder(settings)
    words = sorted({w for a, b, *_ in data for w in (a, b)})
    vectors = dict(zip(words, embedder.encode_queries(words), strict=True))
    rng = random.Random(0)
    unrelated = [tuple(rng.sample(words, 2)) for _ in range(500)]

    def cos(a: str, b: str) -> float:
        return float(vectors[a] @ vectors[b])

    print(f"cosine (e5 queries), floor {floor}: 5th/50th/95th percentile, share ≥ floor")
    for name, group in (
        ("siblings", [cos(a, b) for a, b, same, _ in data if not same]),
        ("synonyms", [cos(a, b) for a, b, same, _ in data if same]),
        ("unrelated", [cos(a, b) for a, b in unrelated]),
    ):
        p5, p50, p95 = np.percentile(group, [5, 50, 95])
        share = sum(c >= floor for c in group) / len(group)
        print(f"  {name:9} {p5:.3f} {p50:.3f} {p95:.3f}  {share:.2f}")
    if args.no_llm:
        return

    backend = resolve_backend(settings)
    if backend.chat is None:
        raise SystemExit("no LLM backend")
    print(f"model: {backend.info.label_en}")
    synonym = synonym_judge(backend.chat, limit=None)  # every pair, not one answer's share
    for split in ("dev", "heldout"):
        chosen = [p for p in data if p[3] == split]
        started = time.perf_counter()
        kept = caught = 0
        wrong = []
        for a, b, same, _ in chosen:
            different = synonym(a, b) is False and synonym(b, a) is False
            kept += same and not different
            caught += different and not same
            if different == same:
                wrong.append(f"{a}/{b}")
        seconds = (time.perf_counter() - started) / (2 * len(chosen))
        n_same = sum(p[2] for p in chosen)
        print(
            f"{split}: synonyms kept {kept}/{n_same}, siblings caught {caught}/"
            f"{len(chosen) - n_same}, {seconds:.2f} s per question; wrong: {' '.join(wrong)}"
        )


if __name__ == "__main__":
    main()
