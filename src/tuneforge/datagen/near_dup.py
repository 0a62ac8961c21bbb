"""Near-copy detection by ROUGE-L, as Self-Instruct does it (a new instruction with ROUGE-L >= 0.7
against any instruction so far is dropped), without comparing against every instruction.

ROUGE-L is the F1 of the longest common subsequence: F = 2 * LCS / (|a| + |b|). The LCS can be no longer
than the words the two texts share (counted with multiplicity), so F >= t needs
shared >= t * (|a| + |b|) / 2. An inverted index (word -> instructions holding it, with counts) gives every
instruction's shared count in one pass over the new text's words; only those passing that bound get the
exact ROUGE-L (`tuneforge.eval.overlap.rouge_l`). The answer is exactly the brute-force one.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from tuneforge.eval.overlap import rouge_l
from tuneforge.text import words


def _words(text: str) -> list[str]:
    return words(text, lowercase=True, apostrophes=False)  # what rouge_l compares


class RougeIndex:
    def __init__(self, threshold: float = 0.7):
        self.threshold = threshold
        self.texts: list[str] = []
        self.lengths: list[int] = []
        self.postings: dict[str, list[tuple[int, int]]] = defaultdict(list)  # word -> [(doc, count)]
        self.compared = 0
        """Exact ROUGE-L computations so far (the shortlist's size, summed)."""

    def __len__(self) -> int:
        return len(self.texts)

    def add(self, text: str) -> None:
        doc, counts = len(self.texts), Counter(_words(text))
        self.texts.append(text)
        self.lengths.append(sum(counts.values()))
        for word, count in counts.items():
            self.postings[word].append((doc, count))

    def nearest(self, text: str) -> tuple[float, int | None]:
        """(the highest ROUGE-L at or above the threshold, that instruction's index), else (best below, None)
        among the shortlisted; (0.0, None) when none shares enough words."""
        counts = Counter(_words(text))
        length = sum(counts.values())
        shared: dict[int, int] = defaultdict(int)
        for word, count in counts.items():
            for doc, n in self.postings.get(word, ()):
                shared[doc] += min(count, n)
        best, best_doc = 0.0, None
        for doc, common in shared.items():
            if common < self.threshold * (length + self.lengths[doc]) / 2 - 1e-9:
                continue
            self.compared += 1
            score = rouge_l(text, self.texts[doc])
            if score > best:
                best, best_doc = score, doc
        return best, best_doc if best >= self.threshold else None
