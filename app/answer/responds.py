"""Whether the sentences an answer rests on answer the question asked, not another one: the
table row of another model (`other_row`), another thing of the asked one's kind (`other_thing`,
`sibling_terms`), a quantity of another kind (`measure`), and the learned scorer (`responsive`).

While the answer streams `doubtful` tells the check to hold it back (the model cannot be asked
then); once it is written `not_answered` decides, and a refusal shows these sentences as
related, not as the answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.answer.passages import Passage
from app.answer.verify.measure import other_member, unmeasured
from app.answer.verify.other_row import answers_another_row_of
from app.answer.verify.other_thing import OtherThing, candidates, other_thing
from app.answer.verify.reading import can_stand_as_answer
from app.answer.verify.responsive import Judge, candidate
from app.answer.verify.sibling_terms import Embed, Sibling, Synonym, sibling_term
from ingest.settings import Settings
from ingest.text import language


def _every_pair_differs(a: str, b: str) -> bool | None:
    """A stand-in for the model's synonym question while the answer streams: every pair may be
    two things, so the answer is held back until the model is asked."""
    return False


@dataclass(frozen=True)
class NotAnswered:
    """The guard that found the answer answers another question, what it found, and the
    sentences (unit indexes) to show as related."""

    guard: str
    detail: str | None
    related: list[int]


@dataclass(frozen=True)
class Sentences:
    """The sentences an answer may cite: each one's text, the text of its passage as the model
    saw it, its line there (a table row as its Markdown line) and its passage's index."""

    texts: list[str]
    around: list[str]
    lines: list[str]
    groups: list[int]


