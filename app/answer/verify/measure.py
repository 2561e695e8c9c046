"""`measure` (GUARD_MEASURE): a question asking for a measured quantity (a weight, a length,
a duration, an amount of money, a share, a number of people) or for one of a series ("哪一轮",
"第几届") is not answered by sentences that hold no quantity of that kind, no member of it.
"K2 有多重？" over a product's introduction ("K2 在 K1 的基础上增加了后摄像头"), "子女教育补贴是
多少？" over a policy's closing clause ("自 2024 年 7 月 1 日起施行"), "How long is the
warranty?" over "Damage caused by water is not covered." each cite a true sentence about the
right thing that states no weight, no amount, no period.

A digit is not enough: model names (K2, ZK-300, 4G) and dates hold digits. A kind is held by a
number with one of its units ("120 克", "3 个月", "500 yuan", "20%"), by a unit in a table's
header ("重量(g)=120"), by the kind's own attribute word beside a number ("重量=120"), or by the
words that answer it without a number (免费 for a price, 永久 for a period).

Only the question's interrogative forms decide the kind asked ("多重", "多少钱", "补贴是多少",
"how long"), never a bare noun: "重量超过 20 公斤要托运吗？" is a yes/no question about a
weight, not a question asking one. Where a form fits two kinds ("多长", "how long": a length or a
period) either holds it.
"""

from __future__ import annotations

import re
import unicodedata

from app.answer.verify.yes_no import is_yes_no
from ingest.text import strip_markers

_NUMBER = r"(?:\d+(?:[.,]\d+)*|[零〇一二两三四五六七八九十百千万亿半几数]+)"

