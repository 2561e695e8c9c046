"""Citation verification and repair: what a user reads must point at the passage that says it."""

from __future__ import annotations

import re

from app._cite import first_repeat, matching_sentence, off_question, repair, support
from app._prompt import REFUSAL_ZH

PASSAGES = [
    "GPT 系列由 OpenAI 推出。从 GPT-1 到 GPT-4，模型参数量从 1.17 亿增长到千亿级。",
    "BERT 由谷歌提出，采用双向编码，通过 Masked Language Modeling 学习上下文语义。",
    "量化把 FP32 权重压缩为 INT8，显存占用减少约 4 倍，推理速度更快。",
]


def test_valid_markers_are_kept_and_renumbered_by_appearance() -> None:
    result = repair("BERT 采用双向编码[2]。GPT-1 有 1.17 亿参数[1]。", PASSAGES)
    assert result.text == "BERT 采用双向编码[1]。GPT-1 有 1.17 亿参数[2]。"
    assert result.cited == [2, 1]  # new [1] is old passage 2
    assert result.changes == []


def test_markers_pointing_at_no_passage_are_removed() -> None:
    result = repair("量化能减少显存[7]。量化把权重压缩为 INT8[3][9]。", PASSAGES)
    assert "[7]" not in result.text and "[9]" not in result.text
    assert result.cited == [3]
    assert all(0 < int(n) <= 3 for n in re.findall(r"\[(\d+)\]", result.text))
    assert any("[7]" in change for change in result.changes)


def test_other_marker_styles_are_understood() -> None:
    result = repair("GPT-1 有 1.17 亿参数【1】，BERT 双向编码[资料2]。量化[1, 3]。", PASSAGES)
    assert result.cited == [1, 2, 3]
    assert "【" not in result.text and "资料" not in result.text


def test_an_uncited_sentence_gets_the_passage_that_clearly_supports_it() -> None:
    result = repair("从 GPT-1 到 GPT-4，模型参数量从 1.17 亿增长到千亿级。", PASSAGES)
    assert result.text == "从 GPT-1 到 GPT-4，模型参数量从 1.17 亿增长到千亿级[1]。"
    assert result.cited == [1]
    assert any("added" in change for change in result.changes)


def test_no_citation_is_invented_when_support_is_unclear() -> None:
    result = repair("这是一个与资料无关的句子，讨论天气和旅行。", PASSAGES)
    assert result.cited == []
    assert "[" not in result.text


def test_a_citation_of_the_wrong_passage_is_replaced() -> None:
    result = repair("量化把 FP32 权重压缩为 INT8，显存占用减少约 4 倍[2]。", PASSAGES)
    assert result.cited == [3]
    assert result.text.endswith("[1]。")


def test_the_refusal_sentence_is_never_cited() -> None:
    result = repair(REFUSAL_ZH, PASSAGES, (REFUSAL_ZH,))
    assert result.text == REFUSAL_ZH and result.cited == []


def test_the_supporting_span_is_the_right_sentence_of_the_passage() -> None:
    result = repair("参数量从 1.17 亿增长到千亿级[1]。", PASSAGES)
    start, end = result.spans[1]
    assert PASSAGES[0][start:end].startswith("从 GPT-1 到 GPT-4")
    assert "1.17 亿" in PASSAGES[0][start:end]


def test_markers_after_the_full_stop_belong_to_the_sentence_before() -> None:
    result = repair("BERT 采用双向编码。[2] 量化减少显存。[3]", PASSAGES)
    assert result.cited == [2, 3]
    assert result.text == "BERT 采用双向编码。[1] 量化减少显存。[2]"


