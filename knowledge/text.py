"""Search terms from text: our own because the embedded database has no text index.

English words are lower-cased, stripped of stop words and lightly stemmed (plural
and -ing/-ed endings); CJK text is indexed as character bigrams, the usual approach
when there is no word segmenter.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9]+|[\u4e00-\u9fff]+")
STOP_WORDS = frozenset(
    "a an and are as at be but by can do does for from how i if in is it its me my of on or our so "
    "that the their there this to us was we what when where which who why will with you your "
    "use get want need please like know tell hi hello am been just also some any all about into would "
    "could should".split()
)


def stem(word: str) -> str:
    for suffix, keep in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            base = word[: -len(suffix)] + keep
            # "setting" -> "sett" -> "set", "planned" -> "plan"
            if suffix in ("ing", "ed") and len(base) > 3 and base[-1] == base[-2] and base[-1] not in "lsz":
                base = base[:-1]
            return base
    return word


def terms(text: str) -> list[str]:
    out: list[str] = []
    for token in _WORD.findall(text.lower()):
        if "\u4e00" <= token[0] <= "\u9fff":
            out.extend(token[i : i + 2] for i in range(max(1, len(token) - 1)))
        elif token not in STOP_WORDS and len(token) > 1:
            out.append(stem(token))
    return out
