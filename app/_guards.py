"""Guards: the rules that stand beside the evidence-first answer, each named, switchable by a
setting, and recorded when it fires, so `zhiku eval --json` can say how often each one turned
a right answer wrong and a wrong one right.

- `instructions` (GUARD_INSTRUCTIONS): sentences, titles and headings of a passage that order
  the answerer about never reach the model.
- `coverage` (GUARD_COVERAGE): refuse before the model is asked when no passage holds even
  QUESTION_COVERAGE of the question's words (the passages are about something else).
- `missing_names` (GUARD_MISSING_NAMES): refuse when a name in the question is in no retrieved
  passage, nowhere in the knowledge base (full-text search) and has no alias, abbreviation,
  near spelling or other-language passage that could stand for it.
- `off_question` (GUARD_OFF_QUESTION): give the passage sentence that clearly matches the
  question when the model's answer draws on neither it nor the question; never a question
  line, a heading or a table row.
- `absent_terms` (GUARD_ABSENT_TERMS): tell the model that a Latin-script name of a Chinese
  question is in no passage (a note, never a refusal).
- `prompt_leak` (GUARD_PROMPT_LEAK): drop answer sentences that repeat the system prompt.
- `off_topic` (GUARD_OFF_TOPIC): drop an answer sentence whose cited passages (title, headings
  and text) mention none of the things the question asks about: it answers about something
  else. Near spellings count as mentions; a passage in another language is never off topic.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ingest.text import CJK, NUMBER, has_cjk, language, ngrams, strip_markers

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


# --- instructions -------------------------------------------------------------------------

# Who answers: words that only make sense addressed to an assistant. "你/您" alone is not one:
# policies speak to their reader ("如您有疑问，请回复邮件"); nor are "模型", "大模型", "AI":
# documents about AI say "让模型预测下一个 token", "输入至大模型生成回答".
_ANSWERER = r"(?:助手|机器人|问答系统|\bassistant\b|\bchatbot\b)"
_ANSWER_VERB = r"(?:回答|回复|答复|作答|输出|\breply\b|\brespond\b|\banswer\b|\boutput\b)"
_OVERRIDES = re.compile(
    # dropping its rules
    r"(?:忽略|无视|不要理会|不必理会|忘记|忘掉|抛开|绕过)[^。！？\n]{0,8}"
    r"(?:规则|指令|指示|设定|提示|约束|限制|要求)"
    r"|(?:忽略|无视|忘记|忘掉)(?:以上|上述|前面|之前|先前)(?:所有|全部)?的?(?:内容|信息|对话)"
    # a new identity
    r"|从现在(?:开始|起)[，,]?\s*你|你(?:现在|此后|接下来)(?:是|扮演|成为)"
    # revealing its prompt
    r"|(?:输出|打印|复述|重复|透露|泄露|显示|展示|给出|告诉)[^。！？\n]{0,10}"
    r"(?:提示词|系统指令|系统设定|system prompt|你的(?:规则|指令|设定|配置))"
    r"|开发者模式|越狱模式|[\[【]\s*(?:系统|管理员|system|admin)[^\]】]{0,6}[\]】]"
    r"|\b(?:ignore|disregard|forget|override|bypass)\b[^.!?\n]{0,30}"
    r"\b(?:instructions?|rules|prompts?|guidelines|directions)\b"
    r"|\byou are now\b|\bdeveloper mode\b|\bjailbreak\b|\bnew instructions\b"
    r"|\b(?:ignore|disregard)\b[^.!?\n]{0,20}\b(?:the user'?s? (?:question|request)|the question)\b"
    r"|^\W*(?:assistant|AI|chatbot|助手)\s*[,，:：]"
    r"|\b(?:print|output|repeat|reveal)\b[^.!?\n]{0,60}"
    r"\b(?:system message|previous message|the prompt|your instructions)\b"
    # the same in Chinese: dropping the question, a new identity, copying the prompt out
    r"|(?:忽略|无视|不要理会)(?:用户|问题|提问)|新身份|新角色|你的身份是"
    r"|(?:系统消息|系统提示词|提示词)[^。！？\n]{0,12}(?:抄|复制|输出|告诉|发给|透露)"
    r"|(?:原样|逐字|逐条)(?:输出|复制|重复|抄写|照抄)"
    r"|(?:以下|下面)是(?:管理员|开发者|系统)(?:命令|指令)"
    r"|(?:编造|捏造|虚构)[^。！？\n]{0,12}(?:告诉|回答|答案|用户)|不要引用(?:任何)?资料"
    r"|\b(?:reveal|print|output|repeat|show)\b[^.!?\n]{0,20}\b(?:system prompt|hidden rules)\b",
    re.IGNORECASE,
)
_SHAPES_THE_ANSWER = re.compile(
    # addressed to an assistant about its answer
    rf"{_ANSWERER}[^。！？\n]{{0,20}}{_ANSWER_VERB}|{_ANSWER_VERB}[^。！？\n]{{0,6}}{_ANSWERER}"
    # "你的回答必须…", "你回答时…"
    r"|[你您]的?(?:回答|答案|输出)[^。！？\n]{0,10}(?:必须|务必|一律|都|只|要|应|请|不要|不得|加|附|包含)"
    # what the answer's start or end must carry
    r"|(?:回答|回复|答复|答案|输出)(?!邮件|信函|短信|消息)[^。！？\n]{0,4}"
    r"(?:开头|结尾|末尾|最后|最前面)[^。！？\n]{0,15}"
    r"(?:加上|加入|附上|写上|包含|插入|注明|带上|放上|输出|说)"
    r"|在(?:回答|答案)(?:中|里)(?:加入|包含|插入|附上|写上)"
    # speaking to the assistant: "给问答机器人的话：", "AI 助理注意：", "note to the AI model"
    r"|(?:致|给|写给|对)[^。！？\n]{0,8}(?:助手|助理|机器人|模型|\bAI\b)[^。！？\n]{0,4}(?:的话|注意|须知|[:：])"
    r"|(?:助手|助理|机器人|\bAI\b)\s*(?:注意|须知)"
    r"|\bnote to (?:the )?(?:AI|assistant|model|chatbot|language model)\b"
    # what the answer is to hold, where, in what voice
    r"|(?<![客户用户])回答(?:时|中|里)[^。！？\n]{0,6}(?:请|必须|务必|一律|都|只|不要|不得|要|加|输出)"
    r"|(?:复制|抄写|写|放|加|附|插入)(?:到|进|在)(?:你的)?(?:回答|答案|回复)"
    r"(?:里|中|的?(?:开头|结尾|末尾|最前面|最后))"
    r"|(?:用|以)[^。！？\n]{0,8}(?:口吻|语气|身份)[^。！？\n]{0,4}(?:回答|回复|答复|签名|说话)"
    r"|[你您]的?(?:回答|答案|回复)[^。！？\n]{0,6}(?:改成|换成|全部)"
    r"|\b(?:reply|respond|answer)\b[^.!?\n]{0,15}\bwith\b[^.!?\n]{0,10}"
    r"\b(?:single|only|just|the word|exactly)\b|\bend with\s*['\"“‘]"
    r"|\b(?:respond|reply|answer)\b[^.!?\n]{0,25}\bonly\b"
    # one fixed answer to every question
    r"|(?:无论|不管)(?:用户|别人|对方|谁)?(?:问|提问|询问)(?:什么|任何)"
    r"|(?:都|只|一律|统一|总是|永远)要?(?:回答|回复|输出)"
    r"|\b(?:respond|reply|answer)\s+only\b|\bin your (?:answer|response|reply)\b"
    r"|\b(?:answer|response|reply)\s+(?:must|should)\s+(?:end|start|begin|include|contain)\b"
    r"|\bend (?:your|the|each|every) (?:answer|response|reply)\b|\btell the user\b"
    r"|\b(?:print|output|say) (?:only|exactly|the word)\b"
    r"|\byou must (?:respond|reply|answer|say|output|include)\b",
    re.IGNORECASE,
)


_BOOKENDS = re.compile(r"以\s*[“\"'「‘]?[^。！？\n]{1,15}?[”\"'」’]?\s*(?:开头|结尾|结束)")
_ABOUT_ANSWERS = re.compile(r"回答|回复|答复|作答|输出")


def is_instruction(sentence: str) -> bool:
    """Whether a sentence (or a title, a heading) of a document speaks to whoever answers: it
    overrides the rules, gives the assistant a new identity, asks for the prompt, or orders
    what the answer must say. An ordinary order of a policy ("客服人员在回答客户问题时必须使用
    礼貌用语", "请联系管理员重置") speaks to people, not to the answerer, and stays."""
    text = unicodedata.normalize("NFKC", sentence)
    if _OVERRIDES.search(text) or _SHAPES_THE_ANSWER.search(text):
        return True
    return bool(_BOOKENDS.search(text) and _ABOUT_ANSWERS.search(text))


OMITTED_TITLE = "（标题含写给问答助手的指令，已略去）"
OMITTED_HEADING = "（标题已略去）"


def clean_label(title: str, headings: Sequence[str]) -> tuple[str, tuple[str, ...], int]:
    """The title and headings with those that are instructions replaced; and how many were."""
    fired = 0
    if is_instruction(title):
        title, fired = OMITTED_TITLE, fired + 1
    kept = []
    for heading in headings:
        if is_instruction(heading):
            kept.append(OMITTED_HEADING)
            fired += 1
        else:
            kept.append(heading)
    return title, tuple(kept), fired


# --- coverage -----------------------------------------------------------------------------


def coverage(question: str, texts: Sequence[str]) -> float | None:
    """The largest share of the question's words (its n-grams without question words) that one
    of `texts` holds; None when it cannot be told (no such words, or a text in another language,
    which shares no words with the question whatever it says)."""
    wanted = question_grams(question)
    if not wanted or not texts:
        return None
    asked = "zh" if has_cjk(question) else language(question)
    if any(language(t) not in ("", asked) for t in texts):
        return None
    return max(len(wanted & ngrams(t)) / len(wanted) for t in texts)


# --- missing_names ------------------------------------------------------------------------


class KeywordIndex(Protocol):
    def keyword_search(self, query: str, k: int) -> list[tuple[int, float]]: ...


# jieba's part-of-speech tags for names: people, places, organisations, other proper nouns.
_NAME_TAGS = frozenset({"nr", "nrt", "nrfg", "ns", "nt", "nz"})
_CJK_NAME = re.compile(r"^[\u3400-\u9fff·]{3,}$")


def question_names(question: str) -> list[str]:
    """Chinese names of three characters or more in the question (jieba's name tags): two
    characters are too often common nouns jieba tags as names."""
    from jieba import posseg  # loads jieba's tagging model on first use, off the import path

    question = unicodedata.normalize("NFKC", question)
    return list(
        dict.fromkeys(
            pair.word
            for pair in posseg.lcut(question)
            if pair.flag in _NAME_TAGS and _CJK_NAME.match(pair.word)
        )
    )


def _is_name(word: str) -> bool:
    """jieba reads `word` by itself as one name or abbreviation ("北大", "阿里", "诸葛亮")."""
    from jieba import posseg

    pairs = posseg.lcut(word)
    return len(pairs) == 1 and (pairs[0].flag in _NAME_TAGS or pairs[0].flag == "j")


def could_name(name: str, text: str) -> bool:
    """Whether `text` may speak of `name` under another spelling: the name itself, its stem
    (jieba cut it one character long: "呋塞米会"), or a word that is itself a name and is an
    abbreviation of it (two of its characters in order from its first: "北大" for 北京大学,
    "阿里" for 阿里巴巴) or one character off it (a typo: 诸葛量 / 诸葛亮). "世界" is no
    abbreviation of 世界杯, nor "世界上" a typo of it: neither is a name."""
    if name in text or (len(name) >= 4 and name[:-1] in text):
        return True
    for later in name[1:]:
        short = name[0] + later
        if short in text and _is_name(short):
            return True
    n = len(name)
    seen: set[str] = set()
    for i in range(len(text) - n + 1):
        window = text[i : i + n]
        if window in seen or not CJK.match(window[0]):
            continue
        seen.add(window)
        if sum(a != b for a, b in zip(window, name, strict=True)) == 1 and _is_name(window):
            return True
    return False


def missing_names(question: str, texts: Sequence[str], kb: KeywordIndex | None) -> list[str]:
    """The question's names that nothing in the knowledge base can stand for. Never on spelling
    alone: a name another spelling in the passages may stand for is present, a passage in
    another language (微软公司 / "Microsoft") may name it, and the whole knowledge base is
    searched for it (retrieval may have missed the passage that has it)."""
    if not has_cjk(question):
        return []
    if any(language(t) == "en" for t in texts):
        return []  # a passage in another language: its names are spelled otherwise
    seen = unicodedata.normalize("NFKC", "\n".join(texts))
    missing = [n for n in question_names(question) if not could_name(n, seen)]
    if missing and kb is not None:
        from ingest import keyword_expression, tokens

        missing = [
            n
            for n in missing
            if not kb.keyword_search(keyword_expression([" ".join(tokens(n))]), 1)
        ]
    return missing


# --- off_topic ----------------------------------------------------------------------------

# jieba's tags of nouns and names ("n", "nr", "ns", "nz", …), verbs ("v", "vn"), adjectives
# ("a", "an") and Latin-script words
_CONTENT_TAG = re.compile(r"^(?:n|v|a|eng)")
# "此剧", "该书", "这家公司": the thing is named elsewhere in the conversation, not here
_DEMONSTRATIVE = re.compile(r"^(?:此|该|这|那|本|其|上述)")
_QUOTED = re.compile(r"[“「《\"『]([^”」》\"』]{2,})[”」》\"』]")


def topic_terms(question: str) -> list[str]:
    """The words of what a question asks about: its nouns, names, verbs and adjectives of two
    characters or more and the titles it quotes ("《越南亡国史》"), not its question words and
    particles. Verbs count: "请假" in "员工请假需要提前几天申请？" tells the topic as much as
    "员工", and a passage about leave need not say "员工"."""
    from jieba import posseg  # loaded by retrieval already; kept off this module's import path

    from ingest import QUERY_STOPWORDS

    question = unicodedata.normalize("NFKC", question)
    words = [
        pair.word.strip()
        for pair in posseg.lcut(question)
        if _CONTENT_TAG.match(pair.flag) and len(pair.word.strip()) >= 2
    ]
    words += _QUOTED.findall(question)
    return list(
        dict.fromkeys(
            w for w in words if w.lower() not in QUERY_STOPWORDS and not _DEMONSTRATIVE.match(w)
        )
    )


def mentions_topic(terms: Sequence[str], source: str, question: str) -> bool:
    """Whether `source` (a passage with its title and headings) speaks of any of the question's
    `terms`, under any spelling `could_name` allows; always when it is in another language
    than the question, or when the question names nothing."""
    if not terms or language(source) != language(question):
        return True
    seen = unicodedata.normalize("NFKC", source)
    lowered = seen.lower()
    return any(t.lower() in lowered or could_name(t, seen) for t in terms)


# --- off_question -------------------------------------------------------------------------

# One passage sentence holds at least QUESTION_MATCH of the question's n-grams, by a margin
# of QUESTION_MATCH_MARGIN over any other sentence, yet the answer shares less than
# OFF_QUESTION of its n-grams with it and of the question's with the question.
QUESTION_MATCH = 0.6
QUESTION_MATCH_MARGIN = 0.3
OFF_QUESTION = 0.2
NEW_GRAMS = 3  # a sentence that only restates the question holds no answer
_LEAD_IN = re.compile(r"(?:[:：]|如下)\W*$")
_QUESTION_LINE = re.compile(r"(?:[?？]\W*$)|^\W*(?:问|问题|Q|提问)\s*\d*\s*[:：.、]", re.IGNORECASE)
_SENTENCE_CLOSE = re.compile(r"[。！!；;.]\W*$")
_TERM = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-.+][A-Za-z0-9]+)*")


