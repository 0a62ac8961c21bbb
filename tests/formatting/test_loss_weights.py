"""Per-turn loss weights (LLaMA-Factory v1's `loss_weight`): encoded beside the labels, stored, batched
and applied in the loss as sum_i w_i * CE_i over the labelled-token count."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tuneforge.config import TemplateConfig
from tuneforge.formatting import IGNORE, Encoder, SampleRejected, tokenize_samples
from tuneforge.lm_loss import CausalLMLoss
from tuneforge.models import tiny_llama
from tuneforge.train.batching import collate_packed, collate_padded
from tuneforge.train.data import lm_rows
from tuneforge.types import Message, Sample


def encode(tokenizer, messages, **cfg):
    return Encoder.create(tokenizer, TemplateConfig(name=cfg.pop("name", "chatml"), **cfg)).encode(
        Sample(messages=messages))


def trained(tokenizer, enc) -> str:
    return tokenizer.decode([t for t in enc.labels if t != IGNORE])


def test_a_user_turn_with_weight_1_is_trained(char_tokenizer):
    enc = encode(char_tokenizer, [Message("user", "Q?", loss_weight=1.0), Message("assistant", "A")])
    assert trained(char_tokenizer, enc) == "Q?A<|im_end|>"
    assert enc.weights is None  # 0 / 1 weights are a mask: no weights carried


def test_an_assistant_turn_with_weight_0_is_not_trained(char_tokenizer):
    enc = encode(char_tokenizer, [Message("user", "Q1"), Message("assistant", "A1", loss_weight=0.0),
                                  Message("user", "Q2"), Message("assistant", "A2")])
    assert trained(char_tokenizer, enc) == "A2<|im_end|>" and enc.weights is None
    with pytest.raises(SampleRejected, match="no_trained_tokens"):
        encode(char_tokenizer, [Message("user", "Q"), Message("assistant", "A", loss_weight=0.0)])


def test_a_fractional_weight_scales_its_turns_tokens_only(char_tokenizer, char_ids):
    enc = encode(char_tokenizer, [Message("user", "Q1"), Message("assistant", "A1", loss_weight=0.5),
                                  Message("user", "Q2"), Message("assistant", "A2")])
    assert trained(char_tokenizer, enc) == "A1<|im_end|>A2<|im_end|>"
    by_token = [(char_tokenizer.decode([t]), w)
                for t, y, w in zip(enc.input_ids, enc.labels, enc.weights) if y != IGNORE]
    assert by_token == [("A", 0.5), ("1", 0.5), ("<|im_end|>", 0.5), ("A", 1.0), ("2", 1.0), ("<|im_end|>", 1.0)]
    assert all(w == 0.0 for y, w in zip(enc.labels, enc.weights) if y == IGNORE)
    assert len(enc.weights) == len(enc.input_ids) == len(char_ids(char_tokenizer.decode(enc.input_ids)))


def test_default_weights_spelled_out_change_nothing(char_tokenizer):
    plain = [Message("user", "Q1"), Message("assistant", "A1"), Message("user", "Q2"), Message("assistant", "A2")]
    spelled = [Message(m.role, m.content, loss_weight=1.0 if m.role == "assistant" else 0.0) for m in plain]
    for train_on in ("assistant", "last", "all"):
        assert encode(char_tokenizer, spelled, train_on=train_on) == encode(char_tokenizer, plain, train_on=train_on)


def test_an_explicit_weight_overrides_train_on(char_tokenizer):
    messages = [Message("user", "Q1"), Message("assistant", "A1", loss_weight=0.5), Message("user", "Q2"),
                Message("assistant", "A2")]
    enc = encode(char_tokenizer, messages, train_on="last")
    assert trained(char_tokenizer, enc) == "A1<|im_end|>A2<|im_end|>"
    enc = encode(char_tokenizer, [Message("user", "Q", loss_weight=0.0 + 0.25), Message("assistant", "A")],
                 train_on="all")
    assert enc.weights is not None and set(enc.weights) == {0.25, 1.0}


def test_stripping_template_with_system_in_the_first_user_turn(char_tokenizer):
    enc = encode(char_tokenizer, [Message("system", "S"), Message("user", " Q ", loss_weight=1.0),
                                  Message("assistant", "A")], name="llama2")
    assert trained(char_tokenizer, enc) == "Q A </s>"  # stripped, as the template renders it
    enc = encode(char_tokenizer, [Message("user", "Q", loss_weight=1.0), Message("assistant", "A")], name="llama2")
    assert trained(char_tokenizer, enc) == " Q A </s>"  # the space before the content joins it (BPE glues it)


def test_a_bpe_tokenizer_places_a_users_weight_without_mismatch(smollm2):
    enc = encode(smollm2, [Message("user", "What is the capital of France?", loss_weight=1.0),
                           Message("assistant", "Paris.", loss_weight=0.5)])
    assert trained(smollm2, enc) == "What is the capital of France?Paris.<|im_end|>"
    assert sorted(set(w for w, y in zip(enc.weights, enc.labels) if y != IGNORE)) == [0.5, 1.0]


def test_preference_pairs_refuse_weights(char_tokenizer):
    pair = Sample(messages=[Message("user", "Q")], chosen=[Message("assistant", "A", loss_weight=0.5)],
                  rejected=[Message("assistant", "B")])
    with pytest.raises(SampleRejected, match="DPO"):
        Encoder.create(char_tokenizer, TemplateConfig(name="chatml")).encode(pair)


WEIGHTED = [Message("user", "Q1", loss_weight=1.0), Message("assistant", "A1", loss_weight=0.0),
            Message("user", "Q2"), Message("assistant", "A2", loss_weight=0.5)]
PLAIN = [Message("user", "hi"), Message("assistant", "hello")]


def test_dataset_column_and_cache_keep_the_weights(char_tokenizer, tmp_path):
    samples = [Sample(messages=WEIGHTED), Sample(messages=PLAIN)]
    cfg = TemplateConfig(name="chatml")
    ds, stats = tokenize_samples(samples, char_tokenizer, cfg, cache_dir=tmp_path)
    again, stats2 = tokenize_samples(samples, char_tokenizer, cfg, cache_dir=tmp_path)
    assert not stats.from_cache and stats2.from_cache and stats.kept == 2
    for d in (ds, again):
        w = d["weights"]
        assert w.values.dtype == np.float32
        assert sorted(set(w[0][d["labels"][0] != IGNORE].tolist())) == [0.5, 1.0]
        assert (w[1] == 1.0).all()  # a sample without weights: every token counts once
    plain, _ = tokenize_samples([Sample(messages=PLAIN)], char_tokenizer, cfg, cache_dir=tmp_path)
    assert "weights" not in plain.columns
    assert lm_rows(plain, [None])[0].weights is None


def _expected(model, ids, labels, weights):
    """sum_i w_i * CE_i over labelled positions, straight from the model's logits."""
    logits = model(input_ids=torch.tensor([ids])).logits[0, :-1]  # (T-1, V)
    targets = torch.tensor(labels[1:])
    keep = targets != IGNORE
    ce = F.cross_entropy(logits[keep], targets[keep], reduction="none")
    return (ce * torch.tensor(weights[1:])[keep]).sum(), int(keep.sum())


