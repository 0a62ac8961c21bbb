"""Safety ("value control"): user-supplied keyword blocklists, English and Chinese, matched with
Aho–Corasick so that a list of 100k terms costs one pass over the text."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import model_validator

from tuneforge.curate.base import Drop, OpConfig, register, require
from tuneforge.curate.text import CJK, field_texts, resolve_fields
from tuneforge.errors import ConfigError
from tuneforge.types import Sample


@register
class Blocklist(OpConfig):
    """Drop records containing a listed keyword (case-insensitive). Latin-script keywords match whole
    words only ("ass" does not hit "class"); CJK keywords match anywhere, having no word boundaries."""

    op: Literal["blocklist"] = "blocklist"
    keywords: list[str] = []
    files: list[Path] = []
    """Text files, one keyword per line; `#` starts a comment line."""
    requires = ("ahocorasick",)

    @model_validator(mode="after")
    def _check(self) -> Blocklist:
        if not self.keywords and not self.files:
            raise ValueError("give `keywords:` or `files:`")
        return self

    def build(self) -> _Blocklist:
        return _Blocklist(self)


class _Blocklist:
    def __init__(self, cfg: Blocklist):
        ahocorasick = require("ahocorasick", "keyword blocklists")
        self.name, self.fields = cfg.label, resolve_fields(cfg.fields)
        words = [w.strip().lower() for w in cfg.keywords]
        for f in cfg.files:
            try:
                words += [ln.strip().lower() for ln in f.read_text(encoding="utf-8").splitlines()
                          if ln.strip() and not ln.lstrip().startswith("#")]
            except OSError as e:
                raise ConfigError(f"{cfg.label}.files: {e}") from None
        self.automaton = ahocorasick.Automaton()
        for w in filter(None, words):
            self.automaton.add_word(w, w)
        self.automaton.make_automaton()

    def __call__(self, sample: Sample) -> Sample | Drop:
        for where, text in field_texts(sample, self.fields):
            low = text.lower()
            for end, word in self.automaton.iter(low):
                start = end - len(word) + 1
                if _boundary(low, start - 1, word[0]) and _boundary(low, end + 1, word[-1]):
                    return Drop("blocklist", f"{where}: {word!r}")
        return sample


def _boundary(text: str, i: int, edge: str) -> bool:
    """A keyword edge is acceptable when it is CJK, or the neighbouring character is not a letter/digit."""
    return bool(_CJK_CHAR.match(edge)) or i < 0 or i >= len(text) or not text[i].isalnum()


_CJK_CHAR = re.compile(f"[{CJK}]")
