"""Absent terms: the Latin-script names of a Chinese question that no passage holds."""

from __future__ import annotations

from app.answer.verify.absent_terms import absent_terms


def test_absent_terms_are_latin_names_of_chinese_questions() -> None:
    assert absent_terms("Claude 的训练数据截止到哪年？", ["GPT-4 的训练数据"]) == ["Claude"]
    assert absent_terms("What is Claude?", ["GPT-4"]) == []
