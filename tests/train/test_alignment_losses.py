"""The KTO, ORPO and SimPO losses: equal to values worked out by hand on fixed tiny inputs, and to
TRL's implementations of the same losses on the same inputs (skipped, with the reason, without TRL)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from tuneforge.train.losses import kto_loss, kto_reference_point, orpo_loss, sequence_logprobs, simpo_loss

pytestmark = pytest.mark.filterwarnings("ignore:You are importing from 'trl.experimental'")


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_length_normalised_logprobs_by_hand():
    # Vocabulary of 2: p(0 | uniform logits) = 1/2, p(1 | logits (ln 3, 0)) = 1/4.
    logits = torch.tensor([[[0.0, 0.0], [math.log(3), 0.0], [5.0, 5.0]]])  # (1, 3, 2)
    labels = torch.tensor([[-100, 0, 1]])
    assert sequence_logprobs(logits, labels).item() == pytest.approx(math.log(1 / 8))
    assert sequence_logprobs(logits, labels, average=True).item() == pytest.approx(math.log(1 / 8) / 2)


def test_kto_by_hand():
    policy, ref = torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -1.0])
    desirable = torch.tensor([True, False])
    kl = kto_reference_point(torch.tensor([-3.0, -4.0]), torch.tensor([-3.5, -4.1]))
    assert kl.item() == pytest.approx(0.3)  # mean of 0.5 and 0.1
    losses, rewards = kto_loss(policy, ref, desirable, kl, beta=0.5, desirable_weight=1.0, undesirable_weight=2.0)
    # desirable: r = 0.5, 1 - σ(β(r - z0)) = 1 - σ(0.1); undesirable: r = -1, λ_U(1 - σ(β(z0 - r))) = 2(1 - σ(0.65))
    assert losses.tolist() == pytest.approx([1 - sigmoid(0.1), 2 * (1 - sigmoid(0.65))])
    assert rewards.tolist() == pytest.approx([0.25, -0.5])


def test_kto_reference_point_is_clamped_at_zero_and_carries_no_gradient():
    policy = torch.tensor([-3.0, -4.0], requires_grad=True)
    kl = kto_reference_point(policy, torch.tensor([-2.0, -3.0]))
    assert kl.item() == 0.0 and not kl.requires_grad


def test_orpo_by_hand():
    # Mean token probabilities 1/2 and 1/4: odds 1 and 1/3, so the log odds ratio is ln 3 and σ(ln 3) = 3/4.
    losses, log_odds = orpo_loss(torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)]), beta=0.1)
    assert log_odds.item() == pytest.approx(math.log(3))
    assert losses.item() == pytest.approx(-math.log(0.5) - 0.1 * math.log(3 / 4))


def test_simpo_by_hand():
    losses = simpo_loss(torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)]), beta=2.0, gamma=1.0)
    # -log σ(β(ln 1/2 - ln 1/4) - γ) = -log σ(2 ln 2 - 1)
    assert losses.item() == pytest.approx(-math.log(sigmoid(2 * math.log(2) - 1)))


# --- the same inputs through TRL ---------------------------------------------------------------------

CHOSEN = torch.tensor([-0.7, -1.2, -0.3, -2.5])  # length-normalised log-probs of 4 pairs
REJECTED = torch.tensor([-1.1, -0.9, -0.8, -2.0])


def _trl():
    return pytest.importorskip("trl", reason="TRL (the `bench` extra) is not installed: no reference to compare to")


def test_orpo_equals_trl():
    _trl()
    from trl.experimental.orpo.orpo_trainer import ORPOTrainer

    beta = 0.25
    trainer = SimpleNamespace(beta=beta, accelerator=SimpleNamespace(device="cpu"))
    ratio_terms, _, _, _, trl_log_odds = ORPOTrainer.odds_ratio_loss(trainer, CHOSEN, REJECTED)
    # TRL's loss is NLL(chosen) - mean(β·log σ(log odds)); ours per pair, the NLL being -mean log-prob.
    ours, log_odds = orpo_loss(CHOSEN, REJECTED, beta=beta)
    torch.testing.assert_close(ours, -CHOSEN - ratio_terms)
    torch.testing.assert_close(log_odds.mean(), trl_log_odds)


def test_simpo_equals_trl():
    _trl()
    from trl.experimental.cpo.cpo_trainer import CPOTrainer

    beta, gamma = 2.0, 0.7
    trainer = SimpleNamespace(beta=beta, simpo_gamma=gamma, loss_type="simpo", label_smoothing=0.0, alpha=0.0,
                              accelerator=SimpleNamespace(device="cpu"))
    trl_losses, _, _ = CPOTrainer.cpo_loss(trainer, CHOSEN, REJECTED)
    torch.testing.assert_close(simpo_loss(CHOSEN, REJECTED, beta=beta, gamma=gamma), trl_losses)


def test_length_normalised_logprobs_equal_trl():
    _trl()
    from trl.experimental.cpo.cpo_trainer import CPOTrainer

    logits = torch.randn(3, 6, 11, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([[-100, -100, 4, 2, 9, -100], [-100, 1, 1, 1, 1, 1], [-100, -100, -100, -100, 0, 3]])
    for average in (False, True):
        torch.testing.assert_close(sequence_logprobs(logits, labels, average=average),
                                   CPOTrainer.get_batch_logps(logits, labels, average_log_prob=average))


def test_kto_equals_trl():
    """TRL computes KTO inside KTOTrainer._compute_loss; it runs here on a stand-in model whose
    per-token log-probs sum to the policy log-probs below, with reference log-probs precomputed."""
    _trl()
    from trl import KTOTrainer

    policy = torch.tensor([-4.0, -6.5, -3.2, -5.0, -7.1])
    ref = torch.tensor([-4.4, -6.0, -3.0, -5.9, -6.8])
    desirable = torch.tensor([True, False, True, True, False])
    policy_kl, ref_kl = torch.tensor([-9.0, -8.0, -7.5, -9.9, -8.2]), torch.tensor([-9.3, -8.1, -7.0, -10.5, -8.6])
    beta, w_d, w_u = 0.2, 1.5, 0.8

    per_token = torch.zeros(5, 3)
    per_token[:, 0] = policy  # (B, T-1): they sum to `policy`
    model = SimpleNamespace(training=True)
    trainer = SimpleNamespace(
        model=model, accelerator=SimpleNamespace(device="cpu", gather_for_metrics=lambda t: t),
        _compute_kl_logps=lambda m, batch: policy_kl, aux_loss_enabled=False, precompute_ref_logps=True,
        calculate_KL=True, loss_type="kto", beta=beta, desirable_weight=w_d, undesirable_weight=w_u,
        _metrics={"train": __import__("collections").defaultdict(list)}, _total_train_tokens=0, _tp_size=1)
    outputs = SimpleNamespace(log_probs=per_token, entropy=torch.zeros(5, 3), mean_logits=torch.zeros(5, 3))
    batch = {"input_ids": torch.ones(5, 4, dtype=torch.long), "attention_mask": torch.ones(5, 4, dtype=torch.long),
             "completion_mask": torch.ones(5, 4, dtype=torch.long), "label": desirable,
             "ref_logps": ref, "ref_KL_logps": ref_kl}
    trl_loss = KTOTrainer._compute_loss(trainer, lambda **kwargs: outputs, batch, False)

    kl = kto_reference_point(policy_kl, ref_kl)
    assert kl.item() == pytest.approx(trainer._metrics["train"]["kl"][0])
    losses, rewards = kto_loss(policy, ref, desirable, kl, beta=beta, desirable_weight=w_d, undesirable_weight=w_u)
    torch.testing.assert_close(losses.mean(), trl_loss)
    margin = rewards[desirable].mean() - rewards[~desirable].mean()
    assert margin.item() == pytest.approx(trainer._metrics["train"]["rewards/margins"][0])
