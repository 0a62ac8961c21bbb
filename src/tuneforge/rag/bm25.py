"""BM25 (Okapi; Robertson & Zaragoza 2009) over chunks, with jieba word segmentation so that Chinese
queries match Chinese words rather than whole unsegmented sentences."""

from __future__ import annotations

import logging
import math
from collections import Counter

from tuneforge.errors import MissingDependency
from tuneforge.text import has_cjk, words

K1, B = 1.5, 0.75


def terms(text: str) -> list[str]:
    """Lower-cased words; text holding Chinese is segmented by jieba (English words pass through)."""
    if not has_cjk(text):
        return words(text, lowercase=True, apostrophes=False)
    try:
        import jieba
    except ImportError as e:
        raise MissingDependency("jieba", "eval", "BM25 over Chinese text") from e
    jieba.setLogLevel(logging.WARNING)  # it announces building its dictionary on every first use
    return [w.lower() for w in jieba.lcut(text) if w.strip() and (w[0].isalnum())]


class BM25:
    def __init__(self, term_counts: list[dict[str, int]]):
        self.term_counts = term_counts
        self.lengths = [sum(tc.values()) for tc in term_counts]
        self.avg_length = sum(self.lengths) / max(len(self.lengths), 1)
        df = Counter(t for tc in term_counts for t in tc)
        n = len(term_counts)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}

    @classmethod
    def from_texts(cls, texts: list[str]) -> BM25:
        return cls([dict(Counter(terms(t))) for t in texts])

    def scores(self, query: str) -> list[float]:
        q = set(terms(query))
        out = []
        for tc, length in zip(self.term_counts, self.lengths):
            s = 0.0
            for t in q & tc.keys():
                f = tc[t]
                s += self.idf[t] * f * (K1 + 1) / (f + K1 * (1 - B + B * length / max(self.avg_length, 1e-9)))
            out.append(s)
        return out
