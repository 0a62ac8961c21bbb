"""A roomy cache layer holds what transformers' growing one holds, writes decode steps in place, and
survives the engine's reshapes (rows leaving, columns trimmed)."""

import torch
from transformers.cache_utils import DynamicLayer

from tuneforge.serve.kv import RoomyLayer


def test_roomy_layer_equals_dynamic_layer_through_steps_and_reshapes():
    g = torch.Generator().manual_seed(0)
    plain, roomy = DynamicLayer(), RoomyLayer()

    def step(columns: int, rows: int = 3):
        k, v = torch.randn(rows, 2, columns, 4, generator=g), torch.randn(rows, 2, columns, 4, generator=g)
        out_plain, out_roomy = plain.update(k, v), roomy.update(k, v)
        for a, b in zip(out_plain, out_roomy):
            assert torch.equal(a, b)

    step(5)  # prefill
    room = roomy.keys.data_ptr()
    for _ in range(40):  # decode: in place while the buffer lasts, a bigger buffer after
        step(1)
    assert roomy.get_seq_length() == plain.get_seq_length() == 45
    assert roomy.keys.data_ptr() != room  # 5 + 32 columns of room were outgrown
    room = roomy.keys.data_ptr()
    step(1)
    assert roomy.keys.data_ptr() == room  # one column more: written into the same buffer
    for layer in (plain, roomy):  # a row leaves, then the padding columns are cut as `kv.keep_rows` does
        layer.batch_select_indices(torch.tensor([0, 2]))
        layer.keys, layer.values = layer.keys[:, :, 3:], layer.values[:, :, 3:]
    for _ in range(3):
        step(1, rows=2)
    assert roomy.get_seq_length() == 46
