"""Answering, evidence first: retrieve → decide → generate → check.

- `retrieve`: the standalone question and the retrieved passages, numbered;
- `decide`: which passages the model sees, or a refusal before it is asked (nothing relevant,
  or the `missing_names` guard);
- `generate`: the passages as numbered sentences; the model names the sentences that answer
  the question (none is the refusal), then writes the answer, held to a JSON schema;
- `check` (`AnswerCheck`): every answer sentence must be supported by a sentence it may cite,
  or it is dropped before the user sees it; an answer left with nothing supported gives its
  evidence sentence instead (the model's text kept beside it) or becomes a refusal.

The result keeps the answer and its evidence apart: `answer` is what zhiku asserts (sentences
with `[n]` markers), `evidence_quotes` the source sentences quoted word for word under it, as
data (`EvidenceQuote`), never pasted into the answer text.

`answer()` runs the steps as an iterator of events, so a UI can show the passages as soon as
retrieval is done and the answer sentence by sentence, only ever what the check let through.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from app._llm import BackendInfo, LlmError, ResolvedBackend, current, resolve_backend
from app.answer.cite import (
    ReplyReader,
    SupportTest,
    complete_sentences,
    cut_quote,
    first_repeat,
    insert_marker,
    quotes,
    supported_by,
    supporting,
    without_answer_label,
)
from app.answer.decide import decide, prompt_context
from app.answer.passages import Passage
from app.answer.prompt import (
    REFUSAL_EN,
    REFUSAL_ZH,
    SYSTEM_PROMPT,
    NumberedContext,
    answer_schema,
    as_langchain,
    build_messages,
    refusal_like,
    refusal_sentence,
)
from app.answer.results import (
    AnswerResult,
    Citation,
    Event,
    Evidence,
    EvidenceQuote,
    Final,
    Notice,
    Retrieved,
    Token,
)
from app.answer.retrieve import condense, retrieve
from app.answer.verify import GuardEvent
from app.answer.verify.cross_language import (
    Similarity,
    across_languages,
    cross_supported,
    similarity_with,
)
from app.answer.verify.merged_facts import swapped_name
from app.answer.verify.off_question import matching_sentence, off_question
from app.answer.verify.off_topic import mentions_topic, topic_terms
from app.answer.verify.polarity import polarity_conflict
from app.answer.verify.prompt_leak import leak_windows, quotes_prompt
from app.answer.verify.reading import can_stand_as_answer, question_grams
from app.answer.verify.responsive import Candidate, Judge, own_label
from app.answer.verify.small_talk import small_talk_reply
from app.answer.verify.yes_no import about_subject, is_yes_no, question_subject, yes_no_conflict
from ingest import Embedder
from ingest.settings import Settings
from ingest.store import KnowledgeBase
from ingest.text import CJK, mostly_chinese, ngrams, strip_markers


def is_refusal(text: str) -> bool:
    """The fixed refusal sentence in plain text (a backend that ignored the answer schema)."""
    return refusal_like(text)


# --- check --------------------------------------------------------------------------------


@dataclass
class Checked:
    answer: str
    citations: list[Citation]
    refused: bool
    refusal_reason: str | None
    model_answer: str | None
    dropped: list[str]
    repairs: list[str]
    guards: list[GuardEvent]
    evidence_quotes: list[EvidenceQuote] = field(default_factory=list)
    related: list[Citation] = field(default_factory=list)


QUOTED_SENTENCES = 3  # evidence sentences quoted after an answer, at most
# a sentence quoted as matching the question holds this share of the question's words, by this
# margin over any other sentence (tuned on cmrc2018_trial)
QUOTE_MATCH = 0.5
QUOTE_MATCH_MARGIN = 0.2


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
        # the answer check's readings (app/_polarity.py, app/_crosslang.py): those switched on,
        # and, per reading, the sentences whose outcome it changed (`zhiku eval` replays the
        # answer without it to count what it did: not when this check is such a replay)
        self.similarity = similarity
        self.replaying = replaying
        self.readings = frozenset(
            name
            for name in ("polarity", "yes_no", "merged_facts", "cross_language")
            if getattr(settings, f"guard_{name}")
        )
        self.fired: dict[str, list[str]] = {}
        self.asks_yes_no = is_yes_no(question)
        self.subject = question_subject(question) if self.asks_yes_no else ""
        self.groups = [u.passage for u in self.units]
        self._raw_evidence: list[int] | None = None
        # responsiveness (app/_responsive.py): the units the asserted answer rests on, their
        # scores, and whether the stream is held back until the end decides
        self.judge = judge
        self.answer_units: list[int] = []
        self._scores: dict[int, float] = {}
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
        if not self.kept and not self.responds([*ids, *(self.evidence or [])]):
            self.held = True  # the first sentence answers something else: the end decides
        self.kept.append(shown)
        self.unguarded.append(shown)
        self.answer_units += [i for i in ids if i not in self.answer_units]
        return "" if self.replaced_by is not None or self.held else shown

    def _find(self, text: str, readings: frozenset[str]) -> tuple[str, list[int], int | None]:
        """What to show of an answer sentence, the units supporting it ([]: none), and the unit
        it quotes word for word, if any, under the check's `readings`."""
        first = not self.kept
        quoted = self._quoted_unit(text)
        if quoted is not None:
            # a sentence quoting a passage sentence word for word is cited there, and shown as
            # that whole sentence when the quote was cut short
            if cut_quote(text, self.texts[quoted], self.question):
                text = without_answer_label(self.texts[quoted])
            ids = [quoted]
            if "yes_no" in readings and self._denies_verdict(text, quoted, first):
                ids = []
            return text, ids, quoted
        test = self._test(readings, first)
        groups = self.groups if "merged_facts" in readings else None
        candidates = self._ordered(text, self.candidates, readings)
        ids = supporting(text, candidates, self.texts, self.question, self.around, test, groups)
        if not ids and not self.plain and self.evidence is not None:
            # the ids are the model's pointer, the check decides: a sentence another sentence
            # of the passages supports is cited there (the model named the question line of
            # a FAQ, or the lead-in above the list it quoted)
            everything = self._ordered(text, range(len(self.units)), readings)
            ids = supporting(text, everything, self.texts, self.question, self.around, test, groups)
        return text, ids, None

    def _ordered(self, text: str, candidates: Sequence[int], readings: frozenset[str]) -> list[int]:
        """The candidates, those in another language than `text` by embedding similarity (the
        order `supporting` keeps among sentences sharing no bigram with it)."""
        candidates = list(candidates)
        if "cross_language" not in readings or self.similarity is None:
            return candidates
        similarity = self.similarity
        other = {i for i in candidates if across_languages(text, self.texts[i])}
        if not other:
            return candidates
        ranked = sorted(other, key=lambda i: -similarity(text, self.texts[i]))
        return [i for i in candidates if i not in other] + ranked

    def _test(self, readings: frozenset[str], first: bool) -> SupportTest:
        """Whether an evidence text supports an answer sentence, under `readings`."""

        def test(sentence: str, evidence: str, question: str, passage: str) -> bool:
            if (
                "cross_language" in readings
                and self.similarity is not None
                and across_languages(sentence, evidence)
            ):
                floor = self.settings.cross_language_support
                supported = cross_supported(sentence, evidence, self.similarity, floor, question)
            else:
                supported = supported_by(sentence, evidence, question, passage)
            if not supported:
                return False
            if "polarity" in readings and polarity_conflict(sentence, evidence):
                return False
            if "merged_facts" in readings and swapped_name(sentence, evidence, question):
                return False
            about = first or about_subject(self.subject, sentence)
            if "yes_no" in readings and self.asks_yes_no and about:
                return not yes_no_conflict(self.question, sentence, [evidence], passage)
            return True

        return test

    def _denies_verdict(self, sentence: str, unit: int, first: bool) -> bool:
        """A sentence given as the answer to a yes/no question says yes where the evidence
        about the question's subject says no, or the reverse."""
        if not self.asks_yes_no or not (first or about_subject(self.subject, sentence)):
            return False
        return yes_no_conflict(self.question, sentence, [self.texts[unit]], self.around[unit])

    def _quoted_unit(self, text: str) -> int | None:
        """The passage sentence `text` quotes word for word, one the model chose first."""
        if not self.settings.whole_quotes:
            return None
        found = [
            i
            for i in range(len(self.units))
            if self._is_prose(i) and quotes(text, self.texts[i], self.question)
        ]
        return next((i for i in found if i in self.candidates), found[0] if found else None)

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
        """The evidence the answer did not show whole, quoted word for word under it: the
        sentences the model named as evidence and those the answer cites, save those it shows
        whole or gives as an extract of their own words (a paraphrase can change a date, a
        condition, the source's terms; the model often names the right sentence and then
        copies its neighbour), and the sentence clearly matching the question's words. The
        reader checks the answer against the source's own words."""
        if not self.settings.quote_evidence or self.plain or not self.evidence:
            return []
        wanted = question_grams(self.question)
        shown = ngrams("".join(strip_markers(k) for k in self.kept))
        names = {g for g in wanted if not CJK.match(g)}  # "2" of "2 号线", "GPT-4"

        def adds(unit: int) -> bool:
            if unit in self.whole or not self._is_prose(unit) or not self._on_topic(unit):
                return False
            if not can_stand_as_answer(self.texts[unit]):
                return False  # a heading, a question line, a lead-in
            if unit in self.cited:
                return unit in self.reworded
            return keeps_names(unit)

        def keeps_names(unit: int) -> bool:
            # not one that lacks a number or Latin name of the question the answer has ("2"
            # of "2 号线"): the model named the wrong line, the answer found the right one
            return not (names & shown) - ngrams(self.texts[unit])

        named = list(dict.fromkeys([*self.evidence, *self.cited]))  # evidence, then the rest
        units = [u for u in named if adds(u)][:QUOTED_SENTENCES]
        if self.settings.quote_matching_sentence:
            # the sentence holding clearly the most of the question's words: the model, asked
            # where an attribute of X is, often names the sentence that introduces X instead
            best = matching_sentence(self.question, self.texts, QUOTE_MATCH, QUOTE_MATCH_MARGIN)
            if (
                best is not None
                and best not in units
                and best not in self.cited
                and self._is_prose(best)
                and self._on_topic(best)
                and keeps_names(best)
            ):
                units.append(best)
        units.sort()
        lines: list[list[int]] = []
        for unit in units:  # sentences next to each other in one passage make one line
            last = lines[-1][-1] if lines else None
            if (
                last is not None
                and unit == last + 1
                and self.units[unit].passage == self.units[last].passage
            ):
                lines[-1].append(unit)
            else:
                lines.append([unit])
        return [self._quote(unit, group) for group, line in enumerate(lines) for unit in line]

    def _quote(self, unit_index: int, group: int) -> EvidenceQuote:
        marker = int(self._marker(unit_index)[1:-1])
        citation = self._citation(marker, unit_index)
        passage = citation.passage
        return EvidenceQuote(
            marker,
            without_answer_label(self.texts[unit_index]).strip(),
            passage.number,
            passage.doc_id,
            passage.title,
            passage.page,
            citation.span_start,
            citation.span_end,
            group,
        )

    def responds(self, units: Sequence[int]) -> bool:
        """Whether one of `units` answers the question asked (always, without a judge)."""
        if self.judge is None or not units:
            return True
        todo = [u for u in dict.fromkeys(units) if u not in self._scores]
        if todo:
            scores = self.judge.scores(self.question, [self._candidate(u) for u in todo])
            self._scores.update(zip(todo, scores, strict=True))
        return any(self._scores[u] >= self.judge.threshold for u in units)

    def _candidate(self, unit: int) -> Candidate:
        u = self.units[unit]
        passage = self.context[u.passage]
        same = [i for i in range(len(self.units)) if self.units[i].passage == u.passage]
        previous = self.texts[unit - 1] if unit - 1 in same else None
        label = own_label(passage.title, passage.headings, previous, self.texts[unit])
        return Candidate(self.texts[unit], label, tuple(self.texts[i] for i in same if i != unit))

    def finish(self, structured_refusal: bool) -> tuple[Checked, str]:
        """The checked answer, and the text still to show (an evidence sentence given as the
        answer was not shown during the stream, or an answer held back until it was judged)."""
        checked, late = self._finish(structured_refusal)
        if not self.replaying:
            for name, sentences in self.fired.items():
                before = self._without(name, structured_refusal)
                event = GuardEvent(name, " / ".join(sentences), before.answer, before.refused)
                checked.guards.append(event)
        if checked.refused or self.judge is None:
            return checked, late
        # one sentence shown with the answer (cited by it or quoted under it) or chosen by the
        # model as its evidence must answer the question
        if self.responds([*self.answer_units, *self.cited, *(self.evidence or [])]):
            return checked, (checked.answer if self.held else late)
        related = [self._citation(n, unit) for n, unit in enumerate(self.answer_units[:2], start=1)]
        self.guards.append(
            GuardEvent("responsive", " / ".join(c.quote for c in related), checked.answer, False)
        )
        self.repairs.append("refused: the sentences the answer rests on answer another question")
        refusal = self._refusal("not_answered")
        refusal.related = related
        refusal.answer = refusal.answer + "".join(
            f"\n\n相关内容（不是这个问题的答案）：《{c.passage.title}》{c.quote}" for c in related
        )
        return refusal, ""

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
            quotes = self._evidence_quote()
            self._note_off_topic("".join(self.unguarded))
            return self._result("".join(self.kept), None, quotes), ""
        wanted = question_grams(self.question)
        related = [
            u
            for u in (self.evidence or [])
            if wanted & ngrams(self.texts[u]) and can_stand_as_answer(self.texts[u])
        ]
        on_topic = [u for u in related if self._on_topic(u)]
        if "yes_no" in self.readings and self.asks_yes_no and on_topic:
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

    def _verdict_units(self, units: list[int]) -> list[int]:
        """Of the evidence sentences to give as the answer to a yes/no question, those whose
        yes or no is the evidence's about the question's subject; when none is, the sentence
        of their passages about the subject ("实习生和外包人员不在发放范围内。" beside the
        sentence about 正式员工 the model named)."""
        agreeing = [u for u in units if not self._denies_verdict(self.texts[u], u, True)]
        if len(agreeing) == len(units):
            return units
        if not self.replaying:
            left = [self.texts[u] for u in units if u not in agreeing]
            self.fired.setdefault("yes_no", []).extend(left)
        if agreeing:
            return agreeing
        passages = {self.units[u].passage for u in units}
        about = [
            u
            for u in range(len(self.units))
            if self.units[u].passage in passages
            and about_subject(self.subject, self.texts[u])
            and can_stand_as_answer(self.texts[u])
            and not self._denies_verdict(self.texts[u], u, True)
        ]
        return about[:1]

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


