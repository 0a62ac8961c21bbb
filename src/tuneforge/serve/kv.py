"""Reshaping a left-padded batch's KV cache as rows join and leave it (continuous batching).

Rows are left-padded to a common length, so every row's newest token sits in the last column and one
decode step serves them all. A row joining pads the shorter side on the left; rows leaving are
dropped, then columns that have become padding for every remaining row are cut from the left.
Each cache layer holds `keys` and `values` of shape (B, H, T, D).

Decoding appends one column per step. `roomy` gives a cache's layers buffers with spare columns, so a
step writes its column in place instead of copying the whole cache (`torch.cat`: a fifth of a decode
step at 32 rows); the reshapes below replace the buffers, and the next step allocates new ones.

A prefix-tuning row starts with its trained keys and values in the cache (`seed_prefixes`), before the
prompt's own columns; as they are unmasked columns like any other, joining and leaving work unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers.cache_utils import DynamicLayer


class RoomyLayer(DynamicLayer):
    """A `DynamicLayer` whose keys and values are views of the first columns of larger buffers."""

    _room: tuple[torch.Tensor, torch.Tensor] | None = None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        assert self.keys is not None and self.values is not None
        used, new = self.get_seq_length(), key_states.shape[-2]
        room = self._room if self._owns_views() else None
        if room is None or used + new > room[0].shape[-2]:
            room = self._room = (_with_room(self.keys, key_states, used + new),
                                 _with_room(self.values, value_states, used + new))
        keys, values = room
        keys[:, :, used:used + new] = key_states
        values[:, :, used:used + new] = value_states
        self.keys, self.values = keys[:, :, :used + new], values[:, :, :used + new]
        return self.keys, self.values

    def _owns_views(self) -> bool:
        """Whether keys and values are still the leading columns of the buffers (no reshape replaced them)."""
        if self._room is None or self.keys is None or self.values is None:
            return False
        return all(t.numel() and t.data_ptr() == room.data_ptr() and t.shape[:2] == room.shape[:2]
                   and t.stride() == room.stride() for t, room in zip((self.keys, self.values), self._room))


def _with_room(current: torch.Tensor, new: torch.Tensor, needed: int) -> torch.Tensor:
    """A (B, H, needed + room, D) buffer holding `current`'s columns first (`current` empty or (B, H, T, D)).
    The room, 32 columns and a quarter more, keeps copies rare at the cost of at most ~25% more cache."""
    room = torch.empty(*new.shape[:2], needed + 32 + needed // 4, new.shape[-1], dtype=new.dtype, device=new.device)
    if current.numel():
        room[:, :, :current.shape[-2]] = current
    return room


def roomy(cache):
    """`cache` (a `DynamicCache`) with its full-attention layers made `RoomyLayer`s; returns it."""
    for layer in cache.layers:
        if type(layer) is DynamicLayer:
            layer.__class__ = RoomyLayer
    return cache


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
