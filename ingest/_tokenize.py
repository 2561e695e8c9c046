"""Word segmentation for keyword search: jieba for Chinese, lower-cased words for the rest.

SQLite's FTS5 tokenizers split Chinese into nothing useful (a whole run of hanzi is one token), so
text is segmented here and stored as space-separated tokens; FTS5 then only splits on spaces and
punctuation. Documents and queries go through the same function, so they always agree.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Sequence
from itertools import pairwise

import jieba

jieba.setLogLevel(logging.WARNING)
_init_lock = threading.Lock()
_initialized = False

# Question words and particles: frequent in questions, rare in documents, so with a high IDF they
# pull short passages that happen to contain them to the top ("hub passages").
_STOPWORD_TEXT = """
    什么 什么样 啥 哪 哪些 哪个 哪里 哪儿 哪种 哪位 多少 几 几个 几种 谁 何 何时 何地
    多久 多长 多重 多高 多远 多宽 多深 多厚 多大
    为何 如何 怎么 怎样 怎么样 为什么 吗 呢 吧 啊 呀 嘛 么 是 是否 是不是 有没有 的 地
    得 了 着 过 有 在 和 与 及 或 或者 还是 一个 这个 那个 这 那 其 请问 请 能 能否 可以
    会 要 需要 应该 就 都 也 又 被 把 给 让 对 对于 关于 由 主要 分别 一般 通常 大约 大概
    具体 以及 等 等等 之 所 为 以 于 而 则
    what which who whom whose when where why how is are was were be been being do does did
    the a an of to in on at for by with from as and or not it its this that these those can
    could should would will shall may might must please tell me about much many
"""
QUERY_STOPWORDS = frozenset(_STOPWORD_TEXT.split())

_WORD = re.compile(r"\w", re.UNICODE)


def _ensure_jieba() -> None:
    global _initialized
    if not _initialized:
        with _init_lock:
            if not _initialized:
                jieba.initialize()
                _initialized = True


def tokens(text: str) -> list[str]:
    """Search-mode segmentation (long words and their parts), lower-cased, punctuation dropped."""
    _ensure_jieba()
    normalized = unicodedata.normalize("NFKC", text).lower()
    out = []
    for token in jieba.lcut_for_search(normalized):
        token = token.strip()
        if token and _WORD.search(token):
            out.append(token)
    return out


def index_text(text: str) -> str:
    return " ".join(tokens(text))


def query_terms(text: str) -> list[str]:
    """Distinct query tokens without question words; falls back to all tokens if none remain."""
    all_tokens = tokens(text)
    kept = [t for t in all_tokens if t not in QUERY_STOPWORDS]
    return list(dict.fromkeys(kept or all_tokens))


def _quote(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def keyword_query(text: str) -> str:
    """An FTS5 query: every query term, plus each pair of neighbouring words as a phrase.

    The phrases reward passages that contain the question's words as written ("GPT-1",
    "1.5B 模型") over passages that merely mention them apart; on document-style questions
    this lifted BM25 recall@1 from 0.80 to 0.95 (seed_dev, 300-600 character chunks).
    """
    terms = query_terms(text)
    if not terms:
        return ""
    _ensure_jieba()
    words = [
        w.strip()
        for w in jieba.lcut(unicodedata.normalize("NFKC", text).lower())
        if w.strip() and _WORD.search(w) and w.strip() not in QUERY_STOPWORDS
    ]
    pairs = [f"{a} {b}" for a, b in pairwise(words)]
    return keyword_expression(list(dict.fromkeys([*terms, *pairs])))


def keyword_expression(items: Sequence[str]) -> str:
    """Quoted items joined by OR: the FTS5 syntax `keyword_query` produces."""
    return " OR ".join(_quote(t) for t in items)


_FTS_ITEM = re.compile(r'"((?:[^"]|"")*)"')
# FTS5's unicode61 tokenizer: letters and digits make tokens, everything else separates them
_FTS_TOKEN = re.compile(r"[^\W_]+")


def keyword_items(expression: str) -> list[str] | None:
    """The items of a `keyword_query` expression, unquoted; None for any other FTS5 syntax."""
    items = _FTS_ITEM.findall(expression)
    if not items or " OR ".join(f'"{i}"' for i in items) != expression:
        return None
    return [i.replace('""', '"') for i in items]


def fts_tokens(item: str) -> list[str]:
    """The FTS5 tokens of one query item (a phrase has several): what its document frequency is
    looked up by in `fts5vocab`."""
    return _FTS_TOKEN.findall(item.lower())