def question_grams(question: str) -> set[str]:
    """The question's n-grams without its question words and particles ("哪个", "是什么")."""
    import jieba  # loaded by retrieval already; kept off this module's import path

    from ingest import QUERY_STOPWORDS

    words = jieba.lcut(unicodedata.normalize("NFKC", question).lower())
    return ngrams("".join(" " if w.strip() in QUERY_STOPWORDS else w for w in words))


def can_stand_as_answer(sentence: str) -> bool:
    """A sentence that can be given as an answer by itself: not a question line ("问：…？"),
    not a heading (a short line without a closing full stop), not a lead-in ("…如下："), not a
    table row (it means nothing without its header)."""
    text = strip_markers(sentence).strip()
    if not text or _QUESTION_LINE.search(text) or _LEAD_IN.search(text):
        return False
    if text.startswith("|") or text.count("|") >= 2:
        return False
    return bool(_SENTENCE_CLOSE.search(text)) or len(text) > 30


def matching_sentence(
    question: str,
    sentences: Sequence[str],
    share: float = QUESTION_MATCH,
    margin: float = QUESTION_MATCH_MARGIN,
) -> int | None:
    """The index of the one sentence that clearly matches the question: it holds `share` of the
    question's words or more (and all of its Latin-script names), `margin` more than any other,
    adds something to them, and can stand as an answer by itself."""
    wanted = question_grams(question)
    if not wanted:
        return None
    terms = [t.lower() for t in _TERM.findall(question) if len(t) >= 2]
    numbers = set(NUMBER.findall(unicodedata.normalize("NFKC", question)))
    scored = []
    for index, sentence in enumerate(sentences):
        grams = ngrams(sentence)
        if len(grams - wanted) < NEW_GRAMS or not can_stand_as_answer(sentence):
            continue
        if any(t not in sentence.lower() for t in terms):
            continue  # a sentence without the question's subject ("Claude 4") does not match
        if numbers - set(NUMBER.findall(unicodedata.normalize("NFKC", sentence))):
            continue  # nor one without its numbers: "2 号线" is not "1 号线 … 2012 年"
        scored.append((len(grams & wanted) / len(wanted), index))
    scored.sort(key=lambda item: -item[0])
    if not scored or scored[0][0] < share:
        return None
    if len(scored) > 1 and scored[0][0] - scored[1][0] < margin:
        return None
    return scored[0][1]


