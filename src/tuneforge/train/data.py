"""From tokenised datasets to what the loop consumes, per stage: SFT rows, pre-training blocks,
preference pairs, unpaired (KTO) examples; plus the held-out split."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from tuneforge.constants import IGNORE
from tuneforge.train.batching import Batch, epoch_batches


@dataclass
class Row:
    input_ids: np.ndarray
    labels: np.ndarray
    task: str | None = None
    weights: np.ndarray | None = None
    """Per-token loss weights beside `labels`, only for datasets with fractional turn weights."""


@dataclass
class Pair:
    prompt_ids: np.ndarray
    chosen_ids: np.ndarray
    chosen_labels: np.ndarray
    rejected_ids: np.ndarray
    rejected_labels: np.ndarray
    ref_chosen: float | None = None
    """Reference log-probs, when precomputed once before training."""
    ref_rejected: float | None = None


def lm_rows(ds, tasks: Sequence[str | None]) -> list[Row]:
    """One row per tokenised sample; `tasks[i]` is the task of the i-th *input* sample."""
    weights = ds.columns.get("weights")
    return [Row(ds["input_ids"][i], ds["labels"][i], tasks[int(src)], None if weights is None else weights[i])
            for i, src in enumerate(ds.source_index)]


def pretraining_blocks(ds, block_size: int) -> list[Row]:
    """Concatenate documents (each already ends with EOS) and cut into blocks of `block_size`: no
    padding, every token trained. The remainder shorter than a block is kept as a last block."""
    ids = ds["input_ids"].values  # (total,)
    labels = ds["labels"].values
    return [Row(ids[s:s + block_size], labels[s:s + block_size]) for s in range(0, len(ids), block_size)
            if s + 1 < len(ids)]


def preference_pairs(ds) -> list[Pair]:
    return [Pair(**{k: ds[k][i] for k in ("prompt_ids", "chosen_ids", "chosen_labels", "rejected_ids",
                                          "rejected_labels")}) for i in range(len(ds))]


def split_holdout(items: list, val_size: float, seed: int) -> tuple[list, list]:
    """`val_size` < 1 is a share, >= 1 a count; the split is a fixed function of the seed."""
    if not val_size:
        return items, []
    n_val = int(round(val_size * len(items))) if val_size < 1 else int(val_size)
    n_val = min(max(n_val, 1), len(items) - 1)
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    held = set(order[:n_val])
    return [x for i, x in enumerate(items) if i not in held], [items[i] for i in sorted(held)]


def eval_sets(val: list[Row], *, batch_size: int, packing: bool, block_size: int, pad_id: int
              ) -> dict[str, list[Batch]]:
    """`val` over everything, plus one set per task when there are several (multi-task)."""
    if not val:
        return {}
    make = lambda rows: epoch_batches(rows, batch_size=batch_size, packing=packing, block_size=block_size,  # noqa: E731
                                      pad_id=pad_id, seed=0, epoch=0)
    out = {"val": make(val)}
    tasks = sorted({r.task for r in val if r.task is not None})
    if len(tasks) > 1:
        out.update({f"task_{t}": make([r for r in val if r.task == t]) for t in tasks})
    return out


def _pad(rows: Sequence[np.ndarray], value: int) -> torch.Tensor:
    out = torch.full((len(rows), max(len(r) for r in rows)), value, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, :len(r)] = torch.as_tensor(r, dtype=torch.long)
    return out


def collate_pairs(pairs: Sequence[Pair], pad_id: int) -> Batch:
    """Prompt + continuation for each side; loss only on the continuation's labels."""
    tensors = {}
    for side in ("chosen", "rejected"):
        ids = [np.concatenate([p.prompt_ids, getattr(p, f"{side}_ids")]) for p in pairs]
        labels = [np.concatenate([np.full(len(p.prompt_ids), IGNORE), getattr(p, f"{side}_labels")]) for p in pairs]
        tensors[f"{side}_ids"] = _pad(ids, pad_id)
        tensors[f"{side}_labels"] = _pad(labels, IGNORE)
        tensors[f"{side}_mask"] = _pad([np.ones(len(x)) for x in ids], 0)
    if pairs[0].ref_chosen is not None:
        tensors["ref_chosen"] = torch.tensor([p.ref_chosen for p in pairs])
        tensors["ref_rejected"] = torch.tensor([p.ref_rejected for p in pairs])
    n_tokens = int(tensors["chosen_mask"].sum() + tensors["rejected_mask"].sum())
    return Batch(tensors, len(pairs), n_tokens)


