"""An encoded sample as the model sees it, for people to read: `data show` and the workbench's Data page
mark which text carries loss."""

from __future__ import annotations

from typing import Any

from tuneforge.constants import IGNORE
from tuneforge.formatting.encode import EncodedLM, EncodedPair


def trained_runs(tokenizer: Any, ids: list[int], labels: list[int]) -> list[tuple[str, bool]]:
    """`(text, trained)` runs of tokens with and without a loss, each decoded as a whole (not a token at a
    time), so that characters split across tokens stay whole."""
    runs, start = [], 0
    for end in range(1, len(ids) + 1):
        if end == len(ids) or (labels[end] != IGNORE) != (labels[start] != IGNORE):
            runs.append((tokenizer.decode(ids[start:end]), labels[start] != IGNORE))
            start = end
    return runs


def labelled_parts(enc: EncodedLM | EncodedPair) -> list[tuple[str, list[int], list[int]]]:
    """`(name, ids, labels)` of each sequence an encoded sample trains on: one unnamed sequence, or a
    preference pair's prompt (never trained), chosen and rejected replies."""
    if isinstance(enc, EncodedPair):
        return [("prompt", enc.prompt_ids, [IGNORE] * len(enc.prompt_ids)),
                ("chosen", enc.chosen_ids, enc.chosen_labels), ("rejected", enc.rejected_ids, enc.rejected_labels)]
    return [("", enc.input_ids, enc.labels)]
