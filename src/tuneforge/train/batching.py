"""Turning tokenised examples into micro-batches: packing without cross-contamination, or padding
with length grouping. Both orders are a pure function of (seed, epoch), so a resumed run sees exactly
the batches an uninterrupted one would."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from tuneforge.constants import IGNORE


class Example(Protocol):
    input_ids: Sequence[int]
    labels: Sequence[int]
    # Optionally `weights: Sequence[float] | None`, per-token loss weights beside the labels.


def _weights(ex: Example) -> Sequence[float] | None:
    return getattr(ex, "weights", None)


@dataclass
class Batch:
    tensors: dict[str, torch.Tensor]
    """What the loss module's forward takes: `input_ids` and `labels` (B, T); `position_ids` (B, T)
    restarting at 0 at each packed sample (no 2-D attention mask: transformers then builds a
    block-diagonal causal mask, so packed samples never attend to each other); or `attention_mask`
    (B, T) for padded batches. `weights` (B, T) float32 beside `labels` only when an example carries
    per-token loss weights (1 for the tokens of examples without)."""
    n_units: int
    """What the loss is a sum over: labelled positions (after the shift), or pairs for DPO."""
    n_tokens: int
    """Non-pad tokens, for throughput."""

    def to(self, device: torch.device) -> dict[str, torch.Tensor]:
        return {k: v.to(device) for k, v in self.tensors.items()}


def count_labels(labels: Sequence[int]) -> int:
    return sum(1 for y in labels[1:] if y != IGNORE)


def pack_rows(lengths: Sequence[int], block_size: int, seed: int) -> list[list[int]]:
    """Group example indices into rows of at most `block_size` tokens: shuffle, then first-fit
    decreasing over windows, which fills rows to ~99% without reordering data across the epoch."""
    order = list(range(len(lengths)))
    random.Random(seed).shuffle(order)
    rows: list[list[int]] = []
    window = 512
    for w in range(0, len(order), window):
        chunk = sorted(order[w:w + window], key=lambda i: -lengths[i])
        open_rows: list[tuple[int, list[int]]] = []  # (free space, indices)
        for i in chunk:
            for r, (free, idx) in enumerate(open_rows):
                if lengths[i] <= free:
                    idx.append(i)
                    open_rows[r] = (free - lengths[i], idx)
                    break
            else:
                open_rows.append((block_size - lengths[i], [i]))
        rows.extend(idx for _, idx in open_rows)
    return rows


def group_by_length(lengths: Sequence[int], batch_size: int, seed: int) -> list[list[int]]:
    """Batches of similar length (less padding), in random order: shuffle, sort within mega-batches."""
    order = list(range(len(lengths)))
    rng = random.Random(seed)
    rng.shuffle(order)
    mega = batch_size * 32
    batches = []
    for m in range(0, len(order), mega):
        chunk = sorted(order[m:m + mega], key=lambda i: -lengths[i])
        batches.extend(chunk[b:b + batch_size] for b in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def collate_packed(examples: Sequence[Example], rows: Sequence[Sequence[int]], pad_id: int) -> Batch:
    width = max(sum(len(examples[i].input_ids) for i in row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    weighted = any(_weights(examples[i]) is not None for row in rows for i in row)
    weights = torch.ones((len(rows), width), dtype=torch.float32) if weighted else None
    n_labels = n_tokens = 0
    for r, row in enumerate(rows):
        at = 0
        for i in row:
            ex = examples[i]
            n = len(ex.input_ids)
            ids[r, at:at + n] = torch.tensor(ex.input_ids)
            labels[r, at:at + n] = torch.tensor(ex.labels)
            if weights is not None and (w := _weights(ex)) is not None:
                weights[r, at:at + n] = torch.as_tensor(w, dtype=torch.float32)
            # The first token of each sample is never a target of the previous one.
            labels[r, at] = IGNORE
            pos[r, at:at + n] = torch.arange(n)
            n_labels += count_labels(ex.labels)
            n_tokens += n
            at += n
        pos[r, at:] = torch.arange(width - at)  # the tail padding is a segment of its own
    tensors = {"input_ids": ids, "labels": labels, "position_ids": pos}
    if weights is not None:
        tensors["weights"] = weights
    return Batch(tensors, n_labels, n_tokens)


def collate_padded(examples: Sequence[Example], indices: Sequence[int], pad_id: int) -> Batch:
    width = max(len(examples[i].input_ids) for i in indices)
    ids = torch.full((len(indices), width), pad_id, dtype=torch.long)
    labels = torch.full((len(indices), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(indices), width), dtype=torch.long)
    weighted = any(_weights(examples[i]) is not None for i in indices)
    weights = torch.ones((len(indices), width), dtype=torch.float32) if weighted else None
    n_labels = n_tokens = 0
    for r, i in enumerate(indices):
        ex = examples[i]
        n = len(ex.input_ids)
        ids[r, :n] = torch.tensor(ex.input_ids)
        labels[r, :n] = torch.tensor(ex.labels)  # padding is masked by position, never by id
        if weights is not None and (w := _weights(ex)) is not None:
            weights[r, :n] = torch.as_tensor(w, dtype=torch.float32)
        mask[r, :n] = 1
        n_labels += count_labels(ex.labels)
        n_tokens += n
    tensors = {"input_ids": ids, "labels": labels, "attention_mask": mask}
    if weights is not None:
        tensors["weights"] = weights
    return Batch(tensors, n_labels, n_tokens)


def epoch_batches(examples: Sequence[Example], *, batch_size: int, packing: bool, block_size: int,
                  pad_id: int, seed: int, epoch: int, group_lengths: bool = True) -> list[Batch]:
    lengths = [len(e.input_ids) for e in examples]
    epoch_seed = seed * 100_003 + epoch
    if packing:
        rows = pack_rows(lengths, block_size, epoch_seed)
        return [collate_packed(examples, rows[b:b + batch_size], pad_id) for b in range(0, len(rows), batch_size)]
    if group_lengths:
        groups = group_by_length(lengths, batch_size, epoch_seed)
    else:
        order = list(range(len(lengths)))
        random.Random(epoch_seed).shuffle(order)
        groups = [order[b:b + batch_size] for b in range(0, len(order), batch_size)]
    return [collate_padded(examples, g, pad_id) for g in groups]
