"""The checks beside the evidence-first answer, one module each: named, switchable by a setting,
recorded when they fire (`GuardEvent`), so `zhiku eval --json` can say how often each one turned
a right answer wrong and a wrong one right.

Before the model is asked (`app.answer.decide`) and in its prompt (`app.answer.prompt`):

- `small_talk` (GUARD_SMALL_TALK): greetings, thanks and chit-chat get what zhiku is for.
- `coverage` (GUARD_COVERAGE): no passage holds enough of the question's words.
- `missing_names` (GUARD_MISSING_NAMES): a name of the question nothing can stand for.
- `instructions` (GUARD_INSTRUCTIONS): passage text ordering the answerer about is left out.
- `absent_terms` (GUARD_ABSENT_TERMS): a note to the model on a Latin name no passage holds.
- `sibling_terms` (GUARD_SIBLING_TERMS): a thing the question names is in no passage, which
  speak of another thing of its kind instead (the model judges synonym or not).

On the answer, sentence by sentence (`app.answer.check`):

- `prompt_leak` (GUARD_PROMPT_LEAK): a sentence repeating the system prompt.
- `off_question` (GUARD_OFF_QUESTION): the sentence matching the question given instead of an
  answer drawing on neither.
- `off_topic` (GUARD_OFF_TOPIC): a sentence citing passages about something else.
- the answer check's readings beyond shared words: `polarity` (GUARD_POLARITY), `yes_no`
  (GUARD_YES_NO), `merged_facts` (GUARD_MERGED_FACTS), `cross_language`
  (GUARD_CROSS_LANGUAGE).
- `other_row` (GUARD_OTHER_ROW): the table rows the answer rests on are another row's, or
  leave the asked column empty.
- `other_thing` (GUARD_OTHER_THING): the sentences the answer rests on speak of another thing of
  the kind the question names (午餐 for 晚餐), their document naming the asked one elsewhere.
- `measure` (GUARD_MEASURE): the question asks for a weight, a length, a period, an amount of
  money, a share or a number of people, or one of a series (哪一轮), and neither the answer nor
  the sentences it rests on state one; or it names one member of a series ("A 轮") they name
  only others of ("B 轮").
- `responsive` (CHECK_RESPONSIVE): the sentences the answer rests on answer another question.

`reading` holds what several of them read of a question and a sentence.
"""

from __future__ import annotations

from dataclasses import dataclass

GUARDS = (
    "instructions",
    "coverage",
    "missing_names",
    "off_question",
    "absent_terms",
    "prompt_leak",
    "off_topic",
    # the answer check's own readings, switchable and counted alike
    "polarity",
    "yes_no",
    "merged_facts",
    "cross_language",
    "small_talk",
    "other_row",
    "other_thing",
    "sibling_terms",
    "measure",
)
# the guards written after particular evaluation questions went wrong; `zhiku eval` can run
# with these off to measure the evidence-first answer alone
QUESTION_FITTED = ("missing_names", "off_question", "absent_terms")


@dataclass(frozen=True)
class GuardEvent:
    """A guard fired. `before_answer`/`before_refused` are what the user would have got without
    it, when that is known (None for the instruction filter: the model never saw the sentence)."""

    name: str
    detail: str
    before_answer: str | None = None
    before_refused: bool | None = None