def pair_batches(pairs: Sequence[Pair], *, batch_size: int, pad_id: int, seed: int, epoch: int) -> list[Batch]:
    order = list(range(len(pairs)))
    random.Random(seed * 100_003 + epoch).shuffle(order)
    return [collate_pairs([pairs[i] for i in order[b:b + batch_size]], pad_id)
            for b in range(0, len(order), batch_size)]


@torch.no_grad()
def attach_reference_logprobs(loss_fn, pairs: Sequence[Pair], batch_size: int, pad_id: int) -> None:
    """Run the reference once over every pair and keep its log-probs on the pairs."""
    for b in range(0, len(pairs), batch_size):
        chunk = pairs[b:b + batch_size]
        batch = collate_pairs(chunk, pad_id).tensors
        ref_c, ref_r = loss_fn.reference_logprobs(**batch)
        for p, c, r in zip(chunk, ref_c.tolist(), ref_r.tolist()):
            p.ref_chosen, p.ref_rejected = c, r


@dataclass
class Unpaired:
    """A KTO example: a prompt, one reply, and whether that reply is desirable."""

    prompt_ids: np.ndarray
    completion_ids: np.ndarray
    completion_labels: np.ndarray
    desirable: bool


def unpaired_examples(ds, desirable: Sequence[bool]) -> list[Unpaired]:
    """One example per tokenised chat sample, split before its last reply: the prompt is everything up
    to there (earlier replies included, untrained), the completion that reply up to its last trained
    token. `desirable[i]` is the label of the i-th *input* sample."""
    out = []
    for i, src in enumerate(ds.source_index):
        ids, labels = ds["input_ids"][i], ds["labels"][i]
        trained = np.flatnonzero(labels != IGNORE)  # never empty: the tokeniser rejects such samples
        breaks = np.flatnonzero(np.diff(trained) > 1)
        start = trained[breaks[-1] + 1] if len(breaks) else trained[0]
        end = trained[-1] + 1
        out.append(Unpaired(ids[:start], ids[start:end], labels[start:end], bool(desirable[int(src)])))
    return out


def collate_unpaired(items: Sequence[Unpaired], pad_id: int) -> Batch:
    """Each example as prompt + completion, and each prompt with the previous example's completion:
    the mismatched pairs that estimate KTO's reference point (TRL pairs them the same way). Loss
    only on the completions."""
    tensors = {}
    shifted = [items[-1], *items[:-1]]
    for prefix, completions in (("", items), ("mismatched_", shifted)):
        ids = [np.concatenate([p.prompt_ids, c.completion_ids]) for p, c in zip(items, completions)]
        labels = [np.concatenate([np.full(len(p.prompt_ids), IGNORE), c.completion_labels])
                  for p, c in zip(items, completions)]
        tensors[f"{prefix}ids"] = _pad(ids, pad_id)
        tensors[f"{prefix}labels"] = _pad(labels, IGNORE)
        tensors[f"{prefix}mask"] = _pad([np.ones(len(x)) for x in ids], 0)
    tensors["desirable"] = torch.tensor([x.desirable for x in items], dtype=torch.bool)
    return Batch(tensors, len(items), int(tensors["mask"].sum() + tensors["mismatched_mask"].sum()))


def unpaired_batches(items: Sequence[Unpaired], *, batch_size: int, pad_id: int, seed: int, epoch: int
                     ) -> list[Batch]:
    """Shuffled micro-batches of at least two examples: a lone last example, which has no other
    completion to be mismatched with, joins the batch before it."""
    order = list(range(len(items)))
    random.Random(seed * 100_003 + epoch).shuffle(order)
    chunks = [order[b:b + batch_size] for b in range(0, len(order), batch_size)]
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        chunks[-2] += chunks.pop()
    return [collate_unpaired([items[i] for i in chunk], pad_id) for chunk in chunks]
