"""Where `sibling_terms` (app/answer/verify/sibling_terms.py) fires over a whole evaluation set,
without writing answers: each question is retrieved and decided as answering does, and the check
asks the bundled model its synonym questions. A fire on an answerable question is a refusal the
user did not want (an upper bound of what it costs: the answer might have been wrong anyway); on
an unanswerable one, a refusal that the model's answer would otherwise have to earn.

    .venv/bin/python -m bench.sibling_fires SET [--limit N] [--list]

Over the 1,002 questions of cmrc2018_trial it takes about ten minutes on two cores (one model
call per pair of words it asks about; a pair is asked once).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from app._eval import build_eval_kb, load_dataset
from app._llm import resolve_backend
from app.answer.decide import decide, sibling_refusal
from app.answer.generate import synonym_judge
from app.answer.retrieve import retrieve
from ingest._embed import load_embedder
from ingest.settings import get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("set", type=Path, help="an evaluation set's folder")
    parser.add_argument("--limit", type=int, default=None, help="as `zhiku eval --limit`")
    parser.add_argument("--list", action="store_true", help="print each question it fires on")
    args = parser.parse_args(argv)
    # the check as answering runs it, whatever the guard's setting here
    settings = get_settings().model_copy(update={"guard_sibling_terms": True})
    embedder = load_embedder(settings)
    dataset = load_dataset(args.set, args.limit)
    kb, _, _ = build_eval_kb(settings, dataset, embedder, lambda message: None)
    # one judge for the whole run, without the per-answer limit: a pair is asked once
    synonym = synonym_judge(resolve_backend(settings).chat, limit=None)
    fired = {True: 0, False: 0}
    total = {True: 0, False: 0}
    try:
        for question in dataset.questions:
            total[question.answerable] += 1
            decision = decide(retrieve(question.question, kb, settings, embedder), kb, settings)
            refused = sibling_refusal(
                decision, question.question, embedder.encode_queries, synonym, settings
            )
            fires = [g for g in refused.guards if g.name == "sibling_terms"]
            if not fires:
                continue
            fired[question.answerable] += 1
            if args.list:
                kind = "answerable" if question.answerable else "unanswerable"
                print(f"{question.qid} ({kind}) {question.question} | {fires[0].detail}")
    finally:
        kb.close()
    print(
        json.dumps(
            {
                "set": args.set.name,
                "fired_answerable": fired[True],
                "answerable": total[True],
                "fired_unanswerable": fired[False],
                "unanswerable": total[False],
            },
            ensure_ascii=False,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
