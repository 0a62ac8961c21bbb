"""Every metric on English and Chinese inputs, with exact expected values. BLEU / chrF / ROUGE-L
figures are sacreBLEU 2.6 (`tokenize="zh"` for Chinese, `13a` for English) and rouge-score 0.1.2 outputs."""

import json
import sys
import textwrap

import pytest

from tuneforge.config import MetricConfig, build_config
from tuneforge.errors import ConfigError
from tuneforge.eval import overlap
from tuneforge.eval.metrics import METRICS, build_metrics, register_metric
from tuneforge.text import normalise, tokens


def one(name, prediction, reference=None, **options):
    return build_metrics([MetricConfig(name=name, **options)])[0].score(prediction, reference)


def test_tokens_split_chinese_characters_and_punctuation():
    assert tokens("我爱北京天安门！Hello, world 2024.") == ["我", "爱", "北", "京", "天", "安", "门", "！",
                                                           "Hello", ",", "world", "2024", "."]


@pytest.mark.parametrize("text, expected", [
    ("The Eiffel Tower!", "eiffel tower"), ("  an   APPLE. ", "apple"),
    ("北京。", "北京"), ("北京 大学", "北京大学"), ("ＡＢＣ１２３", "abc123"), ("「你好」，世界！", "你好世界"),
])
def test_normalize_answer(text, expected):
    assert normalise(text, answer=True) == expected


@pytest.mark.parametrize("prediction, reference, expected", [
    ("The Eiffel Tower.", "eiffel tower", 1.0), ("Eiffel", "Eiffel Tower", 0.0),
    ("北京。", "北京", 1.0), ("北京市", "北京", 0.0), ("ＡＢＣ", "abc", 1.0),
])
def test_exact_match(prediction, reference, expected):
    assert one("exact_match", prediction, reference) == expected


@pytest.mark.parametrize("prediction, reference, expected", [
    ("It is the Eiffel Tower, in Paris.", "eiffel tower", 1.0), ("A tower.", "Eiffel Tower", 0.0),
    ("答案是北京。", "北京", 1.0), ("答案是上海。", "北京", 0.0),
])
def test_contains(prediction, reference, expected):
    assert one("contains", prediction, reference) == expected


def test_rouge_l_english_matches_rouge_score():
    assert one("rouge_l", "The cat sat on the mat.", "The cat is on the mat.") == pytest.approx(0.8333333333333334)
    assert one("rouge_l", "the quick brown fox jumps over the dog",
               "the quick brown fox jumped over the lazy dog") == pytest.approx(0.823529411764706)


def test_rouge_l_chinese_by_character():
    # LCS(今天天气很好, 今天的天气非常好) = 今天天气好 = 5; P = 5/6, R = 5/8
    assert one("rouge_l", "今天天气很好。", "今天的天气非常好。") == pytest.approx(
        2 * (5 / 6) * (5 / 8) / (5 / 6 + 5 / 8))
    assert one("rouge_l", "", "") == 1.0 and one("rouge_l", "abc", "") == 0.0


@pytest.mark.parametrize("prediction, reference, bleu, chrf", [
    ("The cat sat on the mat.", "The cat is on the mat.", 48.892302243490086, 67.17273492330233),
    ("the quick brown fox jumps over the dog", "the quick brown fox jumped over the lazy dog",
     37.70794596593207, 71.23527414353012),
    ("今天天气很好。", "今天的天气非常好。", 17.09588824982593, 18.207605029132164),
    ("我爱北京天安门", "我爱北京", 41.11336169005198, 79.06824146981627),
    ("hello", "goodbye", 0.0, 6.06060606060606),
])
def test_sentence_bleu_and_chrf_match_sacrebleu(prediction, reference, bleu, chrf):
    assert one("bleu", prediction, reference) == pytest.approx(bleu, abs=1e-9)
    assert one("chrf", prediction, reference) == pytest.approx(chrf, abs=1e-9)


def test_corpus_bleu_and_chrf_come_from_summed_statistics():
    bleu, chrf = build_metrics(["bleu", "chrf"])
    en = (["The cat sat on the mat.", "the quick brown fox jumps over the dog"],
          ["The cat is on the mat.", "the quick brown fox jumped over the lazy dog"])
    zh = (["今天天气很好。", "我爱北京天安门"], ["今天的天气非常好。", "我爱北京"])
    assert bleu.summarize(*en, [None, None]) == pytest.approx(42.62460963131575)
    assert chrf.summarize(*en, [None, None]) == pytest.approx(70.06310021546585)
    assert bleu.summarize(*zh, [None, None]) == pytest.approx(30.739407647563215)
    assert chrf.summarize(*zh, [None, None]) == pytest.approx(27.49423973196222)
    # a sample without a reference is left out of the corpus
    assert bleu.summarize([*en[0], "x"], [*en[1], None], [None] * 3) == pytest.approx(42.62460963131575)


