from dataclasses import dataclass

import pytest
import torch
from torch import nn

from tuneforge import lm_loss
from tuneforge.constants import IGNORE
from tuneforge.lm_loss import CausalLMLoss, logits_loss_sum, segment_lengths
from tuneforge.models import tiny_llama
from tuneforge.native import library
from tuneforge.train.batching import collate_packed, collate_padded, epoch_batches, pack_rows


@dataclass
class Ex:
    input_ids: list[int]
    labels: list[int]


def _examples(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        length = int(torch.randint(5, 20, (1,), generator=g))
        ids = torch.randint(3, 128, (length,), generator=g).tolist()
        cut = length // 2
        out.append(Ex(ids, [IGNORE] * cut + ids[cut:]))
    return out


def test_fast_path_equals_transformers_loss():
    model = tiny_llama(vocab_size=128)
    ex = _examples(1)[0]
    batch = collate_padded([ex], [0], pad_id=0)
    loss_sum, n = CausalLMLoss(model, whole_forward=False)(**batch.tensors)
    ref = model(input_ids=batch.tensors["input_ids"], labels=batch.tensors["labels"]).loss
    assert n == sum(1 for y in ex.labels[1:] if y != IGNORE)
    assert torch.allclose(loss_sum / n, ref, atol=1e-6)


def test_packed_loss_equals_unpacked_loss():
    model = tiny_llama(vocab_size=128)
    examples = _examples(6)
    step = CausalLMLoss(model, whole_forward=False)
    packed = collate_packed(examples, [[0, 1, 2], [3, 4, 5]], pad_id=0)
    assert "attention_mask" not in packed.tensors and packed.tensors["position_ids"][0, 0] == 0
    p_sum, p_n = step(**packed.tensors)
    u_sum, u_n = 0.0, 0
    for i in range(6):  # one sample at a time: no padding, no neighbours
        b = collate_padded(examples, [i], pad_id=0)
        s, n = step(**b.tensors)
        u_sum, u_n = u_sum + s, u_n + n
    assert p_n == u_n == packed.n_units
    assert torch.allclose(p_sum, u_sum, rtol=1e-5)
    padded = collate_padded(examples, list(range(6)), pad_id=0)
    d_sum, d_n = step(**padded.tensors)
    assert d_n == u_n and torch.allclose(d_sum, u_sum, rtol=1e-5)


def test_pack_rows_respects_block_size_and_keeps_every_example():
    lengths = [5, 9, 3, 7, 2, 8, 4, 6]
    rows = pack_rows(lengths, block_size=10, seed=1)
    assert sorted(i for r in rows for i in r) == list(range(8))
    assert all(sum(lengths[i] for i in r) <= 10 for r in rows)
    assert rows == pack_rows(lengths, block_size=10, seed=1)


def test_epoch_batches_are_deterministic_per_epoch():
    ex = _examples(10)
    a = epoch_batches(ex, batch_size=2, packing=False, block_size=64, pad_id=0, seed=3, epoch=0)
    b = epoch_batches(ex, batch_size=2, packing=False, block_size=64, pad_id=0, seed=3, epoch=0)
    c = epoch_batches(ex, batch_size=2, packing=False, block_size=64, pad_id=0, seed=3, epoch=1)
    assert all(torch.equal(x.tensors["input_ids"], y.tensors["input_ids"]) for x, y in zip(a, b))
    order = lambda batches: [tuple(r[:3].tolist()) for x in batches for r in x.tensors["input_ids"]]  # noqa: E731
    assert order(a) != order(c)
    assert sum(x.n_units for x in a) == sum(x.n_units for x in c)


def test_segment_lengths_follow_position_restarts():
    pos = torch.tensor([[0, 1, 2, 0, 1, 0], [0, 1, 2, 3, 0, 1]])
    assert segment_lengths(pos) == [[3, 2, 1], [4, 2]]


@pytest.mark.parametrize("kernel", ["fused", "sdpa"])
@pytest.mark.parametrize("checkpointing", [False, True], ids=["plain", "activation-checkpointing"])
def test_per_sample_attention_equals_the_block_diagonal_mask_in_loss_and_gradients(checkpointing, kernel,
                                                                                     monkeypatch):
    """tuneforge's packed attention kernel (float32 CPU) and its SDPA fallback, per sample, against the
    block-diagonal mask."""
    fused_calls = []
    if kernel == "sdpa":
        monkeypatch.setattr(lm_loss, "packed_causal_attention", lambda *a, **k: None)
    elif library() is None:
        pytest.skip("no C compiler here: the kernel is off")
    else:
        fused = lm_loss.packed_causal_attention
        monkeypatch.setattr(lm_loss, "packed_causal_attention", lambda *a, **k: fused_calls.append(fused(*a, **k))
                            or fused_calls[-1])
    model = tiny_llama(vocab_size=128).train()
    packed = collate_packed(_examples(6), [[0, 1, 2], [3, 4, 5]], pad_id=0).tensors
    row = packed["input_ids"].shape[1]

    def loss_and_grads(fn):
        model.zero_grad()
        loss = fn()
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters()]

    # transformers' own path: SDPA with the (B, 1, T, T) block-diagonal mask it builds from the position ids
    ref, ref_grads = loss_and_grads(lambda: logits_loss_sum(
        model(input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False).logits,
        packed["labels"])[0])
    step = CausalLMLoss(model, whole_forward=False)
    if checkpointing:  # each layer runs again in backward: that recomputation must attend per sample too
        from tuneforge.train.loop import enable_activation_checkpointing

        enable_activation_checkpointing(model)
    lengths = []
    sdpa = nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(nn.functional, "scaled_dot_product_attention",
                        lambda q, *a, **k: lengths.append(q.shape[2]) or sdpa(q, *a, **k))
    ours, ours_grads = loss_and_grads(lambda: step(**packed)[0])
    assert torch.allclose(ours, ref, rtol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(ours_grads, ref_grads))
    samples = sum(len(r) for r in segment_lengths(packed["position_ids"]))
    passes = model.config.num_hidden_layers * (2 if checkpointing else 1)
    if kernel == "fused":  # every layer's attention in the kernel, all samples at once
        assert len(fused_calls) == passes and all(out is not None for out in fused_calls) and not lengths
    else:
        assert len(lengths) == passes * samples
        assert max(lengths) < row  # never the whole row under a mask

    lengths.clear()  # the model's own forward (generation, padded batches) is SDPA as before
    again = logits_loss_sum(model(input_ids=packed["input_ids"], position_ids=packed["position_ids"],
                                  use_cache=False).logits, packed["labels"])[0]
    assert torch.allclose(again, ref, rtol=1e-6) and set(lengths) == {row}


