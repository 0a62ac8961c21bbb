"""Reference-overlap scores: ROUGE-L, BLEU and chrF.

BLEU and chrF follow sacreBLEU 2.x exactly (BLEU: 4-gram, `exp` smoothing, effective order for single
sentences; chrF: character 6-grams, beta 2, whitespace removed, averaged precision and recall) so
that figures agree with published ones; only tokenisation differs where sacreBLEU would need to be
told the language: ours splits CJK ideographs always (see `tuneforge.text.tokens`). Corpus scores come from
summed statistics, not from averaging sentence scores.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from tuneforge.text import tokens, words

BLEU_ORDER = 4
CHRF_ORDER = 6
CHRF_BETA = 2


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """F1 of the longest common subsequence of lower-cased words (CJK: characters), in [0, 1]."""
    p, r = (words(t, lowercase=True, apostrophes=False) for t in (prediction, reference))
    if not p or not r:
        return float(p == r)
    lcs = _lcs(p, r)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(p), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def _ngrams(seq: Sequence[str], n: int) -> Counter:
    return Counter(tuple(seq[i:i + n]) for i in range(len(seq) - n + 1))


def bleu_stats(prediction: str, reference: str) -> list[int]:
    """[sys_len, ref_len, correct_1..4, total_1..4] for one sentence."""
    p, r = tokens(prediction), tokens(reference)
    correct, total = [], []
    for n in range(1, BLEU_ORDER + 1):
        hyp, ref = _ngrams(p, n), _ngrams(r, n)
        correct.append(sum((hyp & ref).values()))
        total.append(max(len(p) - n + 1, 0))
    return [len(p), len(r), *correct, *total]


def bleu_from_stats(stats: Sequence[int], effective_order: bool = False) -> float:
    """BLEU in [0, 100] from (summed) `bleu_stats`, with sacreBLEU's `exp` smoothing."""
    sys_len, ref_len = stats[0], stats[1]
    correct, total = stats[2:2 + BLEU_ORDER], stats[2 + BLEU_ORDER:]
    if not any(correct):
        return 0.0
    bp = 1.0 if sys_len >= ref_len else (math.exp(1 - ref_len / sys_len) if sys_len > 0 else 0.0)
    logs, smooth, order = [], 1.0, BLEU_ORDER
    for n in range(BLEU_ORDER):
        if total[n] == 0:
            break
        if effective_order:
            order = n + 1
        if correct[n] == 0:
            smooth *= 2
            logs.append(math.log(100.0 / (smooth * total[n])))
        else:
            logs.append(math.log(100.0 * correct[n] / total[n]))
    logs += [-9999999999.0] * (order - len(logs))  # sacreBLEU's log(0)
    return bp * math.exp(sum(logs[:order]) / order)


def sentence_bleu(prediction: str, reference: str) -> float:
    return bleu_from_stats(bleu_stats(prediction, reference), effective_order=True)


def corpus_bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    summed = [sum(col) for col in zip(*(bleu_stats(p, r) for p, r in zip(predictions, references)))]
    return bleu_from_stats(summed) if summed else 0.0


def chrf_stats(prediction: str, reference: str) -> list[int]:
    """[hyp, ref, match] counts of character n-grams for n = 1..6, whitespace removed."""
    p, r = "".join(prediction.split()), "".join(reference.split())
    out = []
    for n in range(1, CHRF_ORDER + 1):
        hyp = Counter(p[i:i + n] for i in range(len(p) - n + 1))
        ref = Counter(r[i:i + n] for i in range(len(r) - n + 1))
        out += [sum(hyp.values()), sum(ref.values()), sum((hyp & ref).values())]
    return out


def chrf_from_stats(stats: Sequence[int]) -> float:
    """chrF in [0, 100]: precision and recall averaged over the orders both sides have, then F-beta."""
    precision = recall = 0.0
    orders = 0
    for n in range(CHRF_ORDER):
        n_hyp, n_ref, n_match = stats[3 * n:3 * n + 3]
        if n_hyp > 0 and n_ref > 0:
            precision, recall, orders = precision + n_match / n_hyp, recall + n_match / n_ref, orders + 1
    if orders == 0 or precision + recall == 0:
        return 0.0
    precision, recall = precision / orders, recall / orders
    factor = CHRF_BETA ** 2
    return 100 * (1 + factor) * precision * recall / (factor * precision + recall)


def sentence_chrf(prediction: str, reference: str) -> float:
    return chrf_from_stats(chrf_stats(prediction, reference))


def corpus_chrf(predictions: Sequence[str], references: Sequence[str]) -> float:
    summed = [sum(col) for col in zip(*(chrf_stats(p, r) for p, r in zip(predictions, references)))]
    return chrf_from_stats(summed) if summed else 0.0
