"""`other_row` alone, over tables written here: a two-model spec table, a city allowance table,
a transposed comparison, a numbered list whose first column names nothing."""

from __future__ import annotations

from app.answer.verify.other_row import answers_another_row, names, table_around

SPEC = """产品规格如下：
| 型号 | 重量 | 续航 | 防水 |
| --- | --- | --- | --- |
| AX3000 | 1.2 kg | 10 小时 | 无 |
| AX5400 | - | 12 小时 | IP54 |
保修期为两年。"""

ALLOWANCE = """| 城市 | 每日补贴 |
|---|---|
| 北京 | 300 元 |
| 上海 | 320 元 |
| 成都 | 220 元 |"""

COMPARED = """| 参数 | Lite | Pro |
|---|---|---|
| 内存 | 8 GB | 16 GB |
| 摄像头 | 4800 万像素 | — |"""

NUMBERED = """| 序号 | 事项 | 负责人 |
|---|---|---|
| 1 | 采购审批 | 张敏 |
| 2 | 合同归档 | 李强 |"""


def row_of(table: str, start: str) -> tuple[str, list[str]]:
    [row] = [line for line in table.split("\n") if line.startswith(start)]
    found = table_around(table, row)
    assert found is not None
    return row, found


def test_a_row_given_for_a_question_about_another_row_of_its_table() -> None:
    row, table = row_of(SPEC, "| AX3000")
    assert answers_another_row("AX5400 的重量是多少？", row, table) == "AX5400"
    assert answers_another_row("ax5400 续航多久", row, table) == "AX5400"
    row, table = row_of(ALLOWANCE, "| 北京")
    assert answers_another_row("派驻上海的员工每天补贴多少？", row, table) == "上海"


def test_the_row_asked_about_and_comparisons_pass() -> None:
    row, table = row_of(SPEC, "| AX3000")
    assert answers_another_row("AX3000 有多重？", row, table) is None
    assert answers_another_row("AX3000 和 AX5400 哪个更轻？", row, table) is None
    assert answers_another_row("这款产品有多重？", row, table) is None  # no row named
    row, table = row_of(ALLOWANCE, "| 北京")
    assert answers_another_row("北京出差每天补贴多少？", row, table) is None
    # a city the table lacks is not this check's to judge (the responsiveness scorer's)
    assert answers_another_row("派驻香港每天补贴多少？", row, table) is None


def test_a_row_whose_cell_for_the_asked_column_is_empty() -> None:
    row, table = row_of(SPEC, "| AX5400")
    assert answers_another_row("AX5400 的重量是多少？", row, table) == "重量"
    assert answers_another_row("AX5400 的续航是多少？", row, table) is None
    # "无" answers whether it has something: not an empty cell
    row, table = row_of(SPEC, "| AX3000")
    assert answers_another_row("AX3000 防水吗？", row, table) is None


def test_a_transposed_table_whose_asked_column_is_empty_in_the_row() -> None:
    row, table = row_of(COMPARED, "| 摄像头")
    assert answers_another_row("Pro 的摄像头是多少像素？", row, table) == "Pro"
    assert answers_another_row("Lite 的摄像头是多少像素？", row, table) is None
    row, table = row_of(COMPARED, "| 内存")
    assert answers_another_row("Pro 的内存多大？", row, table) is None


def test_a_numbered_first_column_names_nothing_but_the_next_one_does() -> None:
    row, table = row_of(NUMBERED, "| 1 ")
    assert answers_another_row("合同归档由谁负责？", row, table) == "合同归档"
    assert answers_another_row("采购审批由谁负责？", row, table) is None
    assert answers_another_row("第 2 项由谁负责？", row, table) is None  # numbers name no row


def test_names_are_whole_words_and_a_lone_letter_only_as_written() -> None:
    assert names("B 型号重多少", "B")
    assert not names("bluetooth 版本", "B")
    assert not names("AX30001 是什么", "AX3000")
    assert names("Pro Max 的价格", "pro max")
    assert not names("北方的天气", "北")
    assert not names("2 号线", "2")


def test_prose_is_no_table() -> None:
    assert table_around(SPEC, "保修期为两年。") is None
