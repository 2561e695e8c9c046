"""Small talk: greetings, thanks, questions about the assistant itself, and chit-chat no document
answers ("你好", "谢谢", "你是谁", "今天天气怎么样？", "hello").

They get a short reply that says what zhiku is for, never a sentence of the documents (a line of
example code holding "今天天气不错" answers nothing). `is_small_talk` reads the whole question:
a greeting in front of a real question ("你好，年假有几天？") is a real question. Two kinds:

- the question is nothing but a greeting, thanks, farewell, or a question about the assistant
  (who it is, what it can do): small talk whatever the documents hold;
- it asks about the present moment (today's weather, the time, the date) or speaks to the
  assistant about itself ("你喜欢…", "how are you"), which no stored document can answer, and no
  word of it beyond these is in any retrieved passage.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

_END = r"[\s,.!?~，。！？～、…呀啊呢吧哦哈嘛啦]*"
_PURE = re.compile(
    r"^(?:(?:你好|您好|你们好|大家好|哈喽|嗨|喂|在吗|在不在|早上好|上午好|中午好|下午好|晚上好|早安"
    r"|晚安|早|(?:hi|hello|hey|hiya)(?: there| everyone| all)?|good (?:morning|afternoon|evening)"
    r"|greetings"
    r"|谢谢(?:你|您)?|多谢|感谢(?:你|您)?|thanks?(?: you)?(?: very much| a lot)?|thx|ty"
    r"|再见|拜拜|回见|bye|goodbye|see you"
    r"|好的|好|嗯|ok|okay|收到|明白了?|知道了"
    r"|你是谁|您是谁|你叫什么(?:名字)?|你是什么|你是(?:机器人|人工智能|ai|真人)吗?"
    r"|你(?:能|会|可以)(?:做|干)(?:什么|啥)|你有什么(?:用|功能)|介绍一下你自己|自我介绍(?:一下)?"
    r"|who are you|what are you|what can you do|what is your name|introduce yourself)"
    + _END
    + r")+$",
    re.IGNORECASE,
)
_CHIT_CHAT = re.compile(
    # the weather now (a place may come first: "杭州今天天气怎么样"); "火星上的天气怎么样"
    # asks about Mars, not about today
    r"^(?:[\u3400-\u9fff]{0,4}?(?:今天|明天|现在|这会儿|最近)|外面)?的?(?:天气|气温)"
    r"(?:怎么样|如何|好吗|好不好|冷吗|热吗)"
    r"|^(?:现在|今天)(?:几点|几号|星期几|是几号|是星期几|是什么日子)"
    r"|^(?:你|您)(?:好吗|最近(?:怎么样|好吗)|吃了吗|喜欢|觉得|开心吗|累吗|多大|几岁|在干嘛|在做什么)"
    r"|^(?:你|您)?(?:今天|最近|这几天)?过得(?:怎么样|好吗|如何|还好吗)"
    r"|^(?:讲|说)个(?:笑话|故事)|^陪我聊"
    r"|^how are you|^how's it going|^what'?s up|^tell me a joke"
    r"|^what(?:'s| is) the (?:weather|time|date)",
    re.IGNORECASE,
)
_GREETING = re.compile(
    r"^(?:你好|您好|你们好|大家好|哈喽|嗨|早上好|上午好|下午好|晚上好|hi|hello|hey)" + _END,
    re.IGNORECASE,
)
_CHIT_CHAT_WORDS = re.compile(
    r"今天|明天|现在|最近|这几天|过得|天气|气温|几点|几号|星期几|怎么样|如何|你|您|喜欢|觉得|笑话"
    r"|故事|聊"
    r"|how|are|you|what|is|the|weather|time|date|tell|me|a|joke",
    re.IGNORECASE,
)
MAX_CHARS = 30  # small talk is short; a long question is a question


def is_small_talk(question: str, passages: Sequence[str] = ()) -> bool:
    """Whether `question` is small talk rather than a question for the documents."""
    text = unicodedata.normalize("NFKC", question).strip().lower()
    if not text or len(text) > MAX_CHARS:
        return False
    if _PURE.match(text):
        return True
    # a greeting in front of chit-chat is chit-chat ("你好，今天过得怎么样？"); in front of a
    # question, the question is read as it is
    greeting = _GREETING.match(text)
    if greeting:
        text = text[greeting.end() :]
    if not _CHIT_CHAT.search(text):
        return False
    # what is left once the chit-chat words are gone: a word of it in a passage makes the
    # question one the documents may answer ("今天天气对航班有影响吗" over a travel policy)
    rest = [w for w in re.split(r"[\W_]+", _CHIT_CHAT_WORDS.sub(" ", text)) if len(w) >= 2]
    seen = unicodedata.normalize("NFKC", "\n".join(passages)).lower()
    return not any(w in seen for w in rest)


SMALL_TALK_ZH = (
    "你好！我是知库（zhiku），只根据知识库里的文档回答问题，每句回答都标明出处，"
    "方便你核对原文。请直接提问，例如“年假有几天？”"
)
SMALL_TALK_EN = (
    "Hello! I am zhiku: I answer questions from the documents in this knowledge base only, "
    "with a citation for every claim so you can check the source. Ask me about them."
)


def small_talk_reply(question: str) -> str:
    """The reply to small talk, in the question's language."""
    has_cjk = re.search(r"[\u3400-\u9fff]", question) is not None
    has_latin = re.search(r"[A-Za-z]", question) is not None
    return SMALL_TALK_EN if has_latin and not has_cjk else SMALL_TALK_ZH
