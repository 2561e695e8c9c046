"""Check: the answer, sentence by sentence as it streams, against the sentences it may cite.

Every answer sentence must be supported by a passage sentence (`app.answer.cite.supporting`,
read further by the `polarity`, `yes_no`, `merged_facts` and `cross_language` checks), or it is
dropped before the user sees it; sentences citing passages about something else (`off_topic`),
repeating the system prompt (`prompt_leak`) or drawing on neither the question nor the sentence
matching it (`off_question`) are kept back too. An answer left with nothing supported gives its
evidence sentence instead (the model's text kept beside it) or becomes a refusal; an unsupported
sentence beside supported ones gives the evidence sentence it says in other words (`_restate`);
one resting on sentences that answer another question (`app.answer.responds`) becomes a refusal
that shows them as related. Each check that changed the outcome is recorded with what the user
would have got without it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from app.answer.cite import (
    QUOTE_CHARS,
    VERDICT_PIECE_CHARS,
    complete_sentences,
    cut_quote,
    insert_marker,
    quotes,
    restated_unit,
    supporting,
    without_answer_label,
)
from app.answer.evidence_quotes import evidence_quote, quoted_lines
from app.answer.passages import Passage
from app.answer.prompt import SYSTEM_PROMPT, NumberedContext, refusal_like, refusal_sentence
from app.answer.readings import (
    READINGS,
    Asked,
    by_similarity,
    denies_verdict,
    support_test,
    verdict_units,
)
from app.answer.responds import Responsiveness, Sentences
from app.answer.results import Checked, Citation, EvidenceQuote, related_note
from app.answer.verify import GuardEvent
from app.answer.verify.cross_language import Similarity
from app.answer.verify.off_question import off_question
from app.answer.verify.off_topic import mentions_topic, topic_terms
from app.answer.verify.prompt_leak import leak_windows, quotes_prompt
from app.answer.verify.reading import can_stand_as_answer, question_grams
from app.answer.verify.responsive import Judge
from app.answer.verify.sibling_terms import Embed, Synonym
from ingest.settings import Settings
from ingest.text import mostly_chinese, ngrams, strip_markers


class AnswerCheck:
    """The check step, sentence by sentence as the answer streams: `feed` the answer text as it
    grows and get back what the user may see; `finish` when the stream ends."""

    def __init__(
        self,
        question: str,
        context: Sequence[Passage],
        numbered_context: NumberedContext,
        settings: Settings,
        similarity: Similarity | None = None,
        replaying: bool = False,
        judge: Judge | None = None,
        synonym: Synonym | None = None,
        embed: Embed | None = None,
    ) -> None:
        self.question = question
        self.context = list(context)
        self.numbered_context = numbered_context
        self.units = numbered_context.units
        self.texts = [u.shown for u in self.units]
        # the text of the passage each sentence is in, as the model saw it
        self.around = [self.context[u.passage].prompt_text for u in self.units]
        self.settings = settings
        self.evidence: list[int] | None = None  # 0-based unit indexes
        self.plain = False
        self.kept: list[str] = []
        self.dropped: list[str] = []
        self.unsupported: list[str] = []  # answer sentences no passage sentence supports
        self.asserted = ""  # the answer the model's supported sentences make, before `_restate`
        self.repairs: list[str] = []
        self.guards: list[GuardEvent] = []
        self.cited: list[int] = []  # unit indexes in marker order
        self.model_text = ""
        self.replaced_by: int | None = None  # off_question: the unit given instead
        self.whole: set[int] = set()  # units shown word for word, whole
        self._pending = ""
        self._leaks = leak_windows(SYSTEM_PROMPT)
        terms = topic_terms(question) if settings.guard_off_topic else []
        self.on_topic = [
            mentions_topic(terms, "\n".join((p.title, *p.headings, p.prompt_text)), question)
            for p in self.context
        ]
        self.off_topic: list[str] = []  # sentences the off_topic guard kept from the user
        self.unguarded: list[str] = []  # every sentence shown, and those it kept back
        self.reworded: set[int] = set()  # units an answer sentence cites in other words
        # units an answer sentence quoted whose verdict is not the evidence's about the
        # question's subject: their passages hold the clause that is (`_verdict_units`)
        self.denied: list[int] = []
        # the answer check's readings (app/answer/verify/: polarity, yes_no, merged_facts,
        # cross_language): those switched on, and, per reading, the sentences whose outcome it
        # changed (`zhiku eval` replays the answer without it to count what it did: not when
        # this check is such a replay)
        self.similarity = similarity
        self.replaying = replaying
        self.readings = frozenset(name for name in READINGS if getattr(settings, f"guard_{name}"))
        self.fired: dict[str, list[str]] = {}
        self.asked = Asked.read(question)
        self.groups = [u.passage for u in self.units]
        self._raw_evidence: list[int] | None = None
        # whether the sentences the answer rests on answer the question (`app.answer.responds`:
        # the learned scorer `judge`, the model's "is A a synonym of B?" and the embedding's word
        # vectors), the units the asserted answer rests on, and whether the stream is held back
        # until the end decides
        lines = [a[u.start : u.end] for a, u in zip(self.around, self.units, strict=True)]
        self.responsiveness = Responsiveness(
            question,
            self.context,
            Sentences(self.texts, self.around, lines, self.groups),
            settings,
            judge,
            synonym,
            embed,
        )
        self.answer_units: list[int] = []
        self.held = False

    def set_evidence(self, ids: list[int] | None, plain: bool) -> None:
        self.plain = plain
        self._raw_evidence = ids
        if ids is not None:
            self.evidence = [i - 1 for i in dict.fromkeys(ids) if 1 <= i <= len(self.units)]

    @property
    def candidates(self) -> list[int]:
        if self.plain or self.evidence is None:
            return list(range(len(self.units)))  # no structured evidence: any sentence may
        return self.evidence

    def feed(self, text: str) -> str:
        self.model_text += text
        done, self._pending = complete_sentences(self._pending + text)
        return "".join(self._sentence(s) for s in done)

    def _marker(self, unit: int) -> str:
        if unit not in self.cited:
            self.cited.append(unit)
        return f"[{self.cited.index(unit) + 1}]"

    def _sentence(self, sentence: str) -> str:
        """What the user sees of one finished answer sentence ("" when it is not shown)."""
        text = strip_markers(sentence)
        if not text.strip() or refusal_like(text):
            return ""
        if self.settings.guard_prompt_leak and quotes_prompt(text, self._leaks):
            self.guards.append(GuardEvent("prompt_leak", text.strip()))
            self.repairs.append("withheld a sentence quoting the system prompt")
            return ""
        if not self.kept and self.replaced_by is None and self.settings.guard_off_question:
            found = off_question(text, self.question, self.texts)
            if found is not None and found not in (self.evidence or []):
                # the rest is still read, unseen, so eval can tell what the guard changed
                self.replaced_by = found
        said = text
        text, ids, quoted = self._find(said, self.readings)
        if not self.replaying:
            for name in sorted(self.readings):
                if bool(self._find(said, self.readings - {name})[1]) != bool(ids):
                    self.fired.setdefault(name, []).append(said.strip())
        if quoted is not None and ids:
            if text != said and quoted in self.whole:
                return ""  # that sentence is already shown whole
            self.whole.add(quoted)
        if not ids:
            self.dropped.append(text.strip())
            if quoted is None:
                self.unsupported.append(text.strip())
            return ""
        if not any(self._on_topic(i) for i in ids):
            self.off_topic.append(text.strip())
            self.unguarded.append(text.strip())
            self.dropped.append(text.strip())
            return ""
        if quoted is None:
            said = ngrams(text)
            self.reworded.update(i for i in ids if said - ngrams(self.texts[i]))
        shown = insert_marker(text.strip(), "".join(self._marker(i) for i in ids))
        if self.kept and not re.match(r"[\u3400-\u9fff]", shown):
            shown = " " + shown
        if not self.kept and self.responsiveness.doubtful(ids, shown, self.evidence or []):
            self.held = True  # the first sentence answers something else: the end decides
        self.kept.append(shown)
        self.unguarded.append(shown)
        self.answer_units += [i for i in ids if i not in self.answer_units]
        return "" if self.replaced_by is not None or self.held else shown

    def _find(self, text: str, readings: frozenset[str]) -> tuple[str, list[int], int | None]:
        """What to show of an answer sentence, the units supporting it ([]: none), and the unit
        it quotes word for word, if any, under the check's `readings`."""
        first = not self.kept
        quoted, shortest = self._quoted_unit(text)
        if quoted is not None:
            # a sentence quoting a passage sentence word for word is cited there, and shown as
            # that whole sentence when the quote was cut short
            if cut_quote(text, self.texts[quoted], self.question, shortest):
                text = without_answer_label(self.texts[quoted])
            ids = [quoted]
            if "yes_no" in readings and denies_verdict(
                self.asked, text, self.texts[quoted], self.around[quoted], first
            ):
                ids = []
                if readings == self.readings and quoted not in self.denied:
                    self.denied.append(quoted)
            return text, ids, quoted
        floor = self.settings.cross_language_support
        test = support_test(readings, self.asked, first, self.similarity, floor)
        groups = self.groups if "merged_facts" in readings else None
        candidates = by_similarity(text, self.candidates, self.texts, readings, self.similarity)
        ids = supporting(text, candidates, self.texts, self.question, self.around, test, groups)
        if not ids and not self.plain and self.evidence is not None:
            # the ids are the model's pointer, the check decides: a sentence another sentence
            # of the passages supports is cited there (the model named the question line of
            # a FAQ, or the lead-in above the list it quoted). Across languages only in the
            # passages the model chose: there support is a number and a near vector, and over
            # every passage some price or count in another document matches a made-up one
            alike = readings - {"cross_language"}
            everything = by_similarity(
                text, range(len(self.units)), self.texts, alike, self.similarity
            )
            same = support_test(alike, self.asked, first, self.similarity, floor)
            ids = supporting(text, everything, self.texts, self.question, self.around, same, groups)
            if not ids and "cross_language" in readings:
                chosen = {self.groups[u] for u in self.evidence}
                nearby = [u for u in range(len(self.units)) if self.groups[u] in chosen]
                if nearby:
                    nearby = by_similarity(text, nearby, self.texts, readings, self.similarity)
                    ids = supporting(
                        text, nearby, self.texts, self.question, self.around, test, groups
                    )
        return text, ids, None

    def _quoted_unit(self, text: str) -> tuple[int | None, int]:
        """The passage sentence `text` quotes word for word, one the model chose first, and the
        fewest letters and digits that made it a quote. In the answer to a yes/no question a
        shorter piece of a sentence the model chose is a quote too: a name or a phrase without
        the sentence's verdict around it answers nothing."""
        if not self.settings.whole_quotes:
            return None, QUOTE_CHARS
        found = [
            i
            for i in range(len(self.units))
            if self._is_prose(i) and quotes(text, self.texts[i], self.question)
        ]
        if found or not self.asked.yes_no or self.plain or not self.evidence:
            return next((i for i in found if i in self.candidates), found[0] if found else None), (
                QUOTE_CHARS
            )
        pieces = [
            i
            for i in self.evidence
            if self._is_prose(i) and quotes(text, self.texts[i], self.question, VERDICT_PIECE_CHARS)
        ]
        return (pieces[0] if pieces else None), VERDICT_PIECE_CHARS

    def _on_topic(self, unit: int) -> bool:
        return self.on_topic[self.units[unit].passage]

    def _is_prose(self, unit: int) -> bool:
        """A sentence of running text, not a table row (shown as a record, not as written)."""
        u = self.units[unit]
        return not self.around[unit][u.start : u.end].lstrip().startswith("|")

    def flush(self) -> str:
        """The unfinished last sentence, when the stream ended."""
        rest, self._pending = self._pending, ""
        return self._sentence(rest) if rest.strip() else ""

    def _evidence_answer(self, units: Sequence[int]) -> str:
        sentences = []
        for unit in units:
            shown = without_answer_label(self.texts[unit]).strip()
            if not re.search(r"[。！？!?；;.]$", shown):
                shown += "。" if mostly_chinese(shown) else "."
            sentences.append(insert_marker(shown, self._marker(unit)))
        return "".join(sentences)

    def _evidence_quote(self) -> list[EvidenceQuote]:
        """The evidence the answer did not show whole, quoted word for word under it
        (`app.answer.evidence_quotes`)."""
        if not self.settings.quote_evidence or self.plain or not self.evidence:
            return []
        lines = quoted_lines(
            self.question,
            self.texts,
            self.groups,
            [self._is_prose(u) and self._on_topic(u) for u in range(len(self.units))],
            self.evidence,
            self.cited,
            self.whole,
            self.reworded,
            "".join(strip_markers(k) for k in self.kept),
            self.settings.quote_matching_sentence,
        )
        return [self._quote(unit, group) for group, line in enumerate(lines) for unit in line]

    def _quote(self, unit_index: int, group: int) -> EvidenceQuote:
        citation = self._citation(int(self._marker(unit_index)[1:-1]), unit_index)
        text = without_answer_label(self.texts[unit_index]).strip()
        return evidence_quote(citation, text, group)

    def finish(self, structured_refusal: bool) -> tuple[Checked, str]:
        """The checked answer, and the text still to show (an evidence sentence given as the
        answer was not shown during the stream, or an answer held back until it was judged)."""
        checked, late = self._finish(structured_refusal)
        if not self.replaying:
            for name, sentences in self.fired.items():
                before = self._without(name, structured_refusal)
                event = GuardEvent(name, " / ".join(sentences), before.answer, before.refused)
                checked.guards.append(event)
        if checked.refused:
            return checked, late
        shown = list(dict.fromkeys(self.answer_units or self.cited or self.evidence or []))
        # one sentence shown with the answer (cited by it or quoted under it) or chosen by the
        # model as its evidence must answer the question
        chosen = [*self.answer_units, *self.cited, *(self.evidence or [])]
        missing = self.responsiveness.not_answered(shown, self.asserted or checked.answer, chosen)
        if missing is not None:
            return self._not_answered(missing.guard, missing.detail, missing.related, checked), ""
        return checked, (checked.answer if self.held else late)

    def _not_answered(
        self, guard: str, detail: str | None, units: Sequence[int], before: Checked
    ) -> Checked:
        """A refusal that shows what the documents do say as related, not as the answer."""
        related = [self._citation(n, unit) for n, unit in enumerate(units[:2], start=1)]
        detail = detail or " / ".join(c.quote for c in related)
        self.guards.append(GuardEvent(guard, detail, before.answer, False))
        self.repairs.append(
            f"refused ({guard}): the sentences the answer rests on answer another question"
        )
        refusal = self._refusal("not_answered")
        refusal.related = related
        refusal.answer = refusal.answer + related_note(related)
        return refusal

    def _without(self, reading: str, structured_refusal: bool) -> Checked:
        """The checked answer had `reading` been switched off: the same reply read again."""
        settings = self.settings.model_copy(update={f"guard_{reading}": False})
        again = AnswerCheck(
            self.question, self.context, self.numbered_context, settings, self.similarity, True
        )
        again.set_evidence(self._raw_evidence, self.plain)
        again.feed(self.model_text)
        again.flush()
        return again._finish(structured_refusal)[0]

    def _finish(self, structured_refusal: bool) -> tuple[Checked, str]:
        unguarded, late = self._unguarded(structured_refusal)
        if self.replaced_by is None:
            return unguarded, late
        self.answer_units = [self.replaced_by]
        self.cited = []
        given = self._evidence_answer([self.replaced_by])
        self.guards.append(GuardEvent("off_question", given, unguarded.answer, unguarded.refused))
        self.repairs.append(
            "gave the passage sentence that matches the question: the model's answer drew "
            "on neither the question's words nor that sentence"
        )
        return self._result(given, self.model_text.strip() or None), given

    def _unguarded(self, structured_refusal: bool) -> tuple[Checked, str]:
        model_text = self.model_text.strip()
        if structured_refusal or (refusal_like(model_text) and not self.kept):
            return self._refusal("model_refused"), ""
        if self.kept:
            unsupported = len(self.dropped) - len(self.off_topic)
            if unsupported:
                self.repairs.append(f"dropped {unsupported} sentence(s) no cited sentence supports")
            self.asserted = "".join(self.kept)
            restated = self._restate()
            quotes = self._evidence_quote()
            self._note_off_topic("".join(self.unguarded))
            return self._result("".join(self.kept), None, quotes), restated
        wanted = question_grams(self.question)
        related = [
            u
            for u in dict.fromkeys([*(self.evidence or []), *self.denied])
            if wanted & ngrams(self.texts[u]) and can_stand_as_answer(self.texts[u])
        ]
        on_topic = [u for u in related if self._on_topic(u)]
        if "yes_no" in self.readings and self.asked.yes_no and on_topic:
            on_topic = self._verdict_units(on_topic)
        if self.plain:
            on_topic = related = []
        if on_topic:
            self.answer_units = on_topic[:2]
            shown = self._evidence_answer(on_topic[:2])
            self.repairs.append(
                "gave the evidence sentence: the model's answer is not supported by it"
            )
            self._note_off_topic(shown)
            return self._result(shown, model_text or None), shown
        if self.off_topic or related:  # what was left cites passages about something else
            self.off_topic = self.off_topic or [self.texts[u] for u in related[:2]]
            before = "".join(self.unguarded) or "".join(self.off_topic)
            self._note_off_topic(before)
            return self._refusal("off_topic"), ""
        return self._refusal("unsupported_answer"), ""

    def _restate(self) -> str:
        """The evidence sentences the model chose, each in place of an answer sentence that says
        it in other words no passage sentence supports (`cite.restated_unit`), after the
        sentences shown: the user reads the fact the model gave, as the document states it.
        Not for yes/no questions (whose answer is the evidence's verdict), nor table rows."""
        if not self.settings.restate_unsupported or self.asked.yes_no or not self.evidence:
            return ""
        shown = {*self.answer_units, *self.cited, *self.whole}
        open_units = [
            u
            for u in self.evidence
            if u not in shown
            and self._is_prose(u)
            and self._on_topic(u)
            and can_stand_as_answer(self.texts[u])
        ]
        wanted = question_grams(self.question)
        added = []
        for sentence in self.unsupported:
            said = "".join(strip_markers(k) for k in self.kept)
            unit = restated_unit(sentence, wanted, said, open_units, self.texts)
            if unit is None:
                continue
            open_units.remove(unit)
            self.whole.add(unit)
            added.append(self._evidence_answer([unit]))
            self.kept.append(added[-1])
        if added and not self.replaying:
            detail = " / ".join(strip_markers(a) for a in added)
            self.guards.append(GuardEvent("restated", detail, self.asserted, False))
            self.repairs.append(
                f"gave {len(added)} evidence sentence(s) in place of answer sentences saying "
                "them in other words no passage sentence supports"
            )
        return "".join(added)

    def _verdict_units(self, units: list[int]) -> list[int]:
        """Of the evidence sentences to give as the answer to a yes/no question, those whose
        verdict is the evidence's (`app.answer.readings.verdict_units`)."""
        given, left = verdict_units(self.asked, units, self.texts, self.around, self.groups)
        if left and not self.replaying:
            self.fired.setdefault("yes_no", []).extend(self.texts[u] for u in left)
        return given

    def _note_off_topic(self, before: str) -> None:
        """Record the off_topic guard when it kept a sentence back, with the answer the user
        would have got without it."""
        if self.off_topic:
            self.guards.append(GuardEvent("off_topic", " / ".join(self.off_topic), before, False))
            self.repairs.append(
                f"dropped {len(self.off_topic)} sentence(s) citing passages that mention "
                "nothing the question asks about"
            )

    def _result(
        self, answer: str, model_answer: str | None, quotes: Sequence[EvidenceQuote] = ()
    ) -> Checked:
        citations = [self._citation(n, unit) for n, unit in enumerate(self.cited, start=1)]
        return Checked(
            answer,
            citations,
            False,
            None,
            model_answer,
            self.dropped,
            self.repairs,
            self.guards,
            list(quotes),
        )

    def _refusal(self, reason: str) -> Checked:
        return Checked(
            refusal_sentence(self.question),
            [],
            True,
            reason,
            None,
            self.dropped,
            self.repairs,
            self.guards,
        )

    def _citation(self, number: int, unit_index: int) -> Citation:
        unit = self.units[unit_index]
        passage = self.context[unit.passage]
        lo, hi = passage.text_index(unit.start), passage.text_index(unit.end)
        return Citation(
            number, passage, passage.page_offset(lo), passage.page_offset(hi), passage.text[lo:hi]
        )