class Responsiveness:
    """The checks of whether an answer's sentences answer the question, for one answer (the
    scorer's scores are kept between the stream and the end)."""

    def __init__(
        self,
        question: str,
        context: Sequence[Passage],
        sentences: Sentences,
        settings: Settings,
        judge: Judge | None = None,
        synonym: Synonym | None = None,
        embed: Embed | None = None,
    ) -> None:
        self.question = question
        self.context = list(context)
        self.s = sentences
        self.settings = settings
        self.judge = judge
        self.synonym = synonym
        self.embed = embed
        self._scores: dict[int, float] = {}
        # each passage with its title and headings, and whether it is in Chinese (or neither
        # language): `_sibling` reads them while the answer streams and again at its end
        self._passages = ["\n".join((p.title, *p.headings, p.text)) for p in self.context]
        self._chinese = [language(t) in ("", "zh") for t in self._passages]

    def doubtful(self, units: Sequence[int], said: str, chosen: Sequence[int]) -> bool:
        """Whether the first answer sentence (`said`, citing `units`; `chosen` the model's
        evidence) may answer something else: then the end decides."""
        return bool(
            self._other_rows(units)
            or self._other_things(units, ask=False)
            or self._sibling(units, ask=False) is not None
            or self._unmeasured([said], units)
            or not self.responds([*units, *chosen])
        )

    def not_answered(
        self, shown: Sequence[int], answer: str, chosen: Sequence[int]
    ) -> NotAnswered | None:
        """Why the answer (`answer`, resting on `shown`) answers another question, if it does;
        `chosen`: every unit shown with it or chosen by the model as its evidence."""
        other = self._other_rows(shown)
        if other:
            detail = " / ".join(
                f"{self.s.texts[u]} → {a}" for u, a in zip(shown, other, strict=True)
            )
            return NotAnswered("other_row", detail, list(shown))
        things = self._other_things(shown)
        if things:
            return NotAnswered(
                "other_thing",
                " / ".join(f"{t.asked} → {t.said}" for t in things),
                self._naming_first(shown, things),
            )
        sibling = self._sibling(shown)
        if sibling is not None:
            detail = f"{sibling.missing} → {'、'.join(sibling.instead)}"
            return NotAnswered("sibling_terms", detail, list(shown))
        unit_missing = self._unmeasured([answer], shown)
        if unit_missing:
            return NotAnswered("measure", unit_missing, list(shown))
        if self.responds(chosen):
            return None
        return NotAnswered("responsive", None, list(shown))

    def _naming_first(self, shown: Sequence[int], things: Sequence[OtherThing]) -> list[int]:
        """What the documents say of the asked thing ("早餐和晚餐价格保持不变"), then the
        sentences the answer rested on."""
        passages = {self.s.groups[v] for v in shown}
        naming = [
            u
            for u, text in enumerate(self.s.texts)
            if self.s.groups[u] in passages
            and any(t.asked.lower() in text.lower() for t in things)
            and can_stand_as_answer(text)
        ]
        return list(dict.fromkeys([*naming[:1], *shown]))

    def responds(self, units: Sequence[int]) -> bool:
        """Whether one of `units` answers the question asked (always, without a judge)."""
        if self.judge is None or not units:
            return True
        todo = [u for u in dict.fromkeys(units) if u not in self._scores]
        if todo:
            passages = [self.context[self.s.groups[u]] for u in todo]
            found = [
                candidate(self.s.texts, self.s.groups, u, p.title, p.headings)
                for u, p in zip(todo, passages, strict=True)
            ]
            self._scores.update(zip(todo, self.judge.scores(self.question, found), strict=True))
        return any(self._scores[u] >= self.judge.threshold for u in units)

    def _other_rows(self, units: Sequence[int]) -> list[str]:
        """For each of `units`, the other row or empty column of its table the question asks
        about; [] unless every one of them is such a row (`verify/other_row.py`)."""
        if not self.settings.guard_other_row or not units:
            return []
        asked = [
            answers_another_row_of(self.question, self.s.lines[u], self.s.around[u]) for u in units
        ]
        return [a for a in asked if a] if all(asked) else []

    def _other_things(self, units: Sequence[int], ask: bool = True) -> list[OtherThing]:
        """For each of `units`, the thing of the question it speaks of another of ("晚餐 → 午餐"),
        its passage naming both; [] unless every one of them does (`verify/other_thing.py`).
        Without `ask` (while the answer streams, when the model cannot be asked), the things it
        may be, to hold the answer back until the end decides; without a judge to ask, none."""
        synonym, embed, floor = self.synonym, self.embed, self.settings.sibling_floor
        if not self.settings.guard_other_thing or not units or synonym is None or embed is None:
            return []
        found = []
        for unit in units:
            p = self.context[self.s.groups[unit]]
            passage = "\n".join((p.title, *p.headings, self.s.around[unit]))
            sentence = self.s.texts[unit]
            if ask:
                thing = other_thing(self.question, sentence, passage, synonym, embed, floor)
            else:
                maybe = candidates(self.question, sentence, passage, embed, floor)
                thing = maybe[0] if maybe else None
            if thing is None:
                return []
            found.append(thing)
        return found

    def _sibling(self, units: Sequence[int], ask: bool = True) -> Sibling | None:
        """A thing the question names that the passages `units` are in lack, which speak of
        another thing of its kind instead (`verify/sibling_terms.py`). Before the answer the
        rule reads all the prompt's passages, and nothing when one of them is in another
        language; then it is read here, over the passages the answer rests on when those are in
        the question's language. Without `ask`, while the answer streams, the word it may be,
        to hold the answer back until the model is asked."""
        synonym, embed = self.synonym, self.embed
        if not self.settings.guard_sibling_terms or not units or synonym is None or embed is None:
            return None
        if all(self._chinese):
            return None  # read before the answer over all of them (`app.answer.decide`)
        cited = {self.s.groups[u] for u in units}
        sources = [t for g, t in enumerate(self._passages) if g in cited]
        # the word must be missing from every passage the model read in the question's language
        # (not just the one the answer rests on): a passage naming it may name it once
        others = [t for g, t in enumerate(self._passages) if g not in cited and self._chinese[g]]
        if not ask:
            synonym = _every_pair_differs
        floor = self.settings.sibling_floor
        return sibling_term(self.question, sources, embed, synonym, floor, lacking=others)

    def _unmeasured(self, said: Sequence[str], units: Sequence[int]) -> str | None:
        """The kind of quantity the question asks for (a weight, a price …) that neither what
        the answer says nor the sentences it rests on state, or the member of a series they
        name another of ("A 轮" → "B 轮") (`verify/measure.py`)."""
        if not self.settings.guard_measure:
            return None
        texts = [*said, *(self.s.texts[u] for u in units)]
        return unmeasured(self.question, texts) or other_member(self.question, texts)
