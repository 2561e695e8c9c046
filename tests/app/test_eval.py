"""`zhiku eval`'s parts: the dataset format, the metric definitions of ../shared/eval/README.md,
fixed samples, and retrieval measured for real on a small corpus (cached by content)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app._eval import (
    AnswerRow,
    CitedSentence,
    Question,
    answer_correct,
    build_eval_kb,
    cited_from_row,
    claim_support,
    evaluate_retrieval,
    evidence_rescues,
    first_hit_rank,
    is_hit,
    load_dataset,
    retrieval_summary,
    summarize_answers,
    summarize_by_kind,
    summarize_retrieval,
)
from ingest._embed import Embedder
from ingest.settings import Settings

CORPUS = [
    {"id": "hz", "title": "杭州", "text": "杭州是浙江省省会。杭州的市花是桂花，市树是香樟。"},
    {"id": "gz", "title": "广州", "text": "广州是广东省省会，别称羊城、花城，市花是木棉花。"},
    {"id": "q4", "title": "量化", "text": "4 位量化每个权重 4 比特，1.5B 模型约需 0.9 GB 显存。"},
]
QUESTIONS = [
    {
        "qid": f"q{i}",
        "question": question,
        "answerable": gold is not None,
        "gold_ids": [gold] if gold else [],
        "gold_spans": [span] if span else [],
        "answer_groups": [[answer]] if answer else [],
    }
    for i, (question, gold, span, answer) in enumerate(
        [
            ("杭州的市花是什么？", "hz", "市花是桂花", "桂花"),
            ("广州的别称是什么？", "gz", "别称羊城", "羊城"),
            ("1.5B 模型 4 位量化需要多少显存？", "q4", "0.9 GB", "0.9"),
            ("火星的首都在哪里？", None, None, None),
            ("广州的市花？", "gz", "木棉花", "木棉"),
            ("杭州的市树？", "hz", "香樟", "香樟"),
        ]
    )
]


def write_dataset(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name, rows in (("corpus.jsonl", CORPUS), ("questions.jsonl", QUESTIONS)):
        lines = [json.dumps(row, ensure_ascii=False) for row in rows]
        (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def question(**overrides: object) -> Question:
    values: dict[str, object] = {
        "qid": "q",
        "question": "杭州的市花是什么？",
        "answerable": True,
        "gold_ids": ("hz",),
        "gold_spans": ("市花是桂花",),
        "answer_groups": (("桂花", "木樨"), ("杭州",)),
    }
    values.update(overrides)
    return Question(**values)  # type: ignore[arg-type]


def test_samples_are_fixed_and_a_smaller_one_starts_the_larger(tmp_path: Path) -> None:
    folder = write_dataset(tmp_path / "set")
    everything = load_dataset(folder)
    assert [q.qid for q in everything.questions] == [f"q{i}" for i in range(6)]
    assert everything.questions[3].answerable is False
    small, large = load_dataset(folder, limit=2), load_dataset(folder, limit=5)
    assert [q.qid for q in small.questions] == [q.qid for q in large.questions[:2]]
    assert small.questions == load_dataset(folder, limit=2).questions
    assert len({q.qid for q in large.questions}) == 5
    with pytest.raises(FileNotFoundError):
        load_dataset(tmp_path)


def test_a_hit_needs_the_gold_document_and_its_span() -> None:
    q = question()
    assert is_hit(q, "hz", "杭州的 市花是桂花，市树是香樟。")  # whitespace does not matter
    assert not is_hit(q, "hz", "杭州是浙江省省会。")  # the right document, not the passage
    assert not is_hit(q, "gz", "市花是桂花")
    assert is_hit(question(gold_spans=()), "hz", "anything")
    assert first_hit_rank(q, [("gz", "x"), ("hz", "省会"), ("hz", "市花是桂花")]) == 3
    assert first_hit_rank(q, [("gz", "x")]) is None


def test_an_answer_is_correct_when_every_group_is_matched() -> None:
    q = question()
    assert answer_correct(q, "杭州的市花是桂花 [1]。")
    assert answer_correct(q, "杭州：木樨（桂花）")
    assert not answer_correct(q, "市花是桂花。")  # the second group is missing
    assert answer_correct(question(answer_groups=(("ＧＰＴ－１",),)), "gpt-1 有 1.17 亿参数")


def test_recall_and_mrr_follow_the_definitions() -> None:
    summary = retrieval_summary([1, 3, None, 7, 12])
    assert summary["recall@1"] == pytest.approx(1 / 5)
    assert summary["recall@5"] == pytest.approx(2 / 5)
    assert summary["recall@10"] == pytest.approx(3 / 5)
    assert summary["mrr@10"] == pytest.approx((1 + 1 / 3 + 1 / 7) / 5)


def answer_row(answerable: bool, refused: bool, correct: bool, valid: bool = True) -> AnswerRow:
    return AnswerRow(
        qid="q",
        question="?",
        answerable=answerable,
        answer="知识库中没有找到相关内容。" if refused else "答案 [1]",
        refused=refused,
        refusal_reason="model" if refused else None,
        correct=correct,
        markers_valid=valid,
        raw_markers_valid=valid,
        supported=correct,
        repairs=[],
        first_token_s=1.0,
        total_s=2.0,
        retrieval_s=0.1,
        error=None,
    )


def test_answer_metrics_follow_the_definitions() -> None:
    rows = [
        answer_row(True, False, True),
        answer_row(True, False, False, valid=False),
        answer_row(True, True, False),  # a false refusal
        answer_row(True, False, True),
        answer_row(False, True, False),
        answer_row(False, False, False),  # answered what is not there
    ]
    summary = summarize_answers(rows)
    assert summary["answer_accuracy"] == pytest.approx(2 / 4)
    assert summary["false_refusals"] == pytest.approx(1 / 4)
    assert summary["refusal_accuracy"] == pytest.approx(1 / 2)
    assert summary["citation_validity"] == pytest.approx(3 / 4)  # of the 4 non-refusals
    assert summary["citation_support"] == 1.0


def test_answers_are_also_summarized_per_question_class() -> None:
    def row(kind: str, answerable: bool, refused: bool, correct: bool) -> AnswerRow:
        base = answer_row(answerable, refused, correct)
        base.kind = kind
        return base

    rows = [
        row("yesno", True, False, True),
        row("yesno", True, False, False),
        row("neighbour", False, True, False),  # refused: right
        row("neighbour", False, False, False),  # answered what is not there: wrong
        row("neighbour", False, True, False),
        row("", True, False, True),  # a set without classes adds none
    ]
    by_kind = summarize_by_kind(rows)
    assert set(by_kind) == {"yesno", "neighbour"}
    assert by_kind["yesno"] == {"questions": 2, "right": 0.5, "refused": 0.0}
    assert by_kind["neighbour"]["right"] == pytest.approx(2 / 3)


def test_a_question_class_is_read_from_the_set(tmp_path: Path) -> None:
    folder = write_dataset(tmp_path / "set")
    lines = (folder / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0]) | {"kind": "ordinary"}
    (folder / "questions.jsonl").write_text(
        "\n".join([json.dumps(first, ensure_ascii=False), *lines[1:]]), encoding="utf-8"
    )
    kinds = [q.kind for q in load_dataset(folder).questions]
    assert kinds[0] == "ordinary" and kinds[1] == ""


def test_retrieval_is_measured_on_a_cached_throwaway_index(
    tmp_path: Path, settings: Settings, embedder: Embedder
) -> None:
    dataset = load_dataset(write_dataset(tmp_path / "set"))
    kb, _, cached = build_eval_kb(settings, dataset, embedder, lambda message: None)
    with kb:
        rows = list(evaluate_retrieval(settings, dataset, kb, embedder))
    assert not cached
    assert {r.qid: r.first_hit for r in rows if r.answerable} == {
        "q0": 1,
        "q1": 1,
        "q2": 1,
        "q4": 1,
        "q5": 1,
    }
    summary = summarize_retrieval(rows)
    assert summary["recall@1"] == 1.0 and summary["answerable"] == 5
    assert summary["retrieval_p50_ms"] > 0
    # the user's knowledge bases are untouched; a rerun reuses the index
    assert not (settings.zhiku_home / "kbs").exists()
    again, _, cached = build_eval_kb(settings, dataset, embedder, lambda message: None)
    again.close()
    assert cached


def cites(*pairs: tuple[str, str]) -> dict[str, CitedSentence]:
    """Markers 1, 2, … citing (sentence, passage) pairs."""
    return {str(n): CitedSentence(s, p) for n, (s, p) in enumerate(pairs, start=1)}


METRO = "杭州地铁 2 号线于 2014 年开通,全长 43.3 公里。"
FLOWER = "杭州的市花是桂花。"


def test_claim_support_follows_the_definition() -> None:
    cited = cites((METRO, METRO), (FLOWER, FLOWER))
    # supported; wrong number; uncited; too short and uncited: not counted
    answer = "2 号线全长 43.3 公里[1]。2 号线全长 45 公里[1]。杭州的市花是桂花。好的。"
    assert claim_support(answer, cited) == (3, 1)
    assert claim_support("杭州的市花是桂花。[2]", cited) == (1, 1), "a marker after the stop"
    assert claim_support("杭州的市花是桂花。[7]", cited) == (1, 0), "a marker citing nothing given"
    assert claim_support("桂花。[2]", cited) == (1, 1), "a cited short answer counts"
    # two cited items on one line are two claims, each checked against its own source
    items = cites(("PTQ:训练后直接量化,不需要重新训练",) * 2, ("QAT:训练过程中就引入量化",) * 2)
    line = "- PTQ:训练后直接量化,不需要重新训练[1] - QAT:训练过程中就引入量化[2]"
    assert claim_support(line, items) == (2, 2)
    assert claim_support(
        "The battery lasts up to 12 hours.[1]",
        cites(
            (
                "The battery lasts up to 12 hours on one charge.",
                "Specs. The battery lasts up to 12 hours on one charge.",
            )
        ),
    ) == (1, 1)


LEAVE = "试用期员工不可以请婚假。"
LEAVE_PASSAGE = LEAVE + "正式员工入职满一年可请婚假 3 天。"


@pytest.mark.parametrize(
    ("answer", "cited"),
    [
        # a negation flip: every bigram of the claim is in the sentence it cites
        ("试用期员工可以请婚假。[1]", cites((LEAVE, LEAVE_PASSAGE))),
        ("可以。[1]", cites((LEAVE, LEAVE_PASSAGE))),
        ("The battery can be replaced.[1]", cites(("The battery cannot be replaced.",) * 2)),
        # a merged fact: each half from its own passage, the whole said by neither
        (
            "A 公司由 B 公司的创始人李明创立。[1][2]",
            cites(
                ("A 公司成立于 2010 年,由张伟创立。",) * 2,
                ("B 公司的创始人李明曾任教于浙江大学。",) * 2,
            ),
        ),
        (
            "阿里巴巴由马化腾创立。[1][2]",
            cites(
                ("阿里巴巴集团于 1999 年在杭州成立。",) * 2,
                ("腾讯由马化腾等五人于 1998 年创立,总部位于深圳。",) * 2,
            ),
        ),
        # a title given as the answer ("这次调价从哪天起执行？")
        (
            "关于调整班车票价的通知。[1]",
            {
                "1": CitedSentence(
                    "关于调整班车票价的通知",
                    "# 关于调整班车票价的通知\n\n自 2025 年 3 月 1 日起,单程票价调整为 5 元。",
                )
            },
        ),
        (
            "员工班车管理办法。[1]",
            {
                "1": CitedSentence(
                    "员工班车管理办法", "员工班车管理办法 第一条", ("员工班车管理办法",)
                )
            },
        ),
        # a neighbour's table row: model A's weight given for model B
        (
            "B200 的重量为 1.2 kg。[1]",
            cites(
                (
                    "| A100 | 1.2 kg | 10 小时 |",
                    "| 型号 | 重量 | 续航 |\n|---|---|---|\n"
                    "| A100 | 1.2 kg | 10 小时 |\n| B200 | 1.5 kg | 12 小时 |",
                )
            ),
        ),
        (
            "乙型的重量为 1.2 千克。[1]",
            cites(
                (
                    "| 甲型 | 1.2 千克 |",
                    "| 型号 | 重量 |\n|---|---|\n| 甲型 | 1.2 千克 |\n| 乙型 | 1.5 千克 |",
                )
            ),
        ),
        # a number from the passage but not from the sentence cited
        ("正式员工入职满一年可请婚假 3 天。[1]", cites((LEAVE, LEAVE_PASSAGE))),
    ],
)
def test_claim_support_catches_what_a_bigram_check_passes(
    answer: str, cited: dict[str, CitedSentence]
) -> None:
    assert claim_support(answer, cited) == (1, 0)


@pytest.mark.parametrize(
    ("answer", "cited"),
    [
        ("试用期员工不可以请婚假。[1]", cites((LEAVE, LEAVE_PASSAGE))),
        ("不可以。[1]", cites((LEAVE, LEAVE_PASSAGE))),
        ("A 公司由张伟创立。[1]", cites(("A 公司成立于 2010 年,由张伟创立。",) * 2)),
        (
            "自 2025 年 3 月 1 日起执行。[1]",
            cites(("自 2025 年 3 月 1 日起,单程票价调整为 5 元。",) * 2),
        ),
        (
            "A100 的重量为 1.2 kg。[1]",
            cites(
                (
                    "| A100 | 1.2 kg | 10 小时 |",
                    "| 型号 | 重量 | 续航 |\n|---|---|---|\n| A100 | 1.2 kg | 10 小时 |",
                )
            ),
        ),
        # two clauses, each with the polarity of its own part of the sentence
        (
            "正式员工可以申请班车卡,实习生不可以。[1]",
            cites(("正式员工可凭工牌申请班车卡;实习生和外包人员不在发放范围内。",) * 2),
        ),
        # a table row given as its record: the column names come from the table's header
        (
            "大小(billion)=1.5B,显存占用(GB)=0.9[1]",
            cites(
                (
                    "1.5B | 4 | 0.9 |",  # a table written without its leading pipes
                    "大小(billion) | 模型位数 | 显存占用(GB) |\n---|---|---|\n"
                    "1.5B | 4 | 0.9 |\n7B | 4 | 4.2 |",
                )
            ),
        ),
        # "非常" negates nothing
        ("西湖非常美丽。[1]", cites(("西湖非常美丽,游客众多。",) * 2)),
    ],
)
def test_claim_support_keeps_what_the_sources_say(
    answer: str, cited: dict[str, CitedSentence]
) -> None:
    assert claim_support(answer, cited) == (1, 1)


def test_claim_support_reads_the_cited_sentences_of_a_run_file() -> None:
    row = {
        "cited": {"1": LEAVE_PASSAGE},
        "cited_sentences": {"1": {"sentence": LEAVE, "labels": ["员工手册"]}},
    }
    cited = cited_from_row(row)
    assert cited["1"] == CitedSentence(LEAVE, LEAVE_PASSAGE, ("员工手册",))
    assert claim_support("可以。[1]", cited) == (1, 0)
    older = cited_from_row({"cited": {"1": LEAVE_PASSAGE}})  # a run from before
    assert older["1"].sentence == LEAVE_PASSAGE


def test_evidence_rescue_is_counted_apart_from_the_answer() -> None:
    asked = Question("q", "2 号线多长？", True, ("d",), (), (("43.3 公里",),))
    assert evidence_rescues(asked, "二号线很长。[1]", False, "2 号线全长 43.3 公里。")
    assert not evidence_rescues(asked, "全长 43.3 公里。[1]", False, "2 号线全长 43.3 公里。")
    assert not evidence_rescues(asked, "二号线很长。[1]", False, "1 号线全长 53.6 公里。")
    assert not evidence_rescues(asked, "知识库中没有找到相关内容。", True, "")
    rows = [
        answer_row(True, False, True),
        answer_row(True, False, False),
        answer_row(False, True, False),
    ]
    rows[1].evidence_rescued = True
    summary = summarize_answers(rows)
    assert summary["answer_accuracy"] == pytest.approx(1 / 2), "the answer alone"
    assert summary["evidence_rescue"] == pytest.approx(1 / 2)


def test_guard_counts_say_what_each_guard_fixed_and_broke() -> None:
    from types import SimpleNamespace

    from app._eval import Question, guard_counts
    from app.answer.verify import GuardEvent

    asked = Question("q", "15 天？", True, ("d",), (), (("15",),))
    unasked = Question("u", "股票代码？", False, (), (), ())
    refusal = SimpleNamespace(
        answer="知识库中没有找到相关内容。",
        refused=True,
        guards=[GuardEvent("missing_names", "x", "年假 15 天[1]。", False)],
    )
    assert guard_counts(asked, refusal) == {"missing_names": [1, 1, 0]}, "right -> wrong"
    invented = SimpleNamespace(
        answer="知识库中没有找到相关内容。",
        refused=True,
        guards=[GuardEvent("coverage", "0.1", "代码是 600001[1]。", False)],
    )
    assert guard_counts(unasked, invented) == {"coverage": [1, 0, 1]}, "wrong -> right"
    unknown = SimpleNamespace(
        answer="15 天[1]。", refused=False, guards=[GuardEvent("instructions", "1")]
    )
    assert guard_counts(asked, unknown) == {"instructions": [1, 0, 0]}