@dataclass
class WeightedEx:
    input_ids: list[int]
    labels: list[int]
    weights: list[float] | None = None


def test_examples_without_weights_batch_exactly_as_before():
    examples = _examples(4)
    same = [WeightedEx(e.input_ids, e.labels) for e in examples]  # weights None
    for make in (lambda ex: collate_packed(ex, [[0, 1], [2, 3]], pad_id=0),
                 lambda ex: collate_padded(ex, [0, 1, 2, 3], pad_id=0)):
        a, b = make(examples), make(same)
        assert "weights" not in a.tensors and a.tensors.keys() == b.tensors.keys()
        assert all(torch.equal(a.tensors[k], b.tensors[k]) for k in a.tensors)
        assert (a.n_units, a.n_tokens) == (b.n_units, b.n_tokens)


def test_weights_travel_beside_labels_packed_and_padded():
    examples = [WeightedEx(e.input_ids, e.labels) for e in _examples(3)]
    examples[1].weights = [0.5] * len(examples[1].input_ids)
    packed = collate_packed(examples, [[0, 1, 2]], pad_id=0)
    n0, n1 = len(examples[0].input_ids), len(examples[1].input_ids)
    w = packed.tensors["weights"][0]
    assert w.dtype == torch.float32 and (w[:n0] == 1).all() and (w[n0 + n1:] == 1).all()
    assert (w[n0:n0 + n1] == 0.5).all()
    padded = collate_padded(examples, [1, 0], pad_id=0)
    assert (padded.tensors["weights"][0, :n1] == 0.5).all() and (padded.tensors["weights"][1] == 1).all()
    model = tiny_llama(vocab_size=128)
    step = CausalLMLoss(model, whole_forward=False)
    with torch.no_grad():
        p_sum, p_n = step(**packed.tensors)
        u = [step(**collate_padded(examples, [i], pad_id=0).tensors) for i in range(3)]
    assert p_n == sum(n for _, n in u)
    assert torch.allclose(p_sum, sum(s for s, _ in u), rtol=1e-5)
