"""`engine: presidio` of the `pii` operator: one Microsoft Presidio `AnalyzerEngine` runs our recognizers
and presidio's pattern recognizers for what we lack, offline.

- No NLP model: the analyzer gets presidio's `NoOpNlpEngine`, so no spaCy pipeline is loaded or
  downloaded. The price: presidio's context words ("ssn", "passport") cannot raise a score, so its
  context-only recognizers (US passport, driver licence, bank account, ...) are left out.
- Our recognizers are wrapped as presidio recognizers (same regexes, same checksums, score 1.0), so they
  find exactly what they find in the builtin engine; presidio's credit-card and IP recognizers are
  registered under our `bank_card` and `ip` types, where they add Amex-style 4-6-5 card groups and IPv6
  (presidio's IPv4 pattern is left out: it takes `1.2.3.4` out of a version `1.2.3.4.5`).
- Presidio's analyzer removes a span contained in another of the same type; across types it keeps
  both (that merge lives in presidio-anonymizer, which we do not use), so overlaps are settled as the
  builtin engine settles them: our types in their priority order, then the user's patterns, then
  presidio's types by score.
- Left out on purpose: `EmailRecognizer` (its tldextract check fetches the public suffix list from
  the internet on first use; ours finds emails), `PhoneRecognizer` (on the clean alpaca sets it flagged
  decimals, years and `333333`, and costs ~1.6 ms a text), `UrlRecognizer` (flags `System.out.pr`;
  the `urls` operator handles links), `DateRecognizer` (dates alone are not personal data).

Measured on the labelled alpaca en+zh set (tests/curate/test_labelled_quality.py): on our types the
same recall as the builtin engine (1.0 per type) and the same clean texts flagged (3 of 2000, all
example contact data); presidio's recognizers flag none of the rest, and find 100% of injected IBANs,
SSNs, wallets, NHS numbers and MAC addresses. The cost: ~3x the time per text (1.4 ms against 0.43)
and importing presidio and spaCy (4-15 s on a shared 2-core machine) once per worker. The gain is the
added types, not better detection of ours.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from presidio_analyzer import (
    AnalyzerEngine,
    EntityRecognizer,
    RecognizerRegistry,
    RecognizerResult,
    predefined_recognizers,
)
from presidio_analyzer.nlp_engine import NlpArtifacts, NoOpNlpEngine

from tuneforge.curate.pii import Span, find, first_wins, recognizers
from tuneforge.errors import ConfigError

# our type -> presidio's recognizer class: checksum-validated or distinctive formats that score >= 0.5
# without context words, and flagged nothing on the clean alpaca en+zh sets.
PRESIDIO_ONLY = {"iban": "IbanRecognizer", "crypto": "CryptoRecognizer", "us_ssn": "UsSsnRecognizer",
                 "us_itin": "UsItinRecognizer", "uk_nhs": "NhsRecognizer", "uk_nino": "UkNinoRecognizer",
                 "mac_address": "MacAddressRecognizer"}
EXTENDS = {"bank_card": "CreditCardRecognizer", "ip": "IpRecognizer"}
MIN_SCORE = 0.5
"""Presidio's weak patterns (a bare 9-digit SSN: 0.05, `::` as IPv6: 0.1) only count with context
words, which no NLP engine means never."""
LANGUAGE = "en"
"""Presidio files recognizers by language; ours and these patterns read any language, so every text is
analysed as `en`."""


class TuneforgeRecognizer(EntityRecognizer):
    """One of our recognizers (or a user pattern) as a presidio recognizer: same matches, score 1.0."""

    def __init__(self, type_: str, pattern: re.Pattern[str], check: Callable[[str], bool] | None):
        self.pattern, self.check = pattern, check
        super().__init__(supported_entities=[type_], name=f"tuneforge_{type_}", supported_language=LANGUAGE)

    def load(self) -> None:
        pass

    def analyze(self, text: str, entities: list[str],
                nlp_artifacts: NlpArtifacts | None = None) -> list[RecognizerResult]:
        t = self.supported_entities[0]
        return [RecognizerResult(t, s, e, 1.0) for s, e, _ in find(self.pattern, self.check, text)]


def _presidio_recognizer(type_: str, cls_name: str) -> EntityRecognizer:
    cls = getattr(predefined_recognizers, cls_name)
    kwargs = {}
    if cls_name == "IpRecognizer":  # IPv6 only: ours does IPv4 without taking `1.2.3.4` of `1.2.3.4.5`
        kwargs["patterns"] = [p for p in cls.PATTERNS if p.name != "IPv4"]
    return cls(supported_entity=type_, supported_language=LANGUAGE, **kwargs)


class PresidioDetector:
    """text -> non-overlapping spans, like `pii.detect`, from one presidio analyzer."""

    def __init__(self, types: list[str], patterns: dict[str, re.Pattern[str]]):
        ours = recognizers(types, patterns)
        wrapped: list[EntityRecognizer] = [TuneforgeRecognizer(*r) for r in ours]
        wrapped += [_presidio_recognizer(t, cls) for t, cls in {**EXTENDS, **PRESIDIO_ONLY}.items() if t in types]
        if not wrapped:  # an empty registry makes presidio load all its defaults, tldextract included
            raise ConfigError("pii: engine presidio has nothing to find: give `types` or `patterns`")
        nlp = NoOpNlpEngine(models=[{"lang_code": LANGUAGE, "model_name": "none"}])
        registry = RecognizerRegistry(recognizers=wrapped, supported_languages=[LANGUAGE])
        self.analyzer = AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=[LANGUAGE])
        self.rank = {t: i for i, (t, _, _) in enumerate(ours)}

    def __call__(self, text: str) -> list[Span]:
        results = self.analyzer.analyze(text, language=LANGUAGE, score_threshold=MIN_SCORE)
        # the builtin engine's order: ours by priority, the user's patterns, then presidio's by score
        results.sort(key=lambda r: (self.rank.get(r.entity_type, len(self.rank)), -r.score, r.start))
        return first_wins(Span(r.entity_type, r.start, r.end, text[r.start:r.end]) for r in results)
