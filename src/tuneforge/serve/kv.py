"""Reshaping a left-padded batch's KV cache as rows join and leave it (continuous batching).

Rows are left-padded to a common length, so every row's newest token sits in the last column and one
decode step serves them all. A row joining pads the shorter side on the left; rows leaving are
dropped, then columns that have become padding for every remaining row are cut from the left.
Each cache layer holds `keys` and `values` of shape (B, H, T, D).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _pad_left(cache, columns: int) -> None:
    if columns:
        for layer in cache.layers:
            layer.keys = F.pad(layer.keys, (0, 0, columns, 0))  # (B, H, T + columns, D)
            layer.values = F.pad(layer.values, (0, 0, columns, 0))


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
