"""Text normalisation and tokenisation for metrics, English and Chinese alike.

Chinese has no spaces between words, so a whitespace tokeniser sees a whole sentence as one token and
BLEU / ROUGE-L become all-or-nothing. Like sacreBLEU's `zh` tokeniser, every CJK ideograph is its
own token; runs of letters and digits are words; every other non-space character (punctuation) stands
alone, as in sacreBLEU's `13a` for ordinary sentences.
"""

from __future__ import annotations

import re
import string
import unicodedata

CJK = ("\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
       "\U00020000-\U0002a6df\U0002a700-\U0002ebef")
_TOKEN = re.compile(rf"[{CJK}]|[^\W{CJK}]+|[^\s\w]", re.UNICODE)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_HAS_CJK = re.compile(rf"[{CJK}]")


def tokens(text: str, lowercase: bool = False) -> list[str]:
    """Words, single CJK characters and single punctuation marks, in order."""
    return _TOKEN.findall(text.lower() if lowercase else text)


def words(text: str) -> list[str]:
    """Lower-cased tokens without punctuation, as ROUGE's reference implementation compares them."""
    return [t for t in tokens(text, lowercase=True) if t[0].isalnum()]


def has_cjk(text: str) -> bool:
    return bool(_HAS_CJK.search(text))


def normalize_answer(text: str) -> str:
    """SQuAD-style normalisation made script-aware: NFKC (full-width → half-width), lower case, no
    punctuation (ASCII or Unicode, e.g. 。，！), no English articles, single spaces; spaces next to
    a CJK character are dropped, so "北京 大学" equals "北京大学"."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(" " if unicodedata.category(c).startswith("P") or c in string.punctuation else c for c in text)
    text = _ARTICLES.sub(" ", text)
    text = " ".join(text.split())
    return re.sub(rf"(?<=[{CJK}]) | (?=[{CJK}])", "", text)
