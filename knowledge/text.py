"""Search terms from text, for our own full-text index (the embedded database has no text index).

English runs are lower-cased, stripped of stop words and stemmed with Snowball (PyStemmer), so
"billing", "billed" and "bills" meet. Chinese has no spaces between words: runs of Han
characters are segmented with jieba in search mode (`lcut_for_search` also yields the short
words inside long ones, "国际漫游" -> "国际", "漫游", "国际漫游"), with punctuation and common
function words dropped. Mixed text ("5G套餐 upgrade") is split into runs by script first, so
each run goes to the right tool whatever the article's locale says.
"""

from __future__ import annotations

import logging
import re
import threading
from functools import lru_cache
from typing import Any

import Stemmer

_RUN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")

STOP_WORDS = frozenset(
    "a an and are as at be but by can do does did for from how i if in is it its me my of on or our so "
    "that the their there this to us was we what when where which who why will with you your "
    "use get want need please like know tell hi hello am been just also some any all about into would "
    "could should has have had not no than then them they he she his her i'm i've don't can't "
    "won't isn't doesn't it's".split()
)
# Function words, pronouns and question particles: they carry no topic and are in most questions.
ZH_STOP_WORDS = frozenset(
    "的 了 吗 呢 吧 啊 呀 么 和 与 及 或 是 在 我 你 您 他 她 它 我们 你们 他们 这 那 这个 那个 "
    "怎么 怎么办 怎样 如何 什么 为什么 哪里 哪个 可以 能 能否 可否 是否 会 要 想 请问 请 一下 "
    "有 没有 吗 还 就 都 也 把 被 给 对 让 从 到 为 以 又 而 但 上 下 中 个 些 一个 时候 "
    "需要 应该 问 请教 谢谢 你好 您好".split()
)

_stemmer = Stemmer.Stemmer("english")
_jieba_lock = threading.Lock()


@lru_cache(maxsize=1)
def _jieba() -> Any:
    """jieba with its dictionary loaded once (about a second) and its start-up chatter off."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    with _jieba_lock:
        jieba.initialize()
    return jieba


def stem(word: str) -> str:
    """Snowball (Porter 2) stem of one lower-case English word."""
    return str(_stemmer.stemWord(word))


def _english(run: str) -> list[str]:
    if run in STOP_WORDS or (len(run) < 2 and not run.isdigit()):
        return []
    return [stem(run.split("'", 1)[0])]


def _chinese(run: str) -> list[str]:
    words = _jieba().lcut_for_search(run)
    return [w for w in words if w not in ZH_STOP_WORDS and _HAN.search(w)]


def terms(text: str, locale: str | None = None) -> list[str]:
    """The index terms of `text`, in order, repeats kept (term frequencies need them).

    `locale` is accepted for callers that know it; each run is handled by its script anyway.
    """
    out: list[str] = []
    for run in _RUN.findall(text.lower()):
        out.extend(_chinese(run) if _HAN.match(run) else _english(run))
    return out
