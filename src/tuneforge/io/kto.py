"""KTO labels: whether a chat sample's last reply is desirable (`true`) or not (`false`).

A record carries its label in a `label` column beside its messages, in any chat format: messages +
`label` (what `tuneforge data from-feedback --as kto` and `review export --as kto` write), or
LLaMA-Factory's kto format, whose `dataset_info.json` names the column as `kto_tag` (read here as
`columns: {label: <column>}`). The parsed label is kept in `Sample.meta["label"]`; the column itself
stays in `meta["extra"]`, so writers give the record back unchanged.

A dataset that names its label column (`columns: {label: ...}`) must label every record. Without
one, a `label` column is read only where it holds a boolean: a chat set may have a `label` column
of its own (a class name) and still train with `sft`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tuneforge.io.report import BadRecord
from tuneforge.types import Sample

LABEL = "label"
_WORDS = {"true": True, "false": False}


def record_label(record: Mapping[str, Any], columns: Mapping[str, str]) -> bool | None:
    """The record's KTO label, None where it has none; a BadRecord for a declared label that is
    missing or not a boolean (`true` / `false`, also as strings, as csv files hold them)."""
    declared = LABEL in columns
    column = columns.get(LABEL, LABEL)
    value = record.get(column)
    label = _as_bool(value)
    if label is None and declared:
        name = f"'{LABEL}'" if column == LABEL else f"'{LABEL}' (column '{column}')"
        if value is None:
            raise BadRecord(f"missing required field {name}", "a KTO record needs a label: true or false")
        raise BadRecord(f"bad {LABEL}", f"{name} must be true or false, got {value!r}")
    return label


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _WORDS.get(value.strip().lower())
    return None


def sample_label(sample: Sample) -> bool | None:
    """The label `record_label` read for this sample, or None."""
    label = sample.meta.get(LABEL)
    return label if isinstance(label, bool) else None


def missing_label(sample: Sample) -> str | None:
    """Why `sample` has no KTO label (`no label`, or what its label column holds instead); None when it has one."""
    if sample_label(sample) is not None:
        return None
    held = (sample.meta.get("extra") or {}).get(LABEL)
    return "no label" if held is None else f"label {held!r}, not true or false"


BALANCE = (1.0, 4 / 3)
"""The range of λ_D·n_D / (λ_U·n_U) the KTO paper recommends (n: the examples of each class)."""


def balance_advice(n_desirable: int, n_undesirable: int, desirable_weight: float,
                   undesirable_weight: float) -> str | None:
    """What to set when the weighted classes are out of balance; None when they are in it (or a class
    is missing, which is an error of its own)."""
    if not n_desirable or not n_undesirable:
        return None
    ratio = desirable_weight * n_desirable / (undesirable_weight * n_undesirable)
    if BALANCE[0] <= ratio <= BALANCE[1]:
        return None
    lo, hi = (b * undesirable_weight * n_undesirable / n_desirable for b in BALANCE)
    return (f"{n_desirable} desirable and {n_undesirable} undesirable examples with weights {desirable_weight:g} "
            f"and {undesirable_weight:g} give λ_D·n_D / (λ_U·n_U) = {ratio:.2f}, outside the recommended "
            f"[1, 1.33]: with train.kto_undesirable_weight {undesirable_weight:g}, set train.kto_desirable_weight "
            f"between {lo:.2f} and {hi:.2f}")
