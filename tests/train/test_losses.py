import math

import pytest
import torch
import torch.nn.functional as F

from tuneforge.constants import IGNORE
from tuneforge.lm_loss import lm_loss_sum, logits_loss_sum
from tuneforge.train.losses import dpo_loss, sequence_logprobs


def _reference(hidden, labels, weight):
    logits = hidden @ weight.T  # (B, T, V)
    return F.cross_entropy(logits[:, :-1].reshape(-1, weight.shape[0]), labels[:, 1:].reshape(-1),
                           ignore_index=IGNORE, reduction="sum")


@pytest.mark.parametrize("train_head", [False, True])
@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_chunked_loss_and_grads_equal_dense_cross_entropy(train_head, chunk):
    torch.manual_seed(0)
    hidden = torch.randn(2, 7, 16, dtype=torch.float64, requires_grad=True)
    head = torch.nn.Linear(16, 11, bias=False).double()
    head.weight.requires_grad_(train_head)
    labels = torch.randint(0, 11, (2, 7))
    labels[0, :3] = IGNORE
    labels[1, 5:] = IGNORE

    loss, n = lm_loss_sum(hidden, labels, head, chunk_size=chunk)
    (2.5 * loss).backward()
    assert n == int((labels[:, 1:] != IGNORE).sum())
    g_hidden = hidden.grad.clone()
    g_weight = head.weight.grad.clone() if train_head else None

    hidden.grad = None
    head.weight.grad = None
    ref = _reference(hidden, labels, head.weight)
    (2.5 * ref).backward()
    assert torch.allclose(loss, ref.float(), rtol=1e-6)
    assert torch.allclose(g_hidden, hidden.grad, atol=1e-10)
    if train_head:
        assert torch.allclose(g_weight, head.weight.grad, atol=1e-10)


def test_logits_path_matches():
    torch.manual_seed(1)
    logits = torch.randn(2, 5, 9)
    labels = torch.tensor([[IGNORE, 1, 2, IGNORE, 3], [IGNORE, IGNORE, 4, 5, 6]])
    loss, n = logits_loss_sum(logits, labels)
    assert n == 6
    ref = F.cross_entropy(logits[:, :-1].reshape(-1, 9), labels[:, 1:].reshape(-1), ignore_index=IGNORE,
                          reduction="sum")
    assert torch.allclose(loss, ref)
    per_seq = sequence_logprobs(logits, labels)
    assert torch.allclose(per_seq.sum(), -ref)


def test_dpo_loss_equals_hand_computed_value():
    pc, pr = torch.tensor([-10.0, -7.0]), torch.tensor([-12.0, -6.0])
    rc, rr = torch.tensor([-11.0, -7.5]), torch.tensor([-11.5, -6.5])
    loss, margin, acc = dpo_loss(pc, pr, rc, rr, beta=0.1)
    # pair 1: (−10+11) − (−12+11.5) = 1.5 ; pair 2: (−7+7.5) − (−6+6.5) = 0.0
    expected = (-math.log(1 / (1 + math.exp(-0.15))) - math.log(0.5)) / 2
    assert loss.mean().item() == pytest.approx(expected, rel=1e-6)
    assert margin.tolist() == pytest.approx([0.15, 0.0])
    assert acc.tolist() == [1.0, 0.0]
    ipo, _, _ = dpo_loss(pc, pr, rc, rr, beta=0.1, kind="ipo")
    assert ipo.mean().item() == pytest.approx(((1.5 - 5) ** 2 + (0 - 5) ** 2) / 2)


def test_evaluation_computes_no_gradients():
    """Under no_grad (evaluation) the chunked loss does one product per chunk (the logits), not the
    two or three that the gradients of hidden states and head weights need; the loss is the same."""
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    hidden = torch.randn(2, 9, 16, requires_grad=True)
    head = torch.nn.Linear(16, 50, bias=False)
    labels = torch.randint(0, 50, (2, 9))

    def products(grad: bool) -> tuple[float, int]:
        with torch.set_grad_enabled(grad), profile(activities=[ProfilerActivity.CPU]) as prof:
            loss, _ = lm_loss_sum(hidden, labels, head, chunk_size=4)
        products = ("aten::mm", "aten::addmm", "aten::addmm_", "mkldnn::_linear_pointwise")  # torch's or oneDNN's
        return float(loss.detach()), sum(e.count for e in prof.key_averages() if e.key in products)

    (with_grad, mm_grad), (without, mm_eval) = products(True), products(False)
    chunks = math.ceil(16 / 4)  # 2 × 8 labelled positions after the shift
    assert without == pytest.approx(with_grad)
    assert mm_eval == chunks and mm_grad == 3 * chunks


@pytest.mark.parametrize("train_head", [False, True])
@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_weighted_chunked_loss_is_the_weighted_sum_with_its_gradients(train_head, chunk):
    torch.manual_seed(2)
    hidden = torch.randn(2, 7, 16, dtype=torch.float64, requires_grad=True)
    head = torch.nn.Linear(16, 11, bias=False).double()
    head.weight.requires_grad_(train_head)
    labels = torch.randint(0, 11, (2, 7))
    labels[0, :3] = IGNORE
    weights = torch.tensor([[1.0, 1, 1, 0.5, 0.5, 1, 2], [0.25, 1, 1, 1, 0.5, 0.5, 0.5]])

    loss, n = lm_loss_sum(hidden, labels, head, chunk_size=chunk, weights=weights)
    (3.0 * loss).backward()
    assert n == int((labels[:, 1:] != IGNORE).sum())  # the count, not the sum of weights
    g_hidden = hidden.grad.clone()
    g_weight = head.weight.grad.clone() if train_head else None

    hidden.grad = None
    head.weight.grad = None
    logits = hidden @ head.weight.T
    ce = F.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1), ignore_index=IGNORE,
                         reduction="none")  # (B * (T-1),), 0 where ignored
    ref = (ce * weights[:, 1:].reshape(-1).double()).sum()
    (3.0 * ref).backward()
    assert torch.allclose(loss, ref.float(), rtol=1e-6)
    assert torch.allclose(g_hidden, hidden.grad, atol=1e-10)
    if train_head:
        assert torch.allclose(g_weight, head.weight.grad, atol=1e-10)
    logits_sum, logits_n = logits_loss_sum(logits.detach(), labels, weights)
    assert logits_n == n and torch.allclose(logits_sum, ref.detach().float(), rtol=1e-6)


def test_weights_of_one_give_the_unweighted_loss():
    torch.manual_seed(3)
    hidden = torch.randn(1, 6, 8)
    head = torch.nn.Linear(8, 5, bias=False)
    labels = torch.tensor([[IGNORE, 1, 2, 3, IGNORE, 4]])
    plain, _ = lm_loss_sum(hidden, labels, head)
    ones, _ = lm_loss_sum(hidden, labels, head, weights=torch.ones(1, 6))
    half, _ = lm_loss_sum(hidden, labels, head, weights=torch.full((1, 6), 0.5))
    assert torch.allclose(plain, ones) and torch.allclose(half, plain / 2)
