"""Reshaping a left-padded batch's KV cache as rows join and leave it (continuous batching).

Rows are left-padded to a common length, so every row's newest token sits in the last column and one
decode step serves them all. A row joining pads the shorter side on the left; rows leaving are
dropped, then columns that have become padding for every remaining row are cut from the left.
Each cache layer holds `keys` and `values` of shape (B, H, T, D).

A prefix-tuning row starts with its trained keys and values in the cache (`seed_prefixes`), before the
prompt's own columns; as they are unmasked columns like any other, joining and leaving work unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _pad_left(cache, columns: int) -> None:
    if columns:
        for layer in cache.layers:
            layer.keys = F.pad(layer.keys, (0, 0, columns, 0))  # (B, H, T + columns, D)
            layer.values = F.pad(layer.values, (0, 0, columns, 0))


def seed_prefixes(cache, prefixes: list[tuple[tuple[torch.Tensor, torch.Tensor], ...]],
                  device: torch.device) -> torch.Tensor:
    """Fill an empty cache with each row's prefix: per layer, keys and values (H, N, D), or `()` for a
    row without one. Prefixes are right-aligned to the longest, P; returns the (B, P) mask of these columns."""
    lengths = [layers[0][0].shape[1] if layers else 0 for layers in prefixes]
    width = max(lengths)
    if width:
        some = next(layers for layers in prefixes if layers)

        def stacked(layer: int, which: int) -> torch.Tensor:  # (B, H, P, D); zeros for a row without a prefix
            own = [(layers or some)[layer][which][:, :n] for layers, n in zip(prefixes, lengths)]  # (H, n, D)
            return torch.stack([F.pad(t, (0, 0, width - t.shape[1], 0)) for t in own])

        for layer in range(len(some)):
            cache.update(stacked(layer, 0), stacked(layer, 1), layer)
    return torch.tensor([[0] * (width - n) + [1] * n for n in lengths], dtype=torch.long, device=device)


def merge(cache, mask: torch.Tensor, other, other_mask: torch.Tensor) -> torch.Tensor:
    """Append the rows of `other` to `cache` in place; masks are (B, T) and (B2, T2); returns the
    merged (B + B2, max(T, T2)) mask."""
    width = max(mask.shape[1], other_mask.shape[1])
    _pad_left(cache, width - mask.shape[1])
    _pad_left(other, width - other_mask.shape[1])
    for layer, extra in zip(cache.layers, other.layers):
        layer.keys = torch.cat([layer.keys, extra.keys])
        layer.values = torch.cat([layer.values, extra.values])
    return torch.cat([F.pad(mask, (width - mask.shape[1], 0)), F.pad(other_mask, (width - other_mask.shape[1], 0))])


def keep_rows(cache, mask: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Keep only `rows` (indices) of the batch, then trim columns that are padding in every kept row;
    returns the new mask."""
    cache.batch_select_indices(rows)
    mask = mask[rows]  # (B', T)
    used = mask.any(dim=0).nonzero()
    start = int(used[0]) if len(used) else mask.shape[1]
    if start:
        for layer in cache.layers:
            layer.keys = layer.keys[:, :, start:]
            layer.values = layer.values[:, :, start:]
        mask = mask[:, start:]
    return mask
