"""PII detection and redaction. Recognizers are regular expressions plus, where the format has one,
a checksum (Chinese resident ID: ISO 7064 mod 11-2; bank cards: Luhn): a 16-digit order number that
fails Luhn is not a card, which is what keeps false positives on ordinary text low.

Actions: `mask` (same length of `*`, keeps layout), `placeholder` (`<EMAIL>`, `<PHONE>`, ...),
`drop` (the record goes, reason `pii`), `tag` (only counts into `meta.pii`).

`engine: presidio` finds the same types through Microsoft Presidio's analyzer, offline, plus the
types of presidio's pattern recognizers we lack (IBAN, US SSN, crypto wallets, ...): see
`pii_presidio.py` for what it adds and what it costs.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from pydantic import ValidationInfo, field_validator

from tuneforge.curate.base import Drop, OpConfig, register, require
from tuneforge.curate.text import map_fields, resolve_fields
from tuneforge.errors import ConfigError
from tuneforge.types import Sample

PiiType = Literal["email", "phone_cn", "phone_intl", "id_cn", "bank_card", "ip", "passport", "medical_record",
                  # found only by `engine: presidio` (pii_presidio.PRESIDIO_ONLY)
                  "iban", "crypto", "us_ssn", "us_itin", "uk_nhs", "uk_nino", "mac_address"]


@dataclass(frozen=True)
class Span:
    type: str
    start: int
    end: int
    text: str


_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def valid_cn_id(s: str) -> bool:
    """Chinese resident ID (GB 11643): 17 digits and a check character from ISO 7064 mod 11-2."""
    if len(s) != 18 or not s[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(s[:17], _ID_WEIGHTS))
    return "10X98765432"[total % 11] == s[17].upper()


def luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _digits(s: str) -> str:
    return re.sub(r"\D", "", s)


_D = r"(?<![\w.-])"  # not glued to a longer token on the left
_E = r"(?![\w-])"
RECOGNIZERS: dict[str, tuple[re.Pattern[str], Callable[[str], bool] | None]] = {
    "email": (re.compile(r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@"
                         r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"), None),
    "id_cn": (re.compile(_D + r"[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx]" + _E),
              valid_cn_id),
    "bank_card": (re.compile(_D + r"(?:\d{4}[ -]){3}\d{4}(?:[ -]?\d{1,3})?" + _E + "|" + _D + r"\d{15,19}" + _E),
                  lambda s: 15 <= len(_digits(s)) <= 19 and luhn(_digits(s))),
    "phone_cn": (re.compile(r"(?<![\w+])(?:(?:\+|00)86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}(?!\d)"), None),
    # International numbers must carry their + country code: bare digit runs are too often quantities.
    # US style (555) 123-4567 / 555-123-4567 is common enough in English data to be matched without.
    "phone_intl": (re.compile(r"(?<![\w+])\+(?!86)[1-9]\d{0,2}[ -]?(?:\(\d{1,4}\)[ -]?)?"
                              r"\d{1,4}(?:[ -]?\d{2,4}){1,4}(?!\d)"
                              r"|(?<![\w(])\(\d{3}\) ?\d{3}-\d{4}(?!\d)|(?<![\w-])\d{3}-\d{3}-\d{4}(?![\w-])"),
                   lambda s: 8 <= len(_digits(s)) <= 15),
    "ip": (re.compile(r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}"
                      r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w.])"), None),
    # Passport and medical-record numbers have no checksum; they count only next to their keyword.
    "passport": (re.compile(r"(?i:passport(?: number| no\.?)?|护照(?:号码|号)?)"
                            r"\s*(?:is|:|：|#)?\s*([A-Z]{1,2}\d{6,9})\b"), None),
    "medical_record": (re.compile(r"(?i:medical record (?:number|no\.?)|MRN|病历号|病案号|住院号)"
                                  r"\s*(?:is|:|：|#)?\s*([A-Za-z]{0,3}\d{5,12})\b"), None),
}
PLACEHOLDERS = {"email": "<EMAIL>", "phone_cn": "<PHONE>", "phone_intl": "<PHONE>", "id_cn": "<ID>",
                "bank_card": "<BANK_CARD>", "ip": "<IP>", "passport": "<PASSPORT>",
                "medical_record": "<MEDICAL_RECORD>"}
# Which recognizer wins where two overlap: a valid ID number is not also a bank card or a phone.
_PRIORITY = ["email", "id_cn", "bank_card", "medical_record", "passport", "phone_cn", "phone_intl", "ip"]


def find(pattern: re.Pattern[str], check: Callable[[str], bool] | None, text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, text) of one recognizer's matches that pass its checksum."""
    for m in pattern.finditer(text):
        g = 1 if m.lastindex else 0  # keyword recognizers redact the number, not the keyword
        if check is None or check(m.group(g)):
            yield m.start(g), m.end(g), m.group(g)


