"""The metric registry: every metric scores one prediction against its reference, and summarises a
whole eval set (a mean, or a corpus score from summed statistics for BLEU and chrF).

Built-ins are registered here by name; users add theirs with `register_metric` in Python, or in a
config as `{name: my_metric, function: "my_pkg.scores:my_metric"}`, a function
`(prediction: str, reference: str | None) -> float | bool | None` (None: not applicable to this sample).
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneforge.config import MetricConfig
from tuneforge.errors import ConfigError, MissingDependency
from tuneforge.eval import overlap
from tuneforge.settings import did_you_mean
from tuneforge.text import normalise, tokens


@dataclass(frozen=True)
class Metric:
    name: str
    score: Callable[[str, str | None], float | None]
    """One sample's value; None when the metric does not apply (e.g. no reference)."""
    corpus: Callable[[Sequence[str], Sequence[str]], float] | None = None
    """A corpus-level score from all predictions and references; default: the mean of the values."""
    needs_reference: bool = True

    def summarize(self, predictions: Sequence[str], references: Sequence[str | None],
                  values: Sequence[float | None]) -> float | None:
        if self.corpus is not None:
            pairs = [(p, r) for p, r in zip(predictions, references) if r is not None]
            return self.corpus([p for p, _ in pairs], [r for _, r in pairs]) if pairs else None
        present = [v for v in values if v is not None]
        return sum(present) / len(present) if present else None


MetricFactory = Callable[[MetricConfig], Metric]
METRICS: dict[str, MetricFactory] = {}


def register_metric(name: str, factory: MetricFactory) -> None:
    """Add a metric under `name`; a second one with the same name is a bug, not an override."""
    if name in METRICS:
        raise ValueError(f"a metric named '{name}' is already registered")
    METRICS[name] = factory


def _with_reference(fn: Callable[[str, str], float]) -> Callable[[str, str | None], float | None]:
    return lambda prediction, reference: None if reference is None else fn(prediction, reference)


def _simple(name: str, fn: Callable[[str, str], float], corpus=None) -> None:
    register_metric(name, lambda cfg: Metric(cfg.name, _with_reference(fn), corpus))


def _reference_free(name: str, fn: Callable[[str], float]) -> None:
    register_metric(name, lambda cfg: Metric(cfg.name, lambda p, r: fn(p), needs_reference=False))


# --- built-ins ---------------------------------------------------------------------------------

_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```$", re.DOTALL)


def parse_json_answer(text: str) -> Any:
    """The JSON value of an answer, allowing one surrounding markdown code fence; raises ValueError."""
    text = text.strip()
    fenced = _FENCE.match(text)
    return json.loads(fenced.group(1) if fenced else text)


def _json_valid(prediction: str) -> float:
    try:
        parse_json_answer(prediction)
    except ValueError:
        return 0.0
    return 1.0


def _json_schema(cfg: MetricConfig) -> Metric:
    try:
        import jsonschema
    except ImportError as e:
        raise MissingDependency("jsonschema", "eval", "the json_schema metric") from e

    schema = cfg.json_schema
    if schema is None:
        raise ConfigError(f"metric '{cfg.name}': needs `json_schema:` (inline or a .json file)")
    if isinstance(schema, str):
        try:
            schema = json.loads(Path(schema).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ConfigError(f"metric '{cfg.name}': schema {schema}: {e}") from None
    validator = jsonschema.Draft202012Validator(schema)

    def score(prediction: str, reference: str | None) -> float:
        try:
            value = parse_json_answer(prediction)
        except ValueError:
            return 0.0
        return float(validator.is_valid(value))

    return Metric(cfg.name, score, needs_reference=False)


def _regex(cfg: MetricConfig) -> Metric:
    if not cfg.pattern:
        raise ConfigError(f"metric '{cfg.name}': needs `pattern:`")
    try:
        pattern = re.compile(cfg.pattern)
    except re.error as e:
        raise ConfigError(f"metric '{cfg.name}': invalid pattern {cfg.pattern!r}: {e}") from None
    return Metric(cfg.name, lambda p, r: float(bool(pattern.search(p))), needs_reference=False)


REFUSAL = re.compile(
    r"\b(I\s*(?:'m| am)\s*(?:sorry|unable|not able)|I\s*(?:can\s*not|can't|cannot|won't|will not)\s+"
    r"(?:help|assist|provide|do|answer|comply|fulfil)|as an ai\b|I\s*(?:must|have to) (?:decline|refuse))"
    r"|抱歉|对不起|我(?:不能|无法|不可以|不会)(?:帮|提供|回答|协助|满足)|作为(?:一个)?(?:AI|人工智能)",
    re.IGNORECASE)
"""English and Chinese refusal phrasings; the refusal rate is the share of answers containing one."""

_simple("exact_match", lambda p, r: float(normalise(p, answer=True) == normalise(r, answer=True)))
_simple("contains", lambda p, r: float(normalise(r, answer=True) in normalise(p, answer=True)))
_simple("rouge_l", overlap.rouge_l)
_simple("bleu", overlap.sentence_bleu, overlap.corpus_bleu)
_simple("chrf", overlap.sentence_chrf, overlap.corpus_chrf)
_reference_free("json_valid", _json_valid)
_reference_free("refusal", lambda p: float(bool(REFUSAL.search(p))))
_reference_free("length", lambda p: float(len(tokens(p))))
register_metric("json_schema", _json_schema)
register_metric("regex", _regex)


def _user_function(cfg: MetricConfig) -> Metric:
    module_name, _, attr = (cfg.function or "").partition(":")
    if not module_name or not attr:
        raise ConfigError(f"metric '{cfg.name}': function must be 'module:function', got {cfg.function!r}")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"metric '{cfg.name}': cannot load {cfg.function}: {e}") from None

    def score(prediction: str, reference: str | None) -> float | None:
        value = fn(prediction, reference)
        return None if value is None else float(value)

    return Metric(cfg.name, score, needs_reference=False)


def build_metrics(configs: Sequence[MetricConfig | str]) -> list[Metric]:
    """Metrics by config, checking names: a misspelt one names the closest registered metric."""
    out: list[Metric] = []
    for cfg in configs:
        cfg = MetricConfig.model_validate(cfg) if isinstance(cfg, str) else cfg
        if cfg.function:
            if cfg.name in METRICS:
                raise ConfigError(f"metric '{cfg.name}' with a function: that name is a built-in; choose another")
            out.append(_user_function(cfg))
        elif cfg.name in METRICS:
            out.append(METRICS[cfg.name](cfg))
        else:
            raise ConfigError(f"unknown metric '{cfg.name}'; {did_you_mean(cfg.name, METRICS, 'metrics')}")
    names = [m.name for m in out]
    if len(set(names)) != len(names):
        raise ConfigError(f"metrics: a name appears twice in {names}")
    return out