# --- generate, and the whole -----------------------------------------------------------------


def answer(
    question: str,
    history: Sequence[tuple[str, str]],
    kb: KnowledgeBase,
    settings: Settings,
    embedder: Embedder,
    backend: ResolvedBackend | None = None,
    progress: Callable[[str], None] = lambda message: None,
    shadow_guards: bool = False,
) -> Iterator[Event]:
    """Answer `question` from `kb`; `history` holds the earlier (question, answer) turns.
    `shadow_guards` (for `zhiku eval`): a guard that would refuse before the model is asked
    lets the model answer first, so what it changed can be measured; the result is the same."""
    started = time.perf_counter()
    timings: dict[str, float] = {}
    if backend is None:
        try:
            backend = resolve_backend(settings, progress=progress)
        except LlmError as exc:
            yield Notice(exc.en, exc.zh)
            backend = ResolvedBackend(None, BackendInfo("none", ""))
    backend = current(backend)
    if backend.notice is not None:
        yield Notice(backend.notice.en, backend.notice.zh)
    info = backend.info

    def final(**values: object) -> Final:
        timings["total_s"] = time.perf_counter() - started
        fields: dict[str, object] = {
            "question": question,
            "standalone_question": question,
            "answer": "",
            "citations": [],
            "passages": [],
            "refused": False,
            "refusal_reason": None,
            "backend": info,
            "timings": timings,
        }
        fields.update(values)
        return Final(AnswerResult(**fields))  # type: ignore[arg-type]

    if not question.strip():
        yield final(refused=True, refusal_reason="empty_question", answer=refusal_sentence("?"))
        return

    standalone = condense(question.strip(), history, backend)
    timings["condense_s"] = time.perf_counter() - started
    retrieval = retrieve(standalone, kb, settings, embedder)
    decision = decide(retrieval, kb, settings)
    passages = list(decision.passages)
    timings["retrieval_s"] = retrieval.seconds
    yield Retrieved(standalone, passages, retrieval.seconds, info)
    base = {"standalone_question": standalone, "passages": passages}

    def refuse(reason: str, guards: Sequence[GuardEvent] = (), **more: object) -> Final:
        # small talk is answered with what zhiku is for, kept apart as its own refusal reason
        said = small_talk_reply(question) if reason == "small_talk" else refusal_sentence(question)
        return final(
            **base,
            refused=True,
            refusal_reason=reason,
            answer=said,
            missing_names=list(decision.missing_names),
            guards=list(guards),
            **more,
        )

    guard_refusal = decision.refusal_reason in {"name_not_found", "question_not_covered"} or (
        decision.refusal_reason == "small_talk" and bool(decision.context)
    )
    if decision.refusal_reason and not (guard_refusal and shadow_guards and backend.chat):
        yield refuse(decision.refusal_reason, decision.guards)
        return
    if backend.chat is None:
        # retrieval only: the best passages are the result, each its own source
        citations = [Citation(p.number, p, p.start, p.end, p.text) for p in decision.context]
        yield final(**base, citations=citations)
        return

    context, prompt_passages, numbered_context = prompt_context(decision, standalone, settings)
    messages = build_messages(
        standalone, numbered_context, prompt_passages, settings.guard_absent_terms
    )
    schema = answer_schema(len(numbered_context.units))
    similarity = similarity_with(embedder) if settings.guard_cross_language else None
    judge = Judge(embedder) if settings.check_responsive else None
    check = AnswerCheck(standalone, context, numbered_context, settings, similarity, judge=judge)
    reader = ReplyReader()
    tokens, looping, error = 0, False, None
    generation_started = time.perf_counter()
    stream = backend.chat.stream(as_langchain(messages), format=schema)
    try:
        for chunk in stream:
            usage = getattr(chunk, "usage_metadata", None)
            if usage:  # what the prompt cost: its tokens, and how many the KV cache held
                timings["prompt_tokens"] = float(usage.get("input_tokens", 0))
                details = usage.get("input_token_details") or {}
                timings["cached_prompt_tokens"] = float(details.get("cache_read", 0))
            piece = str(chunk.content)
            if not piece:
                continue
            if not tokens:
                timings["first_raw_token_s"] = time.perf_counter() - started
            tokens += 1
            grown = reader.feed(piece)
            if reader.evidence is not None or reader.plain:
                check.set_evidence(reader.evidence, bool(reader.plain))
            if reader.evidence == [] and not reader.plain:
                break  # the structured refusal: the answer text is not needed
            if not grown:
                continue
            cut = first_repeat(reader.answer)
            if cut is not None:
                grown = grown[: max(0, len(grown) - (len(reader.answer) - cut))]
                looping = True
            visible = check.feed(grown)
            if visible:
                timings.setdefault("first_token_s", time.perf_counter() - started)
                yield Token(visible)
            if looping or reader.done:
                break
    except Exception as exc:  # any backend failure keeps the partial answer
        error = _as_llm_error(exc, settings)
    finally:
        stream.close()  # stops llama.cpp (or the Ollama request) when the loop broke off
    if not reader.done and error is None and not looping:
        known = reader.answer
        reader.finish()  # a complete reply the incremental reading missed
        check.set_evidence(reader.evidence, bool(reader.plain))
        if reader.answer.startswith(known) and len(reader.answer) > len(known):
            early = check.feed(reader.answer[len(known) :])
            if early:
                timings.setdefault("first_token_s", time.perf_counter() - started)
                yield Token(early)
    tail = "" if looping else check.flush()  # a repeat's first words are no answer
    if tail:
        timings.setdefault("first_token_s", time.perf_counter() - started)
        yield Token(tail)
    timings["generation_s"] = time.perf_counter() - generation_started
    timings["tokens"] = float(tokens)
    failure = {"error_en": error.en, "error_zh": error.zh} if error else {}
    if error is not None and not check.kept:
        yield final(**base, **failure)
        return
    checked, late = check.finish(reader.evidence == [] and not reader.plain)
    if late:
        timings.setdefault("first_token_s", time.perf_counter() - started)
        yield Token(late)
    if checked.evidence_quotes and not decision.refusal_reason:
        yield Evidence(tuple(checked.evidence_quotes))
    repairs = list(checked.repairs)
    if numbered_context.withheld:
        repairs.append(f"left {numbered_context.withheld} instruction(s) of the documents out")
    if looping:
        repairs.append("stopped the answer where it began repeating itself")
    guards = list(decision.guards) + checked.guards
    if numbered_context.withheld:
        guards.append(GuardEvent("instructions", f"{numbered_context.withheld} left out"))
    fields = {
        **base,
        "answer": checked.answer,
        "citations": checked.citations,
        "refused": checked.refused,
        "refusal_reason": checked.refusal_reason,
        "model_answer": checked.model_answer,
        "repairs": repairs,
        "dropped": checked.dropped,
        "evidence": [i + 1 for i in (check.evidence or [])],
        "evidence_quotes": checked.evidence_quotes,
        "raw_answer": reader.answer,
        "related": checked.related,
        "partial": error is not None,
        **failure,
    }
    if decision.refusal_reason:  # a shadowed guard: what it changed is recorded, then it acts
        shadowed = [
            GuardEvent(g.name, g.detail, checked.answer, checked.refused) for g in decision.guards
        ]
        yield refuse(
            decision.refusal_reason,
            shadowed + guards[len(decision.guards) :],
            evidence=fields["evidence"],
            raw_answer=reader.answer,
        )
        return
    yield final(**fields, guards=guards)


def _as_llm_error(exc: BaseException, settings: Settings) -> LlmError:
    if isinstance(exc, LlmError):
        return exc
    if type(exc).__module__.startswith(("ollama", "httpx", "langchain_ollama")):
        from app._llm_ollama import ollama_error

        return ollama_error(exc, settings)
    return LlmError(
        f"the LLM failed while answering: {type(exc).__name__}: {exc}",
        f"大模型生成回答时出错：{type(exc).__name__}: {exc}",
    )


__all__ = [
    "REFUSAL_EN",
    "REFUSAL_ZH",
    "AnswerResult",
    "Citation",
    "Evidence",
    "EvidenceQuote",
    "answer",
]
