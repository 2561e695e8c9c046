"""What the responsiveness scorer's training reports on held-out sets: the share of answerable
questions the check would leave answered, counted per question, not per sentence."""

from __future__ import annotations

import numpy as np

from bench.train_responsive import questions_kept


def test_a_question_is_kept_when_one_of_its_answer_sentences_reaches_the_threshold() -> None:
    probs = np.array([0.9, 0.1, 0.2, 0.3, 0.95])
    labels = np.array([1, 1, 1, 0, 0])
    groups = ["q1", "q1", "q2", "q2", "q3"]
    # q1 has one answer sentence above 0.5, q2 none; q3 has no answer sentence and is not counted
    assert questions_kept(probs, labels, groups, 0.5) == 0.5
    assert questions_kept(probs, labels, groups, 0.05) == 1.0