def test_weighted_loss_hand_computed_packed_and_padded_equal(char_tokenizer):
    encoder = Encoder.create(char_tokenizer, TemplateConfig(name="chatml"))
    samples = [Sample(messages=WEIGHTED), Sample(messages=PLAIN), Sample(messages=WEIGHTED[2:])]
    ds, _ = tokenize_samples(samples, char_tokenizer, TemplateConfig(name="chatml"), use_cache=False)
    rows = lm_rows(ds, [None] * 3)
    model = tiny_llama(vocab_size=len(char_tokenizer))
    step = CausalLMLoss(model, whole_forward=False)
    whole = CausalLMLoss(model, whole_forward=True)

    enc = encoder.encode(samples[0])
    # Q1 trained at 1, A1 untrained (0), A2 at 0.5: check the weights by hand, from the text.
    text = [(char_tokenizer.decode([t]), w)
            for t, y, w in zip(enc.input_ids, enc.labels, enc.weights) if y != IGNORE]
    assert text == [("Q", 1.0), ("1", 1.0), ("A", 0.5), ("2", 0.5), ("<|im_end|>", 0.5)]

    with torch.no_grad():
        want_sum, want_n = 0.0, 0
        for r in rows:
            s, n = _expected(model, r.input_ids.tolist(), r.labels.tolist(), r.weights.tolist())
            want_sum, want_n = want_sum + s, want_n + n
        packed = collate_packed(rows, [[0, 1, 2]], pad_id=0)
        padded = collate_padded(rows, [0, 1, 2], pad_id=0)
        assert "weights" in packed.tensors and "weights" in padded.tensors
        for batch in (packed, padded):
            for fn in (step, whole):
                got, n = fn(**batch.tensors)
                assert n == want_n == batch.n_units  # the normaliser: labelled tokens, not sum of weights
                assert torch.allclose(got, want_sum, rtol=1e-5), (got, want_sum)
        # The weights change the loss: the same rows without them sum plain cross-entropy.
        unweighted = collate_padded([type(r)(r.input_ids, r.labels) for r in rows], [0, 1, 2], pad_id=0)
        plain_sum, _ = step(**unweighted.tensors)
        assert not torch.allclose(plain_sum, want_sum)
