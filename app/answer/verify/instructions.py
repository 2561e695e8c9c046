"""`instructions` (GUARD_INSTRUCTIONS): sentences, titles and headings of a passage that order
the answerer about never reach the model (the prompt leaves them out, `app.answer.prompt`)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

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