# kind → (the question's forms asking for it, its units, its attribute words (holding it beside
# a number: "重量=120"), words holding it without a number (免费, 永久))
_KINDS: dict[str, tuple[str, str, str, str]] = {
    "weight": (
        r"多重|多沉|几斤|多少(?:斤|克|公斤|千克|吨|磅)|(?:重量|体重|净重|毛重)(?:是|为|有)?(?:多少|几)"
        r"|how heavy|how much does .{1,40} weigh|what(?:'s| is) (?:the|its) weight",
        r"克|公斤|千克|斤|吨|毫克|磅|盎司|kg|KG|Kg|g|mg|lbs?|oz|(?i:tons?|kilo(?:gram)?s?|grams?|pounds?)",
        r"重量|体重|净重|毛重|\bweighs?\b|\bweight\b",
        r"(?!)",
    ),
    "length": (
        r"多长(?!时间)|多高|多宽|多深|多远|多厚|几米|多少(?:米|厘米|毫米|公里|千米|英寸)"
        r"|(?:长度|高度|宽度|深度|厚度|身高|尺寸|距离)(?:是|为|有)?(?:多少|几)"
        r"|how (?:long|tall|far|wide|deep|thick|high)\b"
        r"|what(?:'s| is) (?:the|its) (?:length|height|width|depth|size|distance)",
        r"米|厘米|毫米|公里|千米|公分|英寸|英尺|寸|尺|里|mm|cm|m|km|ft"
        r"|(?i:inch(?:es)?|feet|foot|met(?:er|re)s?|miles?)",
        r"长度|高度|宽度|深度|厚度|身高|尺寸|距离|\b(?:length|height|width|depth|size)\b",
        r"(?!)",
    ),
    "duration": (
        r"多久|多长|多少时间|几(?:个)?(?:天|日|周|星期|礼拜|月|年|小时|钟头|分钟|秒|工作日)"
        r"|多少(?:个)?(?:天|日|周|星期|月|年|小时|钟头|分钟|秒|工作日)"
        r"|how long\b|how many (?:days|weeks|months|years|hours|minutes|seconds)",
        r"秒|分钟|小时|钟头|天|日|周|星期|礼拜|个月|月|年|季度|工作日|h|min|s"
        r"|(?i:seconds?|minutes?|mins|hours?|hrs?|days?|weeks?|months?|years?)",
        r"时长|期限|有效期|\bduration\b",
        r"永久|终身|长期|当天|当日|即日|随时|\b(?:permanent(?:ly)?|lifetime|indefinitely)\b",
    ),
    "money": (
        r"多少钱|几(?:块|元)钱?|多少(?:元|块|人民币|美元|港币|欧元)|什么价|价钱|(?:价格|售价|费用|收费|花费|成本|票价)"
        r"(?:标准)?(?:是|为|要)?(?:多少|几)"
        r"|(?:补贴|津贴|补助|报销|工资|薪资|薪水|月薪|年薪|奖金|罚款|押金|租金|学费|房费|餐费)"
        r"[^，。？?]{0,6}多少"
        r"|how much\b.{0,40}\b(?:cost|pay|charge|price|fee|reimburs\w*|allowance|salary)"
        r"|what(?:'s| is) (?:the|its) (?:price|cost|fee)",
        r"元|块|角|万元|亿元|美元|欧元|英镑|日元|港币|港元|人民币|¥|￥|\$|€|£|RMB|CNY|USD|EUR|HKD"
        r"|(?i:yuan|dollars?|euros?|cents?)",
        r"价格|价钱|费用|售价|单价|收费|\b(?:price|cost|fee)\b",
        r"免费|不收费|无需付费|不另收费|自费|全额|据实|实报实销|按实际|\bfree\b|no charge"
        # an amount given as a multiple of another: "押金为两个月租金", "按 1.5 倍工资支付"
        rf"|{_NUMBER}\s*个?月的?(?:租金|房租|工资|薪资|薪水|月薪|基本工资)|{_NUMBER}\s*倍|双倍",
    ),
    "people": (
        r"多少(?:个|名|位)?(?:人(?!民币)|员工|职工|雇员|学生|成员|会员|用户|名|位)"
        r"|几(?:个|名|位)(?:人|员工|学生|成员|用户)"
        r"|(?:人数|员工数|用户数|会员数|学生数|规模)(?:是|为|有)?(?:多少|几)"
        r"|how many (?:people|persons|employees|staff|members|users|students|workers|residents)",
        r"人次|人|名|位|(?i:people|persons?|employees|staff|members|users|students|workers)",
        r"人数|员工数|用户数|会员数|学生数|人口|(?:headcount|population)",
        r"(?!)",
    ),
    "share": (
        r"百分之几|百分比|占比|比例(?:是|为)?多少|多少%|几成|what percentage|what share"
        r"|how many percent",
        r"%|％|‰|百分之|成|(?i:percent|per cent)",
        r"比例|占比|比率|\b(?:share|ratio|rate)\b",
        r"一半|半数|\bhalf\b",
    ),
}
_ASKS = {kind: re.compile(forms, re.IGNORECASE) for kind, (forms, *_) in _KINDS.items()}
# units are matched case by case: "4G" is a network, not four grams
_UNIT_AFTER = {
    kind: re.compile(rf"{_NUMBER}\s*(?:[余多来]\s*)?(?:个\s*)?(?:多\s*)?(?:{units})(?![A-Za-z])")
    for kind, (_, units, *_) in _KINDS.items()
}
_UNIT_IN_HEADER = {
    kind: re.compile(rf"[(（\[]\s*(?:{units})\s*[)）\]]") for kind, (_, units, *_) in _KINDS.items()
}
# the attribute word with its number after it ("重量(kg)=1.3", "价格：199"), not a digit anywhere
# ("K2 的重量见说明书" states none)
_ATTRIBUTES = {
    kind: re.compile(rf"(?:{words})[^。；;!?！？\n]{{0,8}}\d", re.IGNORECASE)
    for kind, (_, _, words, _) in _KINDS.items()
}
_ANSWERS = {kind: re.compile(words, re.IGNORECASE) for kind, (*_, words) in _KINDS.items()}
_DIGIT = re.compile(r"\d")
_PARTS = re.compile(r"[?;,；，、]|(?<=[a-z])\s+and\s+(?=(?:how|what|who|when|where|which)\b)")
_INTERROGATIVE = re.compile(
    r"谁|什么|哪|多少|几|怎|如何|多[久长重高宽深远厚大]|吗|\b(?:what|who|when|where|which|why|how)\b",
    re.IGNORECASE,
)
_CURRENCY_BEFORE = re.compile(r"(?:[¥$€£]|RMB|CNY|USD|EUR|HKD|人民币|港币|美元)\s*\d")


# "哪一轮", "第几届", "哪一期": the answer names one of them ("B 轮", "第三届", "首期", "天使轮")
_ORDINAL_ASKED = re.compile(r"(?:哪一?|第几)([轮届期代版任级层楼批场季])")


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def asked_measures(question: str) -> frozenset[str]:
    """The kinds of quantity `question` asks for ("weight", "length", "duration", "money",
    "share", "people"); empty when it asks for none of them. Two when its form fits both
    ("多长")."""
    text = _nfkc(question)
    return frozenset(kind for kind, pattern in _ASKS.items() if pattern.search(text))


