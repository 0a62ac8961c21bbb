"""Cleaning operators: they rewrite text and never drop a record (an emptied record is the job of
the `answer` / `length` filters that usually follow)."""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Callable
from typing import Literal

from tuneforge.curate.base import OpConfig, register, require
from tuneforge.curate.text import map_fields, resolve_fields
from tuneforge.types import Sample


class _TextMap:
    """A record operator that applies one str -> str function to the selected fields."""

    def __init__(self, cfg: OpConfig, fn: Callable[[str], str]):
        self.name = cfg.label
        self.fields = resolve_fields(cfg.fields)
        self.fn = fn

    def __call__(self, sample: Sample) -> Sample:
        return map_fields(sample, self.fields, self.fn)


# Full-width punctuation (，！？：；（）) is correct in Chinese text, but NFKC folds it to ASCII.
# Protect it by swapping to private-use code points around the normalisation.
_FW_PUNCT = [c for c in map(chr, range(0xFF01, 0xFF5F)) if not c.isalnum()]
_PROTECT = str.maketrans({c: chr(0xE000 + i) for i, c in enumerate(_FW_PUNCT)})
_UNPROTECT = str.maketrans({chr(0xE000 + i): c for i, c in enumerate(_FW_PUNCT)})


@register
class NormalizeUnicode(OpConfig):
    """Unicode normalisation, with optional mojibake repair (ftfy)."""

    op: Literal["normalize_unicode"] = "normalize_unicode"
    form: Literal["NFC", "NFKC", "NFD", "NFKD"] = "NFKC"
    keep_fullwidth_punctuation: bool = True
    """Keep ，！？ etc. as they are under NFKC (it would turn them into ASCII , ! ?)."""
    fix_mojibake: bool = False
    """Repair text decoded with the wrong codec ("doesnâ€™t" -> "doesn't"); needs ftfy."""

    def build(self) -> _TextMap:
        fix = require("ftfy", "mojibake repair").fix_text if self.fix_mojibake else None
        keep = self.keep_fullwidth_punctuation and self.form in ("NFKC", "NFKD")

        def normalise(text: str) -> str:
            if fix is not None:
                text = fix(text, normalization=None)
            if keep:
                return unicodedata.normalize(self.form, text.translate(_PROTECT)).translate(_UNPROTECT)
            return unicodedata.normalize(self.form, text)

        return _TextMap(self, normalise)


_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None)
_SPACES = re.compile(r"[\t\u00a0\u2000-\u200a\u202f\u205f\u3000]")
_RUNS = re.compile(r"(?<=\S) {2,}")  # inside a line only: leading indentation is code structure
_TRAILING = re.compile(r"[ \t]+$", re.M)


@register
class NormalizeWhitespace(OpConfig):
    """Line endings to \\n, odd spaces to ' ', zero-width characters removed, space runs inside a line
    collapsed (indentation kept), trailing spaces dropped, blank-line runs capped, ends stripped."""

    op: Literal["normalize_whitespace"] = "normalize_whitespace"
    max_blank_lines: int = 1
    collapse_spaces: bool = True
    tabs_to_spaces: bool = False
    """Tabs are kept by default: they carry meaning in code and TSV answers."""

    def build(self) -> _TextMap:
        blank = re.compile(rf"\n{{{self.max_blank_lines + 2},}}")
        keep_nl = "\n" * (self.max_blank_lines + 1)
        spaces = _SPACES if self.tabs_to_spaces else re.compile(_SPACES.pattern.replace("\\t", ""))

        def normalise(text: str) -> str:
            text = text.replace("\r\n", "\n").replace("\r", "\n").translate(_ZERO_WIDTH)
            text = spaces.sub(" ", text)
            if self.collapse_spaces:
                text = _RUNS.sub(" ", text)
            text = blank.sub(keep_nl, _TRAILING.sub("", text))
            return text.strip()

        return _TextMap(self, normalise)


URL_RE = re.compile(r"\b(?:https?://|ftp://|www\.)[^\s<>\"'，。！？）)\]]+[^\s<>\"'，。！？）)\].,;:!?]", re.I)


@register
class Urls(OpConfig):
    """Remove URLs, or mask them with a placeholder."""

    op: Literal["urls"] = "urls"
    mode: Literal["remove", "mask"] = "mask"
    placeholder: str = "<URL>"

    def build(self) -> _TextMap:
        repl = "" if self.mode == "remove" else self.placeholder
        return _TextMap(self, lambda t: URL_RE.sub(repl, t) if "://" in t or "www." in t else t)


# Only real HTML tag names: `List<String>` in a Java answer or `a<b>c` in maths must survive.
_TAGS = ("a abbr b blockquote body br caption center code dd div dl dt em font footer h1 h2 h3 h4 h5 "
         "h6 head header hr html i img input label li link meta nav ol p pre script section small "
         "span strong style sub sup table tbody td th thead title tr u ul").split()
_TAG_RE = re.compile(r"</?(?:" + "|".join(_TAGS) + r")(?:\s[^<>]*)?/?>", re.I)
_DROP_BLOCKS = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.I | re.S)
_BLOCK_TAGS = re.compile(r"<(?:br|/p|/div|/li|/tr|/h\d)\s*/?>", re.I)


@register
class StripHtml(OpConfig):
    """Strip HTML tags (known tag names only), drop script/style blocks, unescape entities."""

    op: Literal["strip_html"] = "strip_html"
    unescape: bool = True

    def build(self) -> _TextMap:
        def strip(text: str) -> str:
            if "<" in text:
                text = _DROP_BLOCKS.sub("", text)
                text = _TAG_RE.sub("", _BLOCK_TAGS.sub("\n", text))
            return html.unescape(text) if self.unescape and "&" in text else text

        return _TextMap(self, strip)


@register
class Lowercase(OpConfig):
    """Case folding (for pre-training corpora that want it; chat data rarely does)."""

    op: Literal["lowercase"] = "lowercase"

    def build(self) -> _TextMap:
        return _TextMap(self, str.casefold)


_FW_ALNUM = str.maketrans({chr(c): chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)
                           if chr(c).isalnum()} | {"\u3000": " "})
_FW_ALL = str.maketrans({chr(c): chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)} | {"\u3000": " "})


@register
class FullwidthToHalfwidth(OpConfig):
    """Full-width letters, digits and the ideographic space to ASCII (ＡＢＣ１２３ -> ABC123);
    punctuation too when `punctuation: true` (off by default: ，。 belong in Chinese text)."""

    op: Literal["fullwidth"] = "fullwidth"
    punctuation: bool = False

    def build(self) -> _TextMap:
        table = _FW_ALL if self.punctuation else _FW_ALNUM
        return _TextMap(self, lambda t: t.translate(table))


@register
class TraditionalToSimplified(OpConfig):
    """Traditional -> simplified Chinese with OpenCC (`t2s`; `tw2sp` / `hk2s` for regional variants)."""

    op: Literal["t2s"] = "t2s"
    config: Literal["t2s", "tw2s", "tw2sp", "hk2s"] = "t2s"
    requires = ("opencc",)

    def build(self) -> _TextMap:
        converter = require("opencc", "traditional to simplified Chinese").OpenCC(self.config)
        return _TextMap(self, converter.convert)
