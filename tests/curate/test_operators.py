"""Each operator on English and Chinese input, with the reason (or the exact rewrite) asserted."""

from __future__ import annotations

from pathlib import Path

import pytest
from curate_samples import chat

from tuneforge.curate import REGISTRY, Drop, parse_op
from tuneforge.errors import ConfigError
from tuneforge.types import Message, Sample


def op(**cfg):
    return parse_op(cfg, "test").build()


def answer_of(s: Sample) -> str:
    return s.messages[-1].content


# One working config per registered operator: the parametrised test below fails when an operator is
# added without being exercised here.
EXAMPLES = {
    "normalize_unicode": {}, "normalize_whitespace": {}, "urls": {}, "strip_html": {}, "lowercase": {},
    "fullwidth": {}, "t2s": {}, "length": {"unit": "words", "min": 1}, "meta": {"key": "x", "missing": "keep"},
    "language": {}, "quality": {}, "machine_text": {}, "refusal": {}, "answer": {}, "pii": {},
    "blocklist": {"keywords": ["炸弹", "bomb"]}, "toxicity_classifier": {}, "exact_dedup": {}, "minhash_dedup": {},
    "reference_dedup": {"references": [str(Path(__file__).parent / "data" / "eval_set.jsonl")]},
    "semantic_dedup": {},
    # nothing listens on the loopback's port 9: the request fails at once and the record is kept
    "llm_judge": {"url": "http://127.0.0.1:9/v1", "model": "m", "retries": 0, "on_error": "keep"},
    "llm_score": {"url": "http://127.0.0.1:9/v1", "model": "m", "retries": 0, "on_error": "keep"},
    "quality_model": {"path": str(Path(__file__).parent / "data" / "quality_model_zero")},  # scores all 0.5
}


# Operators registered by other test modules (named test_*) depend on the order files are collected in.
@pytest.mark.parametrize("name", sorted(n for n in REGISTRY if not n.startswith("test_")))
def test_every_operator_runs_on_english_and_chinese(name):
    assert name in EXAMPLES, f"add an example config for {name!r}"
    cfg = parse_op({"op": name, **EXAMPLES[name]}, "test")
    for module in cfg.requires:
        pytest.importorskip(module, reason=f"{name} needs the optional package {module!r}: "
                                           "pip install 'tuneforge[curate]'")
    built = cfg.build()
    samples = [chat("Explain photosynthesis in simple words.",
                    "Plants turn light, water and CO2 into sugar and oxygen."),
               chat("用简单的话解释光合作用。", "植物利用光、水和二氧化碳制造糖和氧气。")]
    if cfg.is_global:
        assert built.decide([built.keys(samples)]).tolist() == [-1, -1]
    else:
        for s in samples:
            assert isinstance(built(s), Sample)


def test_normalize_unicode_folds_compat_forms_but_keeps_chinese_punctuation():
    s = op(op="normalize_unicode")(chat("ｆｕｌｌ　ｗｉｄｔｈ ①", "你好，世界！ﬁne"))
    assert s.messages[0].content == "full width 1"
    assert answer_of(s) == "你好，世界！fine"


def test_normalize_unicode_repairs_mojibake():
    s = op(op="normalize_unicode", fix_mojibake=True)(chat("q", "The Mona Lisa doesnâ€™t have eyebrows."))
    assert answer_of(s) == "The Mona Lisa doesn't have eyebrows."


def test_whitespace_keeps_indentation_and_caps_blank_lines():
    text = "Title\r\n\r\n\r\n\r\ndef f():\n    return  1   \u200b\nend\u3000here  "
    s = op(op="normalize_whitespace")(chat("q", text))
    assert answer_of(s) == "Title\n\ndef f():\n    return 1\nend here"


def test_unchanged_record_is_the_same_object():
    s = chat("clean", "text")
    assert op(op="normalize_whitespace")(s) is s


def test_urls_masked_and_removed():
    s = chat("see https://example.com/a?b=1, or www.foo.org.", "访问 https://例子.cn/路径。谢谢")
    masked = op(op="urls")(s)
    assert masked.messages[0].content == "see <URL>, or <URL>."
    assert answer_of(masked) == "访问 <URL>。谢谢"
    assert op(op="urls", mode="remove")(s).messages[0].content == "see , or ."


def test_strip_html_keeps_generics_and_comparisons():
    s = op(op="strip_html")(chat("q", "<p>Use <b>List&lt;String&gt;</b></p><script>x()</script> "
                                      "if a<b>c: List<String> x;"))
    assert answer_of(s) == "Use List<String>\n if ac: List<String> x;"


def test_fullwidth_and_case_folding():
    s = op(op="fullwidth")(chat("ＡＢＣ１２３，ｏｋ！", "x"))
    assert s.messages[0].content == "ABC123，ok！"
    assert op(op="fullwidth", punctuation=True)(chat("ＡＢＣ，", "x")).messages[0].content == "ABC,"
    assert op(op="lowercase", fields=["user"])(chat("HeLLo", "KEEP")).messages[0].content == "hello"


def test_traditional_to_simplified():
    s = op(op="t2s")(chat("q", "漢字簡體轉換，這是臺灣的軟體"))
    assert answer_of(s) == "汉字简体转换，这是台湾的软体"


def test_length_in_words_and_chinese_characters():
    f = op(op="length", unit="words", min=5, fields=["assistant"])
    assert f(chat("q", "one two three")) == Drop("too_short", "sample: 3 words < 5")
    assert isinstance(f(chat("q", "一二三四五")), Sample)  # a CJK character counts as a word
    g = op(op="length", unit="chars", max=4, scope="field")
    assert g(chat("abc", "你好世界啊")) == Drop("too_long", "assistant: 5 chars > 4")


