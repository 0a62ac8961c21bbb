"""Matching against reference files: decontamination against an eval set, and cross-dataset dedup
against a dataset curated earlier. The same shingling, MinHash LSH and exact-Jaccard check as
near-dedup, but the reference is fixed, so this is a record operator: every worker indexes the
references once and then judges each record on its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from tuneforge.curate import minhash as mh
from tuneforge.curate.base import Drop, register
from tuneforge.curate.dedup import MinHashParams
from tuneforge.curate.text import Field, joined_text, resolve_fields
from tuneforge.errors import ConfigError
from tuneforge.types import Sample


@register
class ReferenceDedup(MinHashParams):
    """Drop records whose selected text is a near-copy (Jaccard of shingle sets >= `threshold`) of a
    record in `references`: an eval set (decontamination; name it e.g. `decontaminate`) or another
    dataset (cross-dataset dedup). The rejects detail names the reference record's file:line."""

    op: Literal["reference_dedup"] = "reference_dedup"
    references: list[Path]
    """Files, folders or globs in any format the readers take."""
    format: str = "auto"
    """Reader format of the references (alpaca, sharegpt, messages, text, preference, tuneforge)."""
    reference_fields: list[Field] = ["all"]
    """Which parts of a reference record are compared with the record's `fields`."""

    def build(self) -> _ReferenceDedup:
        return _ReferenceDedup(self)


class _ReferenceDedup:
    reason = "matches_reference"

    def __init__(self, cfg: ReferenceDedup):
        from tuneforge.curate.recipe import read_dataset

        self.cfg, self.name, self.fields = cfg, cfg.label, resolve_fields(cfg.fields)
        self.lsh = cfg.lsh()
        ref_fields = resolve_fields(cfg.reference_fields)
        refs = [s for path in cfg.references for s in read_dataset(path, cfg.format)]
        if not refs:
            raise ConfigError(f"{cfg.label}.references: no records in {', '.join(map(str, cfg.references))}")
        self.wheres = [s.where for s in refs]
        self.shingles, bands = self.lsh.sketch([joined_text(s, ref_fields) for s in refs])
        # every (band hash, reference) sorted by hash: a record's band hashes find their references
        # by binary search, with no per-reference Python object
        valid = np.flatnonzero(self.shingles.sizes() > 0)
        keys = bands[valid].ravel()
        order = np.argsort(keys, kind="stable")
        self.keys, self.owner = keys[order], np.repeat(valid, bands.shape[1])[order]

    def __call__(self, sample: Sample) -> Sample | Drop:
        sh, bands = self.lsh.sketch([joined_text(sample, self.fields)])
        doc = sh.doc(0)
        if not len(doc):
            return sample
        lo = np.searchsorted(self.keys, bands[0], side="left")
        hi = np.searchsorted(self.keys, bands[0], side="right")
        cands = np.unique(np.concatenate([self.owner[a:b] for a, b in zip(lo, hi) if b > a] or [np.zeros(0, np.int64)]))
        cands = cands[mh.may_reach(self.shingles.sizes()[cands], len(doc), self.cfg.threshold)]
        best, score = -1, 0.0
        for j in cands.tolist():  # ascending, so ties go to the first reference
            sim = mh.jaccard(doc, self.shingles.doc(j))
            if sim >= self.cfg.threshold and sim > score:
                best, score = j, sim
        if best < 0:
            return sample
        return Drop(self.reason, f"{self.wheres[best]} (jaccard {score:.2f})")
