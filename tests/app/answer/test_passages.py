"""Passages: touching chunks merge, the prompt budget is kept, windows keep table headers, and
offsets map the model's text back to the page."""

from __future__ import annotations

from app.answer.passages import Passage, best_window, fit_context


def passage(text: str, number: int = 1, start: int = 100, header_len: int = 0) -> Passage:
    return Passage(
        number=number,
        chunk_ids=(number,),
        doc_id="d",
        title="t",
        source="/d.txt",
        doc_type="txt",
        page=None,
        page_seq=0,
        headings=(),
        start=start,
        end=start + len(text) - header_len,
        text=text,
        score=1.0,
        dense=0.9,
        header_len=header_len,
    )


FILLER = "这一句与问题无关，只是填充内容。" * 6
ANSWER = "GPT-1 的参数量为 1.17 亿。"


def test_the_best_window_holds_the_answer_and_ends_at_sentences() -> None:
    text = FILLER + ANSWER + FILLER
    lo, hi = best_window(text, 60, "GPT-1 有多少参数？")
    assert ANSWER in text[lo:hi]
    assert hi - lo <= 60
    assert text[hi - 1] == "。"


def test_the_budget_is_shared_and_unused_room_moves_on() -> None:
    whole = [passage(FILLER * 3 + ANSWER), passage("很短的一段。", 2), passage(FILLER * 3, 3)]
    passages = fit_context(whole, 400, "GPT-1 有多少参数？")
    assert all(p.window == (0, 0) for p in whole), "the retrieved passages are not changed"
    sizes = [len(p.prompt_text) for p in passages]
    assert sum(sizes) <= 400
    assert ANSWER in passages[0].prompt_text
    assert passages[1].prompt_text == "很短的一段。"
    assert sizes[2] > 400 * 0.55 / 2, "the room the short passage left went to the next one"


def test_a_window_inside_a_table_brings_the_header_along() -> None:
    rows = "".join(f"| {n}B | {b} | {n * b / 8:.1f} |\n" for n in range(1, 30) for b in (4, 8))
    text = "表格说明。\n| 大小 | 位数 | 显存 |\n|---|---|---|\n" + rows
    [p] = fit_context([passage(text)], 120, "23B 模型 8 位需要多少显存")
    prompt = p.prompt_text
    assert prompt.startswith("| 大小 | 位数 | 显存 |\n|---|---|---|\n")
    assert "| 23B | 8 | 23.0 |" in prompt
    # text_index maps prompt positions back to the passage, then to the page
    row_at = prompt.index("| 23B | 8")
    assert p.text[p.text_index(row_at) :].startswith("| 23B | 8")
    assert p.page_offset(p.text_index(row_at)) == 100 + p.text.index("| 23B | 8")


def test_page_offsets_skip_a_repeated_table_header() -> None:
    header = "| a | b |\n|---|---|\n"
    p = passage(header + "| 1 | 2 |", start=500, header_len=len(header))
    assert p.page_offset(len(header)) == 500
    assert p.page_offset(len(header) + 4) == 504
