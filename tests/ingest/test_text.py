"""The text toolkit: sentences with exact offsets, CJK detection, n-grams, numbers, tables."""

from __future__ import annotations

from ingest.text import (
    char_bigrams,
    evidence_units,
    has_cjk,
    is_table_row,
    language,
    letters,
    mostly_chinese,
    ngrams,
    numbers,
    sentence_spans,
    sentences,
    singular,
    table_cells,
)


def test_sentences_carry_exact_offsets() -> None:
    text = "  杭州的市花是桂花。[1] 市树是香樟！\nIt is 1.5 GB. Done"
    found = sentences(text)
    assert [s.text for s in found] == [
        "杭州的市花是桂花。[1]",
        "市树是香樟！",
        "It is 1.5 GB.",
        "Done",
    ]
    assert all(text[s.start : s.end] == s.text for s in found)
    short = "甲。[2]乙"
    assert [short[a:b] for a, b in sentence_spans(short, keep_markers=False)] == ["甲。", "[2]乙"]


def test_initials_and_abbreviations_do_not_end_a_sentence() -> None:
    text = (
        "狭叶艾纳香(B. laciniata)与 Blumea riparia var. megacephala 相近。由 J. Smith 命名. Done."
    )
    assert [text[a:b] for a, b in sentence_spans(text, keep_markers=False)] == [
        "狭叶艾纳香(B. laciniata)与 Blumea riparia var. megacephala 相近。",
        "由 J. Smith 命名.",
        " Done.",
    ]
    english = "It stops here. Then it goes on. 2 more."
    assert len(sentence_spans(english, keep_markers=False)) == 3


def test_a_long_sentence_is_never_cut_inside_a_number() -> None:
    long = (
        "这种植物生长于海拔一百米以上至2,800米的林缘及森林草原地区以及灌丛处与坡地之上的路旁"
        "和低海拔湿润地区，每日9:30开放的植物园里也有栽培的记录可以查到。"
    )
    units = [u.text for u in evidence_units(long, max_chars=30)]
    assert "".join(units) == long
    assert any("2,800米" in u for u in units) and any("9:30" in u for u in units)


def test_long_sentences_are_cut_at_clauses_for_numbering() -> None:
    long = "，".join(["这是一个相当长的分句"] * 30) + "。"
    units = list(evidence_units(long, max_chars=60))
    assert len(units) > 1 and all(len(u.text) <= 70 for u in units)
    assert "".join(u.text for u in units) == long
    row = "| " + " | ".join(["很长的单元格内容"] * 30) + " |"
    assert [u.text for u in evidence_units(row, max_chars=60)] == [row], "rows stay whole"


def test_languages_are_told_apart() -> None:
    assert has_cjk("GPT 模型") and not has_cjk("GPT model")
    assert mostly_chinese("杭州的市花") and not mostly_chinese("Microsoft was founded in 1975.")
    assert language("微软") == "zh" and language("Microsoft") == "en" and language("123") == ""
    code_heavy = "# KV Cache 示例结构\nclass KVCache:def __init__(self, num_layers, max_len):"
    assert language(code_heavy) == "zh", "a Chinese document's code is still the document's"
    assert language("Founded in 2015, the company now employs 850 people.") == "en"
    assert language("qkv = self.qkv_proj(x).chunk(3, dim=-1)") == "", "code is no language"


def test_ngrams_and_bigrams() -> None:
    assert ngrams("GPT-1 的参数") == {"gpt-1", "的参", "参数"}
    assert char_bigrams("桂花[1]。") == {"桂花"}
    assert letters("是的。[1]") == 2


def test_numbers_keep_decimals_separators_and_percent() -> None:
    assert numbers("全长 43.3 公里，1,252 万人，增长 15%，地址 192.168.1.1") == [
        "43.3",
        "1,252",
        "15%",
        "192.168.1.1",
    ]


def test_table_rows() -> None:
    assert is_table_row("| a | b |") and not is_table_row("# 标题 | 副标题 |")
    assert table_cells("| 7B | 8 | 8.4 |") == ["7B", "8", "8.4"]


def test_english_plurals_fold_to_their_singular() -> None:
    assert [singular(w) for w in ["lockers", "fees", "batteries", "boxes", "branches"]] == [
        "locker",
        "fee",
        "battery",
        "box",
        "branch",
    ]
    # words that only end in s, short words and numbers stay as they are
    assert [singular(w) for w in ["class", "bus", "is", "gps", "4s"]] == [
        "class",
        "bus",
        "is",
        "gps",
        "4s",
    ]
