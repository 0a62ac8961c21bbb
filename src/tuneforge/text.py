"""Text helpers every package shares, English and Chinese alike: the CJK range, words and tokens, and
the normaliser that makes two texts compare equal when they differ only in case, punctuation and
spacing.

Chinese, Japanese and Korean are written without spaces between words, so a whitespace tokeniser sees a
whole sentence as one word. Here every CJK character is a word of its own (the standard stand-in, as in
sacreBLEU's `zh` tokeniser); runs of other letters and digits are words.
"""

from __future__ import annotations

import re
import string
import unicodedata

# CJK ideographs (with extensions A, B-F and compatibility ideographs), kana and hangul.
CJK = ("\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
       "\U00020000-\U0002a6df\U0002a700-\U0002ebef")
_CJK_CHAR = re.compile(f"[{CJK}]")
_WORD = re.compile(f"[{CJK}]|[^\\W_{CJK}]+")
# A contraction or possessive ("don't", "O’Brien") stays one word.
_WORD_WITH_APOSTROPHES = re.compile(f"[{CJK}]|[^\\W_{CJK}]+(?:['’][^\\W_{CJK}]+)*")
_TOKEN = re.compile(f"[{CJK}]|[^\\W{CJK}]+|[^\\s\\w]")
_NON_WORD = re.compile(r"[\W_]+")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_SPACE_BY_CJK = re.compile(f"(?<=[{CJK}]) | (?=[{CJK}])")


def has_cjk(text: str) -> bool:
    return bool(_CJK_CHAR.search(text))


def cjk_ratio(text: str) -> float:
    """Share of CJK characters among the characters that are not spaces or newlines."""
    n = len(text) - text.count(" ") - text.count("\n")
    return len(_CJK_CHAR.findall(text)) / n if n > 0 else 0.0


def is_cjk(text: str) -> bool:
    """Mostly CJK: at least 30% of the non-space characters."""
    return cjk_ratio(text) >= 0.3


def words(text: str, *, lowercase: bool = False, apostrophes: bool = True) -> list[str]:
    """Runs of letters and digits that are not CJK, and single CJK characters, in order; punctuation,
    spaces and underscores separate them. `apostrophes`: a contraction ("don't") is one word, as
    curation counts words; off, it is two ("don", "t"), as ROUGE's reference implementation and BM25
    compare words (those also pass `lowercase`)."""
    pattern = _WORD_WITH_APOSTROPHES if apostrophes else _WORD
    return pattern.findall(text.lower() if lowercase else text)


def tokens(text: str, lowercase: bool = False) -> list[str]:
    """Words, single CJK characters and single punctuation marks, in order: what BLEU counts n-grams
    of, like sacreBLEU's `13a` tokeniser for ordinary sentences and `zh` for Chinese."""
    return _TOKEN.findall(text.lower() if lowercase else text)


def normalise(text: str, *, answer: bool = False) -> str:
    """NFKC (full-width -> half-width), lower case, punctuation and spacing reduced to single spaces.

    By default every run of characters that are not letters or digits becomes one space: two texts
    that differ only there compare equal (exact and MinHash dedup, the answer-repeats-question check).

    `answer=True` is SQuAD's answer normalisation made script-aware (exact_match, contains): only
    punctuation goes (ASCII or Unicode, e.g. 。，！; symbols such as € stay), so do English articles,
    and spaces next to a CJK character are dropped, so "北京 大学" equals "北京大学".
    """
    text = unicodedata.normalize("NFKC", text).lower()
    if not answer:
        return _NON_WORD.sub(" ", text).strip()
    text = "".join(" " if unicodedata.category(c).startswith("P") or c in string.punctuation else c for c in text)
    text = " ".join(_ARTICLES.sub(" ", text).split())
    return _SPACE_BY_CJK.sub("", text)