def holds_measure(kind: str, text: str) -> bool:
    """Whether `text` states a quantity of `kind`: a number with one of its units, a number
    beside a unit in a header or after the kind's attribute word (重量, 价格), or a word
    answering it without a number (免费, 永久). Citation markers ("[1]") are no numbers."""
    text = strip_markers(_nfkc(text))
    if kind == "money" and _CURRENCY_BEFORE.search(text):
        return True
    if _UNIT_AFTER[kind].search(text):
        return True
    if _DIGIT.search(text) and _UNIT_IN_HEADER[kind].search(text):
        return True
    if _ATTRIBUTES[kind].search(text):
        return True
    return bool(_ANSWERS[kind].search(text))


def asks_one_thing(question: str) -> bool:
    """Whether `question` asks one thing: "午餐多少钱？有疑问找谁？" asks two, and an answer to
    either half is no answer to be refused for lacking the other's quantity."""
    parts = [p for p in _PARTS.split(_nfkc(question)) if _INTERROGATIVE.search(p)]
    return len(parts) <= 1


def unmeasured(question: str, texts: list[str]) -> str | None:
    """The kind of quantity `question` asks for that none of `texts` (what the answer shows and
    the sentences it cites) states; None when it asks for none or for more than one thing, or
    one of them states it."""
    kinds = asked_measures(question)
    ordinal = _ORDINAL_ASKED.search(_nfkc(question))
    if (not kinds and not ordinal) or not asks_one_thing(question):
        return None
    if any(holds_measure(kind, t) for kind in kinds for t in texts):
        return None
    if ordinal and any(names_ordinal(ordinal.group(1), t) for t in texts):
        return None
    return "/".join(sorted(kinds)) or ordinal.group(0)  # type: ignore[union-attr]


def names_ordinal(counter: str, text: str) -> bool:
    """Whether `text` names one of the things "哪一轮" / "第几届" asks for: the counter word
    after a word or number of its own ("C 轮", "第三届", "天使轮"), not the counter alone."""
    return bool(re.search(rf"[^\s\W]\s*{counter}", strip_markers(_nfkc(text))))


# one member of a series named by its letter, number or numeral before the counter word ("A 轮",
# "第三届", "二期", "5 楼"); 级 is left out: "二级以上" holds 三级, it does not name another
_MEMBER = re.compile(
    r"(?<![A-Za-z0-9.])(第?\s*(?:[A-Za-z]|\d+(?:\.\d+)?|[一二三四五六七八九十百两甲乙丙丁]+))"
    r"\s*([轮届期代版任层楼批场季])"
)


_DIGITS = dict(zip("一二两三四五六七八九", "1223456789", strict=True))
# a count, not a member: "分 3 期", "共两届", "每批", "前三轮"
_COUNTING = re.compile(r"[分共每续前近约达超满历逾]\s*$")


def _designator(text: str) -> str:
    """A member's name compared: "第" and spaces dropped, case folded, a Chinese numeral under
    one hundred as digits ("第三" and "3" are one member)."""
    name = re.sub(r"\s|^第", "", text).lower()
    tens = re.fullmatch(r"([一二两三四五六七八九]?)十([一二三四五六七八九]?)", name)
    if tens:
        return str(int(_DIGITS.get(tens.group(1), "1")) * 10 + int(_DIGITS.get(tens.group(2), "0")))
    return "".join(_DIGITS.get(c, c) for c in name)


def _members(text: str) -> dict[str, set[str]]:
    """Each counter word of `text` with the members named before it."""
    found: dict[str, set[str]] = {}
    plain = strip_markers(_nfkc(text))
    for match in _MEMBER.finditer(plain):
        if _COUNTING.search(plain[: match.start()]):
            continue
        found.setdefault(match.group(2), set()).add(_designator(match.group(1)))
    return found


def other_member(question: str, texts: list[str]) -> str | None:
    """The member of a series the question names ("A 轮融资") where `texts` name only other
    members of that series ("B 轮融资"), as "a轮 → b轮"; None when they name it too or name no
    member of its series, and for a yes/no question (there the other member is the answer: "在
    3 楼吗？" "在 12 楼")."""
    asked = _members(question)
    if not asked or is_yes_no(question):
        return None
    said: dict[str, set[str]] = {}
    for text in texts:
        for counter, designators in _members(text).items():
            said.setdefault(counter, set()).update(designators)
    for counter, wanted in asked.items():
        others = said.get(counter, set())
        if others and not wanted & others:
            stated = "/".join(f"{d}{counter}" for d in sorted(others))
            return f"{'/'.join(f'{d}{counter}' for d in sorted(wanted))} → {stated}"
    return None