def off_question(answer: str, question: str, sentences: Sequence[str]) -> int | None:
    """The index of the sentence to give instead of `answer`, when the answer misread the
    passages: it neither restates the question nor draws on the sentence matching it."""
    found = matching_sentence(question, sentences)
    said = ngrams(strip_markers(answer))
    if found is None or not said:
        return None
    wanted = question_grams(question)
    if len(said & wanted) / len(wanted) >= OFF_QUESTION:
        return None
    if len(said & ngrams(sentences[found])) / len(said) >= OFF_QUESTION:
        return None
    return found


# --- absent_terms -------------------------------------------------------------------------


def absent_terms(question: str, texts: Sequence[str]) -> list[str]:
    """Latin-script names in a Chinese question ("Claude", "Rust") that no passage contains."""
    if not has_cjk(question):
        return []
    seen = "\n".join(texts).lower()
    terms = dict.fromkeys(t for t in _TERM.findall(question) if len(t) >= 2)
    return [t for t in terms if t.lower() not in seen]


# --- prompt_leak --------------------------------------------------------------------------

_LEAK_WINDOW = 15


def leak_windows(prompt: str) -> frozenset[str]:
    return frozenset(
        prompt[i : i + _LEAK_WINDOW]
        for i in range(len(prompt) - _LEAK_WINDOW + 1)
        if "\n" not in prompt[i : i + _LEAK_WINDOW]
    )


def quotes_prompt(text: str, windows: frozenset[str]) -> bool:
    """Whether `text` repeats a stretch of the system prompt word for word."""
    return any(text[i : i + _LEAK_WINDOW] in windows for i in range(len(text)))
