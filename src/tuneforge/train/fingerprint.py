"""What shapes a run, and which of it may change when the run is resumed.

A fingerprint is the flat `section.key → value` view of the config (with the data files' hashes)
stored in every checkpoint. Resuming compares it with the current config: a checkpoint is the middle
of one particular run, and continuing it under another batch size, cutoff, data or LoRA rank would
silently train something that no config describes. Three kinds of keys:

- free: they decide what is written, never what is learnt (how often to log or save); a change is
  recorded and applied;
- allowable: they change the rest of the run in a well-defined way (the peak learning rate, the
  length of the run, evaluation); they need `--allow-config-change KEY`;
- fixed: everything else; a new run is the only honest way to change them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from tuneforge.config import Config
from tuneforge.errors import ConfigError, TuneforgeError

# Not part of the fingerprint: where the run is written and how it is found, not what it trains.
IGNORED = {"train.output_dir", "train.resume", "data.rejects_path", "model.allow_download"}

FREE = {"train.save_every", "train.log_every", "train.keep_last"}

ALLOWABLE = {
    "train.learning_rate": "the rest of the schedule keeps its shape, scaled to the new peak",
    "train.max_steps": "the schedule is recomputed for the new length from the resumed step",
    "train.epochs": "the schedule is recomputed for the new length from the resumed step",
    "train.eval_every": "evaluation and keep-best follow the new interval",
    "train.early_stopping_patience": "early stopping counts against the new patience",
    "eval.datasets": "later evaluations (and keep-best) use the new validation set",
    "train.gradient_checkpointing": "memory for speed; the same numbers",
    "train.loss_chunk_size": "memory for speed; the same numbers up to rounding",
    "train.mixed_precision": "later steps round differently",
    "model.device": "later steps run (and round) on the new device",
}

_DATA = "it decides which samples each step sees"
_WEIGHTS = "the checkpoint's weights and optimizer state belong to it"
_SCHEDULE = "it is part of the optimisation the checkpoint is in the middle of"


def _reason(key: str) -> str:
    if key.startswith(("data.", "template.")) or key in (
            "train.batch_size", "train.grad_accum", "train.packing", "train.val_size", "train.stage"):
        return _DATA
    if key == "train.seed":
        return "it decides the shuffle and every random draw"
    if key.startswith(("method.", "model.")):
        return _WEIGHTS
    return _SCHEDULE


def _flatten(tree: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(tree, dict) and tree:
        for k, v in tree.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    else:
        out[prefix] = tree


def fingerprint(cfg: Config) -> dict[str, Any]:
    from tuneforge.train.manifest import data_hashes

    tree = cfg.model_dump(mode="json")
    flat: dict[str, Any] = {}
    for section in ("model", "data", "template", "method", "train"):
        _flatten(tree[section], section, flat)
    flat["eval.datasets"] = tree["eval"]["datasets"]
    for path, sha in data_hashes(list(cfg.data.datasets) + list(cfg.data.replay)).items():
        flat[f"data.sha256 of {path}"] = sha
    return {k: v for k, v in flat.items() if k not in IGNORED}


def _show(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12]  # a file hash
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (list, dict)) else str(value)


DATASET_LISTS = ("data.datasets", "data.replay", "eval.datasets")


def defaults(method: str | None) -> dict[str, Any]:
    """The fingerprint's keys at their defaults (the method's settings for `method`), and under
    `DATASET_LISTS` one dataset entry's defaults."""
    from tuneforge.config import DataConfig, DatasetConfig, ModelConfig, TrainConfig
    from tuneforge.settings import TemplateConfig

    sections: dict[str, Any] = {"model": ModelConfig(), "data": DataConfig(), "template": TemplateConfig(),
                                "train": TrainConfig()}
    if method is not None:
        from tuneforge.methods import method_config

        try:
            sections["method"] = method_config({"name": method})
        except ConfigError:  # a method this version lacks has no defaults to offer
            pass
    flat: dict[str, Any] = {}
    for name, section in sections.items():
        _flatten(section.model_dump(mode="json"), name, flat)
    entry = DatasetConfig(path="-").model_dump(mode="json")
    entry.pop("path")
    flat.update(dict.fromkeys(DATASET_LISTS, entry))
    return flat


_ABSENT = object()


def _same(key: str, old: Any, new: Any, default: dict[str, Any]) -> bool:
    """`old` (`_ABSENT`: a key the checkpoint's version did not have) and `new` describe the same
    run: equal, or differing only by keys added since, at their defaults."""
    if old is _ABSENT:
        return key in default and new == default[key]
    if key in DATASET_LISTS and isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        entry = default[key]
        return all(isinstance(o, dict) and isinstance(n, dict)
                   and {**{k: v for k, v in n.items() if k not in o and k in entry and v == entry[k]}, **o} == n
                   for o, n in zip(old, new))
    return old == new


def config_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """`key → (old, new)` for every fingerprinted key whose value differs. A key the checkpoint lacks
    (one added to the config since it was written) is no change while it holds its default: the
    checkpoint's run had that behaviour, before it had a name."""
    keys = [k for k in sorted(set(old) | set(new)) if k not in IGNORED and old.get(k) != new.get(k)]
    if not keys:
        return {}
    default = defaults(new.get("method.name"))
    return {k: (old.get(k), new.get(k)) for k in keys if not _same(k, old.get(k, _ABSENT), new.get(k), default)}


def check_resume(changes: dict[str, tuple[Any, Any]], allowed: Iterable[str], *, checkpoint: str,
                 step: int) -> None:
    """Refuse a resume whose config changes more than the free keys and the allowed allowable ones;
    the error lists every change `key: old → new` with what to do about it."""
    allowed = set(allowed)
    unknown = allowed - FREE - set(ALLOWABLE) - {k for k in changes}
    problems = []
    for key, (old, new) in changes.items():
        change = f"{key}: {_show(old)} → {_show(new)}"
        if key == "train.max_steps" and new is not None and new < step:
            problems.append(f"{change} (the checkpoint is at step {step} already)")
        elif key in ALLOWABLE and key not in allowed:
            problems.append(f"{change} (allow with --allow-config-change {key}: {ALLOWABLE[key]})")
        elif key not in ALLOWABLE and key not in FREE:
            fixed = "cannot change, even when allowed" if key in allowed else "cannot change"
            problems.append(f"{change} ({fixed}: {_reason(key)})")
    if unknown:
        problems.append(f"--allow-config-change {', '.join(sorted(unknown))}: not a key that may change on resume "
                        f"(those are {', '.join(sorted(ALLOWABLE))})")
    if problems:
        fresh = any("cannot change" in p for p in problems)
        raise TuneforgeError(f"cannot resume from {checkpoint} (step {step}) with this config: "
                             + "; ".join(problems)
                             + ("; to change fixed keys, start a new run (another train.output_dir)" if fresh else ""))
