"""The shared text helpers: words, tokens, CJK and the normaliser, English and Chinese alike."""

from __future__ import annotations

import pytest

from tuneforge.text import cjk_ratio, has_cjk, is_cjk, normalise, tokens, words


def test_words_count_cjk_characters_one_by_one():
    assert words("我爱Python 3, don't panic") == ["我", "爱", "Python", "3", "don't", "panic"]


def test_words_for_rouge_and_bm25_split_contractions_and_lower_case():
    assert words("Don't_PANIC，好", lowercase=True, apostrophes=False) == ["don", "t", "panic", "好"]


def test_tokens_keep_punctuation_marks():
    assert tokens("Hi, 你好！") == ["Hi", ",", "你", "好", "！"]


@pytest.mark.parametrize("text, cjk", [("北京大学 is in Beijing", False), ("北京大学在北京", True), ("𠀀𠀁", True),
                                       ("", False)])
def test_is_cjk(text, cjk):
    assert is_cjk(text) is cjk and has_cjk(text) is (cjk_ratio(text) > 0)


def test_normalise_for_matching_and_for_answers():
    assert normalise("  The ＡＢＣ, €5!_x ") == "the abc 5 x"
    assert normalise("  The ＡＢＣ, €5!_x ", answer=True) == "abc €5 x"
    assert normalise("北京 大学。", answer=True) == "北京大学" and normalise("北京 大学。") == "北京 大学"