def test_length_tokens_needs_a_tokenizer():
    with pytest.raises(ConfigError, match="tokenizer"):
        parse_op({"op": "length", "unit": "tokens", "min": 1}, "ops[0]")


def test_meta_thresholds():
    f = op(op="meta", key="votes.up", min=3)
    s = chat("q", "a")
    s.meta["votes"] = {"up": 2}
    assert f(s) == Drop("meta_below_min", "votes.up=2 < 3")
    s.meta["votes"]["up"] = 5
    assert f(s) is s
    assert f(chat("q", "a")).reason == "meta_missing"
    assert op(op="meta", key="lic", one_of=["mit"])(chat("q", "a", lic="gpl")).reason == "meta_not_in"


def test_language_keep_list():
    f = op(op="language", keep=["en", "zh"])
    en = f(chat("What is the capital of France?", "The capital of France is Paris."))
    zh = f(chat("法国的首都是哪里？", "法国的首都是巴黎。"))
    assert (en.meta["lang"], zh.meta["lang"]) == ("en", "zh")
    de = f(chat("Was ist die Hauptstadt von Frankreich?", "Die Hauptstadt von Frankreich ist Paris."))
    assert de.reason == "language" and de.detail.startswith("de")


def test_quality_repeated_lines_and_ngrams():
    f = op(op="quality", min_words=5)
    lines = "\n".join(["buy cheap pills now"] * 6 + ["ok then"])
    assert f(chat("q", lines)).reason == "repeated_lines"
    assert f(chat("q", "spam spam spam " * 20)).reason == "repeated_ngrams"
    assert f(chat("q", "重复的内容" * 30)).reason == "repeated_ngrams"
    prose = "The quick brown fox jumps over the lazy dog while the farmer watches from the old barn."
    assert isinstance(f(chat("q", prose)), Sample)
    assert f(chat("q", "alpha §§§ beta ¤¤¤ gamma ©©© delta ®®® epsilon ¶¶¶ zeta")).reason == "special_chars"
    assert f(chat("q", "a. b. c. d. e. f. ... !!! ??? ((( )))")).reason == "low_alnum"


def test_machine_text_and_refusals_in_both_languages():
    m = op(op="machine_text")
    assert m(chat("q", "As an AI language model, I think...")) == Drop("machine_generated",
                                                                      "assistant: 'as an ai language model'")
    assert m(chat("q", "作为一个人工智能语言模型，我没有感情。")).reason == "machine_generated"
    assert isinstance(m(chat("As an AI language model, summarise", "Sure.")), Sample)  # only the answer is read
    r = op(op="refusal")
    assert r(chat("q", "I’m sorry, but I can’t help with that.")).reason == "refusal"
    assert r(chat("q", "抱歉，我无法回答这个问题。")).reason == "refusal"
    long_answer = "Here is a full answer. " * 20 + "I cannot provide more detail."
    assert isinstance(r(chat("q", long_answer)), Sample)  # past the window: content, not a refusal
    custom = op(op="machine_text", phrases=["as per my programming"], replace_defaults=True)
    assert custom(chat("q", "As per my programming, no.")).reason == "machine_generated"
    assert isinstance(custom(chat("q", "As an AI language model...")), Sample)


def test_answer_empty_short_and_echo():
    f = op(op="answer", min_chars=3)
    assert f(chat("q", "  ")) == Drop("empty_answer")
    assert f(chat("q", "ok")) == Drop("short_answer", "2 chars < 3")
    assert f(chat("What is the tallest mountain in the world?",
                  "What is the tallest mountain in the world?")).reason == "answer_repeats_question"
    assert f(chat("世界上最高的山是哪座？", "世界上最高的山是哪座")).reason == "answer_repeats_question"
    assert isinstance(f(chat("Proofread: finally sara went to the supermarket",
                             "Finally, Sara went to the supermarket.")), Sample)
    pref = Sample(messages=[Message("user", "hi")], chosen=[Message("assistant", "")],
                  rejected=[Message("assistant", "x")])
    assert f(pref).reason == "empty_answer"


def test_blocklist_whole_words_for_latin_anywhere_for_chinese():
    f = op(op="blocklist", keywords=["ass", "炸弹"])
    assert isinstance(f(chat("a class act", "x")), Sample)
    assert f(chat("kick ass!", "x")) == Drop("blocklist", "user: 'ass'")
    assert f(chat("如何制作炸弹", "x")) == Drop("blocklist", "user: '炸弹'")


def test_blocklist_file(tmp_path):
    (tmp_path / "words.txt").write_text("# comment\nForbidden\n违禁词\n", encoding="utf-8")
    f = op(op="blocklist", files=[str(tmp_path / "words.txt")])
    assert f(chat("q", "这是违禁词")).reason == "blocklist"
    assert f(chat("q", "FORBIDDEN fruit")).reason == "blocklist"


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"ops\[0\]\.op: unknown operator 'lenght'; did you mean 'length'"):
        parse_op({"op": "lenght"}, "ops[0]")
    with pytest.raises(ConfigError, match=r"ops\[1\]\.threshhold.*did you mean 'threshold'"):
        parse_op({"op": "minhash_dedup", "threshhold": 0.5}, "ops[1]")
    with pytest.raises(ConfigError, match="bands"):
        parse_op({"op": "minhash_dedup", "bands": 64, "rows": 4}, "ops[1]")


def test_fields_select_roles():
    s = Sample(messages=[Message("system", "SYS  x"), Message("user", "U  x"), Message("assistant", "A  x")])
    out = op(op="normalize_whitespace", fields=["system", "assistant"])(s)
    assert [m.content for m in out.messages] == ["SYS x", "U  x", "A x"]
    t = op(op="normalize_whitespace", fields=["answer"])(Sample(text="raw  text"))
    assert t.text == "raw text"