def test_a_marker_after_a_space_or_on_the_next_line_is_not_doubled() -> None:
    # seen from the bundled model: "…语义。 [2]" used to come back as "…语义[2]。 [2]"
    spaced = repair("BERT 通过 Masked Language Modeling 学习上下文语义。 [2]", PASSAGES)
    assert spaced.text == "BERT 通过 Masked Language Modeling 学习上下文语义。 [1]"
    assert spaced.changes == []
    next_line = repair("BERT 采用双向编码。\n[2]\n量化把 FP32 权重压缩为 INT8。", PASSAGES)
    assert next_line.text == "BERT 采用双向编码。\n[1]\n量化把 FP32 权重压缩为 INT8[2]。"


def test_repeated_markers_collapse() -> None:
    result = repair("GPT-1 有 1.17 亿参数[1][1]。", PASSAGES)
    assert result.text == "GPT-1 有 1.17 亿参数[1]。"


def test_support_counts_chinese_bigrams_and_words() -> None:
    assert support("1.17 亿参数", PASSAGES[0]) > 0.5
    assert support("1.17 亿参数", PASSAGES[1]) < 0.3
    assert support("", PASSAGES[0]) == 0.0


def test_repeats_are_whole_sentences_said_again() -> None:
    # the repeat starts after the first sentence's marker, which stays with it
    assert first_repeat("杭州的市花是桂花。[1]杭州的市花是桂花。[1]") == len(
        "杭州的市花是桂花。[1]"
    )
    assert first_repeat("杭州的市花是桂花。[1]杭州的市花是桂花") is None  # not finished yet
    assert first_repeat("杭州的市花是桂花\n杭州的市花是桂花") is None  # nor is this one
    assert first_repeat("是的。是的。杭州的市树是香樟。") is None  # too short to be a loop
    assert first_repeat("杭州的市花是桂花。杭州的市树是香樟。") is None


APPLICATIONS = """跨模态应用:
- 图像描述生成:BLIP-2模型实现看图说话
- 视频理解:VideoCoT通过时序注意力分析动作序列
科学计算:
- 蛋白质结构预测:AlphaFold2革新生物医药研究
- 数学推理:Minerva模型解决竞赛级数学题
"""


def test_an_answer_from_the_wrong_list_line_becomes_the_line_matching_the_question() -> None:
    passages = ["GPT 系列由 OpenAI 推出。", APPLICATIONS]
    question = "哪个模型能解决竞赛级数学题？"
    quoted = off_question("AlphaFold2革新生物医药研究[2]。", question, passages)
    assert quoted == "数学推理:Minerva模型解决竞赛级数学题[2]"
    quoted = off_question("BLIP-2 模型[1]。", "哪个模型通过时序注意力分析动作序列?", passages)
    assert quoted == "视频理解:VideoCoT通过时序注意力分析动作序列[2]"


def test_an_answer_drawing_on_the_matching_sentence_is_left_alone() -> None:
    question = "哪个模型能解决竞赛级数学题？"
    assert off_question("Minerva[1]。", question, [APPLICATIONS]) is None
    assert off_question("Minerva 模型能解决竞赛级数学题[1]。", question, [APPLICATIONS]) is None


def test_no_sentence_is_forced_on_the_answer_when_none_clearly_matches() -> None:
    lead_in = "以下云平台支持快速部署大模型:\n- AWS SageMaker\n- 阿里云 PAI-EAS\n"
    question = "有哪些云平台支持快速部署大模型？"
    assert matching_sentence(question, [lead_in]) is None, "a lead-in holds no answer itself"
    assert off_question("AWS SageMaker[1]。", question, [lead_in]) is None
    heading = "快速部署大模型的云平台\n常见的选择是 AWS SageMaker。"
    assert matching_sentence(question, [heading]) is None, "a heading only restates the question"
    row = "| 云平台 | 支持快速部署大模型的服务 |\n|---|---|\n| AWS | SageMaker |"
    assert matching_sentence(question, [row]) is None, "a table row needs its header"
    two = "杭州地铁 1 号线于 2012 年开通。杭州地铁 2 号线于 2014 年开通。"
    assert matching_sentence("杭州地铁哪条线开通了？", [two]) is None, "two match equally"