def recognizers(types: list[str], patterns: dict[str, re.Pattern[str]] | None = None
                ) -> list[tuple[str, re.Pattern[str], Callable[[str], bool] | None]]:
    """(type, pattern, check) of the selected built-in types in priority order, then the user's patterns."""
    return ([(t, *RECOGNIZERS[t]) for t in _PRIORITY if t in types]
            + [(t, p, None) for t, p in (patterns or {}).items()])


def first_wins(candidates: Iterable[Span]) -> list[Span]:
    """Non-overlapping spans, sorted by position: where spans overlap, the earlier candidate wins."""
    found: list[Span] = []
    for sp in candidates:
        if not any(sp.start < f.end and f.start < sp.end for f in found):
            found.append(sp)
    return sorted(found, key=lambda sp: sp.start)


def detect(text: str, types: list[str], patterns: dict[str, re.Pattern[str]] | None = None) -> list[Span]:
    """Non-overlapping PII spans, sorted by position."""
    return first_wins(Span(t, s, e, found) for t, pattern, check in recognizers(types, patterns)
                      for s, e, found in find(pattern, check, text))


@register
class Pii(OpConfig):
    """Detect and redact personal data."""

    op: Literal["pii"] = "pii"
    engine: Literal["builtin", "presidio"] = "builtin"
    """`builtin`: our regexes and checksums; `presidio`: the same plus presidio's pattern recognizers
    (IBAN, US SSN, crypto, ...), run by presidio's analyzer without any NLP model (`pii_presidio.py`)."""
    types: list[PiiType] | None = None
    """Types to find; default: every type the engine knows."""
    action: Literal["mask", "placeholder", "drop", "tag"] = "placeholder"
    patterns: dict[str, str] = {}
    """Your own recognizers, `NAME: regex` (e.g. employee ids); placeholder `<NAME>`."""

    @field_validator("types")
    @classmethod
    def _engine_knows(cls, types: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if info.data.get("engine") == "builtin" and (other := [t for t in types or [] if t not in PLACEHOLDERS]):
            raise ValueError(f"{other[0]!r} is found only by `engine: presidio`")
        return types

    def build(self) -> _PiiOp:
        return _PiiOp(self)


class _PiiOp:
    def __init__(self, cfg: Pii):
        self.cfg, self.name, self.fields = cfg, cfg.label, resolve_fields(cfg.fields)
        try:
            patterns = {k: re.compile(v) for k, v in cfg.patterns.items()}
        except re.error as e:
            raise ConfigError(f"{cfg.label}.patterns: {e}") from None
        if cfg.engine == "presidio":
            require("presidio_analyzer", "the presidio PII engine")
            from tuneforge.curate.pii_presidio import PRESIDIO_ONLY, PresidioDetector

            types = [*PLACEHOLDERS, *PRESIDIO_ONLY] if cfg.types is None else cfg.types
            self.detect: Callable[[str], list[Span]] = PresidioDetector(types, patterns)
        else:
            types = list(PLACEHOLDERS) if cfg.types is None else cfg.types
            self.detect = lambda text: detect(text, types, patterns)

    def __call__(self, sample: Sample) -> Sample | Drop:
        hits: Counter[str] = Counter()

        def redact(text: str) -> str:
            spans = self.detect(text)
            hits.update(sp.type for sp in spans)
            if self.cfg.action in ("drop", "tag"):
                return text
            out, last = [], 0
            for sp in spans:
                repl = ("*" * (sp.end - sp.start) if self.cfg.action == "mask"
                        else PLACEHOLDERS.get(sp.type, f"<{sp.type.upper()}>"))
                out += [text[last:sp.start], repl]
                last = sp.end
            return "".join(out) + text[last:]

        new = map_fields(sample, self.fields, redact)
        if not hits:
            return sample
        if self.cfg.action == "drop":
            return Drop("pii", ", ".join(f"{t}={n}" for t, n in sorted(hits.items())))
        base = new if new is not sample else dataclasses.replace(sample)
        return dataclasses.replace(base, meta={**sample.meta, "pii": dict(sorted(hits.items()))})