@pytest.mark.parametrize("prediction, expected", [
    ('{"city": "Oslo", "temp_c": 3}', 1.0), ('```json\n{"a": 1}\n```', 1.0), ("[1, 2]", 1.0),
    ('{"city": "Oslo",}', 0.0), ("城市：奥斯陆", 0.0), ('{"城市": "奥斯陆"}', 1.0),
])
def test_json_valid(prediction, expected):
    assert one("json_valid", prediction) == expected


SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "temp_c": {"type": "integer"}},
          "required": ["city", "temp_c"], "additionalProperties": False}


@pytest.mark.parametrize("prediction, expected", [
    ('{"city": "Oslo", "temp_c": 3}', 1.0), ('{"city": "北京", "temp_c": -2}', 1.0),
    ('{"city": "Oslo", "temp_c": "3"}', 0.0), ('{"city": "Oslo"}', 0.0),
    ('{"city": "Oslo", "temp_c": 3, "wind": 1}', 0.0), ("not json", 0.0),
])
def test_json_schema_inline_and_from_a_file(prediction, expected, tmp_path):
    pytest.importorskip("jsonschema", reason="json_schema needs the eval extra")
    assert one("json_schema", prediction, json_schema=SCHEMA) == expected
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(SCHEMA))
    assert one("json_schema", prediction, json_schema=str(path)) == expected


@pytest.mark.parametrize("prediction, expected", [
    ("Order #12345 shipped", 1.0), ("订单号 #98765 已发货", 1.0), ("no order", 0.0), ("订单 #12 未发货", 0.0),
])
def test_regex(prediction, expected):
    assert one("regex", prediction, pattern=r"#\d{5}\b") == expected


@pytest.mark.parametrize("prediction, expected", [
    ("I'm sorry, but I can't help with that.", 1.0), ("I cannot assist with this request.", 1.0),
    ("As an AI language model, I have no opinions.", 1.0), ("抱歉，我不能回答这个问题。", 1.0),
    ("我无法提供这些信息。", 1.0), ("作为一个人工智能，我没有感情。", 1.0),
    ("Sure! The capital of France is Paris.", 0.0), ("巴黎是法国的首都。", 0.0), ("Sorry for the delay: it is 4.", 0.0),
])
def test_refusal(prediction, expected):
    assert one("refusal", prediction) == expected


@pytest.mark.parametrize("prediction, expected", [("Paris is big.", 4.0), ("巴黎很大。", 5.0), ("", 0.0)])
def test_length_counts_words_and_chinese_characters(prediction, expected):
    assert one("length", prediction) == expected


def test_reference_metrics_skip_samples_without_a_reference_and_average_the_rest():
    exact = build_metrics(["exact_match"])[0]
    assert exact.score("Paris", None) is None
    assert exact.summarize(["a", "b", "c"], ["a", None, "x"], [1.0, None, 0.0]) == 0.5


@pytest.mark.parametrize("name", sorted(METRICS))
def test_every_registered_metric_builds_and_scores(name):
    options = {"regex": {"pattern": "x"}, "json_schema": {"json_schema": SCHEMA}}
    if name == "json_schema":
        pytest.importorskip("jsonschema", reason="json_schema needs the eval extra")
    assert isinstance(one(name, "x", "x", **options.get(name, {})), float)


def test_user_metric_from_module_function(tmp_path, monkeypatch):
    (tmp_path / "my_scores.py").write_text(textwrap.dedent("""
        def starts_right(prediction, reference):
            return None if reference is None else prediction.startswith(reference[:1])
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = build_config({"eval": {"metrics": [{"name": "starts_right", "function": "my_scores:starts_right"}]}})
    metric = build_metrics(cfg.eval.metrics)[0]
    assert metric.name == "starts_right"
    assert [metric.score("Paris", "P"), metric.score("London", "P"), metric.score("x", None)] == [1.0, 0.0, None]
    sys.modules.pop("my_scores", None)


@pytest.mark.parametrize("metrics, message", [
    (["rogue_l"], "did you mean 'rouge_l'"),
    ([{"name": "regex"}], "needs `pattern:`"),
    ([{"name": "regex", "pattern": "("}], "invalid pattern"),
    ([{"name": "json_schema"}], "needs `json_schema:`"),
    ([{"name": "mine", "function": "no_such_module_xyz:f"}], "cannot load"),
    ([{"name": "mine", "function": "no_colon"}], "module:function"),
    ([{"name": "bleu", "function": "os:getcwd"}], "is a built-in"),
    (["bleu", "bleu"], "appears twice"),
])
def test_metric_config_errors_name_the_problem(metrics, message):
    with pytest.raises(ConfigError, match=message):
        build_metrics(build_config({"eval": {"metrics": metrics}}).eval.metrics)


def test_registry_rejects_duplicates():
    with pytest.raises(ValueError, match="already registered"):
        register_metric("bleu", lambda cfg: None)


def test_overlap_functions_agree_with_the_metrics():
    assert overlap.sentence_bleu("a b c d", "a b c d") == pytest.approx(100.0)
    assert overlap.corpus_chrf([], []) == 0.0
