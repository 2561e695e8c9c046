"""Train the responsiveness scorer and write its weights (app/answer/verify/responsive.json).

    .venv/bin/python -m bench.train_responsive [--train ../shared/eval/cmrc2018_trial]
        [--heldout tests/data/company --heldout ../shared/eval/drcd_dev_s2]
        [--out app/answer/verify/responsive.json]

Pairs of (question, sentence, the sentence's context) from a set in the `zhiku eval` format:
positives are the sentences holding a gold answer (an answer alternative, or a gold span);
hard negatives are the other sentences of the same document nearest the question, the nearest
sentences of other documents, and, for an unanswerable question, the sentences nearest to it in
the whole corpus (what retrieval would hand the model). A logistic regression (scikit-learn) on
`app.answer.verify.responsive.FEATURES`, standardised; its threshold keeps RECALL of the
training positives (out of fold). AUC is reported out of fold on the training set and on each
held-out set, which is never trained on, with the share of its answerable questions one of
whose answer sentences reaches the threshold (what the check would leave answered).

Training data: CMRC 2018 trial (ymcui/cmrc2018, CC BY-SA 4.0), as stored in
../shared/eval/cmrc2018_trial. The weights file is a small derived work of it: it holds 13
coefficients, their scaling and a threshold, no text.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app._eval import squash
from app.answer.prompt import passage_units
from app.answer.verify.responsive import FEATURES, Pair, cross_language, features, own_label
from ingest._embed import Embedder, load_embedder
from ingest.settings import get_settings

RECALL = 0.97  # share of training positives the threshold keeps (out of fold)
SAME_DOC_NEGATIVES = 6
OTHER_DOC_NEGATIVES = 2
UNANSWERABLE_NEGATIVES = 5
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")


@dataclass(frozen=True)
class Unit:
    doc: str
    raw: str  # the text as written (a table row with its bars)
    shown: str  # as the prompt shows it
    label: str


def document_units(doc_id: str, title: str, text: str) -> list[Unit]:
    """The document's sentences as the prompt numbers them, each with its title, the headings
    above it and the FAQ question line before it."""
    heads: list[str] = []
    line_heads: dict[int, tuple[str, ...]] = {}
    pos = 0
    for line in text.split("\n"):
        match = _HEADING.match(line.strip())
        if match:
            level = len(match.group(1))
            heads = [*heads[: level - 1], match.group(2).strip()]
        line_heads[pos] = tuple(heads)
        pos += len(line) + 1
    starts = sorted(line_heads)
    out: list[Unit] = []
    previous: str | None = None
    for start, end, shown in passage_units(text):
        line_start = max(s for s in starts if s <= start)
        headings = line_heads[line_start]
        stripped = shown.strip().lstrip("#").strip()
        if _HEADING.match(shown.strip()) or stripped == title.strip():
            continue
        headings = tuple(h for h in headings if h != title)
        label = own_label(title, headings, previous, shown)
        out.append(Unit(doc_id, text[start:end], shown, label))
        previous = shown
    return out


def load(folder: Path, limit: int | None) -> tuple[list[dict], dict[str, list[Unit]]]:
    """The questions (the first `limit` of a fixed shuffle) and the sentences of the corpus;
    with a limit, of the questions' documents and as many others (the unanswerable questions'
    neighbours come from these)."""
    docs = [json.loads(x) for x in (folder / "corpus.jsonl").read_text().splitlines() if x.strip()]
    questions = [
        json.loads(x) for x in (folder / "questions.jsonl").read_text().splitlines() if x.strip()
    ]
    if limit is not None and limit < len(questions):
        questions = random.Random(0).sample(questions, len(questions))[:limit]
        wanted = {g for q in questions for g in q.get("gold_ids") or []}
        others = [d for d in docs if d["id"] not in wanted]
        extra = {d["id"] for d in random.Random(1).sample(others, min(len(others), len(wanted)))}
        docs = [d for d in docs if d["id"] in wanted or d["id"] in extra]
    units = {d["id"]: document_units(d["id"], d.get("title", ""), d["text"]) for d in docs}
    return questions, units


def holds_answer(question: dict, unit: Unit) -> bool:
    raw = squash(unit.raw)
    groups = question.get("answer_groups") or []
    spans = question.get("gold_spans") or []
    if spans and any(squash(s) in raw for s in spans):
        return True
    return bool(groups) and not spans and any(squash(a) in raw for a in groups[0])


CACHE = Path(".zhiku/responsive-cache")


def _encode(embedder: Embedder, texts: list[str], queries: bool) -> np.ndarray:
    """Vectors of `texts`, kept on disk by content so a second run of the script (new
    features, other settings) does not embed again."""
    import hashlib

    key = hashlib.sha256(
        "\x00".join([embedder.name, str(queries), *texts]).encode("utf-8")
    ).hexdigest()[:24]
    path = CACHE / f"{key}.npy"
    if path.is_file():
        return np.load(path)
    vectors = embedder.encode_queries(texts) if queries else embedder.encode_passages(texts)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


@dataclass
class Pairs:
    pairs: list[Pair]
    labels: list[int]
    groups: list[str]  # qid, for folds


def build_pairs(folder: Path, embedder: Embedder, limit: int | None = None) -> Pairs:
    questions, units = load(folder, limit)
    flat = [u for us in units.values() for u in us]
    index = {id(u): i for i, u in enumerate(flat)}
    s_vec = _encode(embedder, [u.shown for u in flat], False)
    c_vec = _encode(embedder, [f"{u.label}\n{u.shown}" for u in flat], False)
    q_vec = _encode(embedder, [q["question"] for q in questions], True)
    doc_rows = {d: [index[id(u)] for u in us] for d, us in units.items()}
    out = Pairs([], [], [])
    for qi, question in enumerate(questions):
        cos_all = s_vec @ q_vec[qi]
        cos_ctx = c_vec @ q_vec[qi]
        chosen: list[tuple[int, int]] = []  # (row, label)
        gold = [g for g in question.get("gold_ids") or [] if g in doc_rows]
        if question["answerable"] and gold:
            rows = doc_rows[gold[0]]
            positives = [r for r in rows if holds_answer(question, flat[r])]
            if not positives:
                continue
            chosen += [(r, 1) for r in positives[:2]]
            negatives = sorted((r for r in rows if r not in positives), key=lambda r: -cos_all[r])[
                :SAME_DOC_NEGATIVES
            ]
            chosen += [(r, 0) for r in negatives]
            others = [r for r in np.argsort(-cos_all)[:50] if flat[r].doc not in gold]
            chosen += [(int(r), 0) for r in others[:OTHER_DOC_NEGATIVES]]
        elif not question["answerable"]:
            chosen += [(int(r), 0) for r in np.argsort(-cos_all)[:UNANSWERABLE_NEGATIVES]]
        for row, label in chosen:
            same = [r for r in doc_rows[flat[row].doc] if r != row]
            best_other = float(max(cos_all[same])) if same else 0.0
            out.pairs.append(
                Pair(
                    question["question"],
                    flat[row].shown,
                    flat[row].label,
                    float(cos_all[row]),
                    float(cos_ctx[row]),
                    best_other,
                )
            )
            out.labels.append(label)
            out.groups.append(question["qid"])
    return out


def matrix(pairs: list[Pair]) -> tuple[np.ndarray, np.ndarray]:
    rows = [features(p) for p in pairs]
    foreign = np.array([cross_language(p.question, p.sentence) for p in pairs])
    return np.array([[r[n] for n in FEATURES] for r in rows], dtype=np.float64), foreign


def questions_kept(
    probs: np.ndarray, labels: np.ndarray, groups: list[str], threshold: float
) -> float:
    """The share of answerable questions one of whose answer sentences reaches the threshold:
    those the check would leave answered when the model cites the right sentence."""
    best: dict[str, float] = {}
    for prob, label, group in zip(probs, labels, groups, strict=True):
        if label == 1:
            best[group] = max(best.get(group, 0.0), float(prob))
    return round(sum(1 for v in best.values() if v >= threshold) / max(len(best), 1), 4)


def main(argv: list[str] | None = None) -> int:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, action="append")
    parser.add_argument("--heldout", type=Path, action="append", default=[])
    parser.add_argument("--heldout-limit", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("app/answer/verify/responsive.json"))
    args = parser.parse_args(argv)
    train_sets = args.train or [Path("../shared/eval/cmrc2018_trial")]
    embedder = load_embedder(get_settings())
    train = Pairs([], [], [])
    for folder in train_sets:
        part = build_pairs(folder, embedder)
        train.pairs += part.pairs
        train.labels += part.labels
        train.groups += part.groups
    x, foreign = matrix(train.pairs)
    y = np.array(train.labels)
    mean, scale = x[~foreign].mean(axis=0), x[~foreign].std(axis=0) + 1e-9
    z = (x - mean) / scale
    oof = np.zeros(len(y))
    for fit_rows, test_rows in GroupKFold(n_splits=5).split(z, y, train.groups):
        model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
        model.fit(z[fit_rows], y[fit_rows])
        oof[test_rows] = model.predict_proba(z[test_rows])[:, 1]
    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000).fit(z, y)
    threshold = float(np.quantile(oof[y == 1], 1 - RECALL))
    report: dict[str, object] = {
        "train_pairs": len(y),
        "train_positives": int(y.sum()),
        "train_auc_out_of_fold": round(float(roc_auc_score(y, oof)), 4),
        "threshold": round(threshold, 4),
    }
    data = {
        "features": list(FEATURES),
        "mean": [round(float(v), 6) for v in mean],
        "scale": [round(float(v), 6) for v in scale],
        "weights": [round(float(v), 6) for v in model.coef_[0]],
        "bias": round(float(model.intercept_[0]), 6),
        "threshold": round(threshold, 4),
        "trained_on": [str(f) for f in train_sets],
        "licence": "derived from CMRC 2018 trial (CC BY-SA 4.0)",
        "script": "bench/train_responsive.py",
    }
    args.out.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(report, ensure_ascii=False), flush=True)
    from app.answer.verify.responsive import load_model

    load_model.cache_clear()
    scorer = load_model(args.out)
    for folder in args.heldout:
        held = build_pairs(folder, embedder, args.heldout_limit)
        if not held.labels or len(set(held.labels)) < 2:
            continue
        probs = np.array([scorer.probability(p) for p in held.pairs])
        labels = np.array(held.labels)
        report[f"heldout_auc:{folder.name}"] = round(float(roc_auc_score(labels, probs)), 4)
        report[f"heldout_positive_kept:{folder.name}"] = round(
            float((probs[labels == 1] >= threshold).mean()), 4
        )
        report[f"heldout_negative_caught:{folder.name}"] = round(
            float((probs[labels == 0] < threshold).mean()), 4
        )
        report[f"heldout_questions_kept:{folder.name}"] = questions_kept(
            probs, labels, held.groups, threshold
        )
        cos = np.array([p.cos_sentence for p in held.pairs])
        report[f"heldout_auc_cosine_only:{folder.name}"] = round(
            float(roc_auc_score(labels, cos)), 4
        )
    report["weights"] = dict(zip(FEATURES, data["weights"], strict=True))
    print(json.dumps(report, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
