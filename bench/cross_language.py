"""Measure the embedding similarity at which an answer sentence in one language restates an
evidence sentence in another (CROSS_LANGUAGE_SUPPORT in ingest/settings.py).

Pairs: `tests/data/cross_language/sources.jsonl` holds manual and policy sentences with a
restatement in the other language (written for this project). A positive is a restatement and
its source; a negative is a restatement and another sentence of the same document (same topic,
another fact), or a wrong claim keeping the source's numbers ("音箱可以在水下使用 12 小时"
over "The battery lasts up to 12 hours": the hardest case, numbers cannot tell it). Prints the
cosines' AUC and, for each candidate threshold, the share of positives kept and of negatives
let through, by the cosine alone and with numbers and names checked too:

    .venv/bin/python -m bench.cross_language
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from app.answer.verify.cross_language import literals_agree, similarity_with
from ingest._embed import load_embedder
from ingest.settings import get_settings

PAIRS = Path(__file__).resolve().parent.parent / "tests/data/cross_language/sources.jsonl"


def pairs() -> list[tuple[str, str, bool]]:
    rows = [json.loads(line) for line in PAIRS.read_text(encoding="utf-8").splitlines() if line]
    out = []
    for i, row in enumerate(rows):
        for j, other in enumerate(rows):
            if other["doc"] == row["doc"]:
                out.append((row["claim"], other["text"], i == j))
        if row.get("wrong"):
            out.append((row["wrong"], row["text"], False))
    return out


def auc(positives: list[float], negatives: list[float]) -> float:
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def main() -> int:
    similarity = similarity_with(load_embedder(get_settings()))
    all_pairs = pairs()
    scored = [(similarity(claim, text), good) for claim, text, good in all_pairs]
    literal = [literals_agree(claim, text) for claim, text, _ in all_pairs]
    positives = [s for s, good in scored if good]
    negatives = [s for s, good in scored if not good]
    area = auc(positives, negatives)
    print(f"{len(positives)} positives, {len(negatives)} negatives, AUC {area:.3f}")
    print(f"positives min/median {min(positives):.3f}/{np.median(positives):.3f}")
    print(f"negatives median/max {np.median(negatives):.3f}/{max(negatives):.3f}")
    for threshold in np.arange(0.80, 0.92, 0.01):
        kept = np.mean([p >= threshold for p in positives])
        through = np.mean([n >= threshold for n in negatives])
        both = [ok and s >= threshold for (s, _), ok in zip(scored, literal, strict=True)]
        kept_both = np.mean([b for b, (_, good) in zip(both, scored, strict=True) if good])
        through_both = np.mean([b for b, (_, good) in zip(both, scored, strict=True) if not good])
        print(
            f"{threshold:.2f}: positives kept {kept:.2f}, negatives through {through:.2f}; "
            f"with numbers and names: {kept_both:.2f} / {through_both:.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
