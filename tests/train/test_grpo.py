"""Stage grpo: the clipped policy-gradient loss and group advantages against hand-computed values, and
short runs on a tiny model: sampling on the model being trained, failing rewards counted, rollouts
reused across iterations, the KL to the adapters-off reference, held-out reward, resumption."""

import json
import math
import sys
import types

import pytest
import torch

from tuneforge.config import build_config
from tuneforge.quickstart import DATA
from tuneforge.train import rollout
from tuneforge.train.grpo import group_advantages, policy_loss
from tuneforge.train.run import run_training

LOGP = torch.tensor([[-1.0, -2.0], [-0.5, -1.5]])
OLD = torch.tensor([[-1.0, -2.5], [-0.5, -1.0]])  # ratios [1, e^0.5], [1, e^-0.5]
ADV = torch.tensor([1.0, -1.0])
MASK = torch.tensor([[1.0, 1.0], [1.0, 0.0]])  # the second completion has one token


@pytest.mark.parametrize("loss_type, expected", [
    # token losses: row 0 (A=1) -min(1, 1) = -1 and -min(e^0.5, 1.2) = -1.2 (clipped); row 1 (A=-1) 1
    ("grpo", ((-1 - 1.2) / 2 + 1) / 2),  # per completion, then over completions
    ("dapo", (-1 - 1.2 + 1) / 3),  # over all tokens
    ("dr_grpo", (-1 - 1.2 + 1) / (2 * 4)),  # over completions × max_new_tokens
])
def test_policy_loss_by_hand(loss_type, expected):
    loss, stats = policy_loss(LOGP, OLD, ADV, MASK, epsilon=0.2, epsilon_high=0.2, loss_type=loss_type,
                              max_new_tokens=4)
    assert float(loss) == pytest.approx(expected)
    assert stats["clip_fraction"] == pytest.approx(1 / 3)  # only row 0's second token; row 1's is masked
    assert stats["kl"] == 0.0


def test_k3_kl_penalty_and_clip_higher():
    ref = torch.tensor([[-1.5, -2.0], [0.0, -1.5]])  # ref - logp: -0.5, 0, 0.5, (masked)
    kl = [math.exp(-0.5) + 0.5 - 1, 0.0, math.exp(0.5) - 0.5 - 1]
    loss, stats = policy_loss(LOGP, OLD, ADV, MASK, epsilon=0.2, epsilon_high=0.28, beta=0.1, ref_logp=ref)
    row0 = (-1 + 0.1 * kl[0] - 1.28) / 2  # clip-higher: e^0.5 is cut at 1.28
    row1 = 1 + 0.1 * kl[2]
    assert float(loss) == pytest.approx((row0 + row1) / 2)
    assert stats["kl"] == pytest.approx(sum(kl) / 3)


def test_ratio_one_gives_the_policy_gradient():
    logp = LOGP.clone().requires_grad_(True)
    loss, _ = policy_loss(logp, logp.detach(), ADV, MASK, epsilon=0.2, epsilon_high=0.2)
    loss.backward()
    # d/dlogp of -A·exp(logp - old) at ratio 1 is -A, averaged per completion then over the two.
    assert torch.allclose(logp.grad, torch.tensor([[-0.25, -0.25], [0.5, 0.0]]))


def test_group_advantages():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0])
    std = math.sqrt(1 / 3)  # unbiased std of [1, 0, 0, 1]
    expected = [0.5 / (std + 1e-4), -0.5 / (std + 1e-4)] * 2
    assert group_advantages(rewards, 4).tolist()[:4] == pytest.approx([expected[0], expected[1], expected[1],
                                                                       expected[0]])
    assert group_advantages(rewards, 4).tolist()[4:] == [0.0] * 4  # a group that all agree teaches nothing
    assert group_advantages(rewards, 4, scale=False).tolist()[:4] == [0.5, -0.5, -0.5, 0.5]


@pytest.mark.parametrize("checkpointing,targets", [(False, "all-linear"), (True, "all-linear"),
                                                   (False, ["q_proj", "lm_head"])])
def test_shared_prompt_logprobs_equal_whole_sequences(checkpointing, targets):
    """Each prompt runs once for its group; values and gradients equal those of every completion
    run after its own copy of the prompt (with activation checkpointing, the copies are real; a
    LoRA-wrapped LM head runs in the model's own forward)."""
    from peft import LoraConfig, get_peft_model

    from tuneforge.models import tiny_llama
    from tuneforge.train.loop import enable_activation_checkpointing

    torch.manual_seed(0)
    model = get_peft_model(tiny_llama(vocab_size=64, hidden_size=32, layers=2),
                           LoraConfig(r=4, target_modules=targets, init_lora_weights=False))
    if checkpointing:
        enable_activation_checkpointing(model.base_model.model)
    model.train()
    prompts = [[5, 6, 7, 8]] * 3 + [[9, 10]] * 2  # two groups, prompts of different lengths
    completions = [[11, 12, 13], [14], [15, 16], [17, 18, 19, 20], [21]]
    seqs = rollout.Sequences.build(prompts, completions, pad_id=0, device=torch.device("cpu"))
    assert len(seqs.groups) == 2 and seqs.completion_mask.sum(dim=1).tolist() == [3, 1, 2, 4, 1]
    ours = seqs.token_logprobs(model, temperature=0.7)  # (N, K)
    (ours * seqs.completion_mask).sum().backward()
    ours_grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
    model.zero_grad()
    expected = torch.zeros_like(ours)
    for i, (p, c) in enumerate(zip(prompts, completions)):  # one sequence at a time, no sharing, no padding
        logits = model(input_ids=torch.tensor([p + c]), use_cache=False).logits[0, len(p) - 1:-1] / 0.7
        expected[i, :len(c)] = logits.log_softmax(-1).gather(-1, torch.tensor(c)[:, None]).squeeze(-1)
    expected.sum().backward()
    torch.testing.assert_close(ours * seqs.completion_mask, expected, atol=1e-5, rtol=1e-5)
    for ours_grad, p in zip(ours_grads, (p for p in model.parameters() if p.requires_grad)):
        torch.testing.assert_close(ours_grad, p.grad, atol=1e-5, rtol=1e-4)


@pytest.fixture
def flaky_reward(monkeypatch):
    """A user reward that raises on every second call, else scores the reply's length (so that a group's
    completions differ and the policy gradient is not zero)."""
    module = types.ModuleType("grpo_test_rewards")
    calls = []

    def flaky(completion, reference):
        calls.append(completion)
        if len(calls) % 2 == 0:
            raise ValueError("flaky reward")
        return len(completion) / 50

    module.flaky = flaky
    monkeypatch.setitem(sys.modules, "grpo_test_rewards", module)
    return calls


def _config(model_dir, out, **grpo):
    return build_config({
        "model": {"name_or_path": str(model_dir)},
        "data": str(DATA / "train.jsonl"),
        "template": {"cutoff_len": 128},
        "method": {"name": "lora", "r": 8, "target_modules": "all-linear"},
        "train": {"stage": "grpo", "output_dir": str(out), "max_steps": 2, "batch_size": 2, "learning_rate": 1e-2,
                  "warmup_ratio": 0.0, "scheduler": "constant", "seed": 0, "val_size": 2, "eval_every": 2,
                  "save_every": 1,
                  "grpo": {"rewards": ["json_valid", {"name": "flaky", "function": "grpo_test_rewards:flaky"}],
                           "generations": 2, "max_new_tokens": 4, **grpo}},
    })


def test_grpo_run_on_a_tiny_model(tiny_model_dir, tmp_path, flaky_reward, monkeypatch, caplog):
    engines = []

    class Spy(rollout.Engine):
        def __init__(self, model, *args, **kwargs):
            engines.append((model, model.training))
            super().__init__(model, *args, **kwargs)

    monkeypatch.setattr(rollout, "Engine", Spy)
    cfg = _config(tiny_model_dir, tmp_path, iterations=2, beta=0.5, samples_in_report=3)
    history = run_training(cfg).result.history
    assert len(history) == 2

    # Sampling ran on the very model being trained (the PeftModel, adapters on: no copy), in eval
    # mode: once for both iterations of the batch, once for the held-out prompts.
    assert len(engines) == 2 and all(m is engines[0][0] and not training for m, training in engines)
    assert hasattr(engines[0][0], "disable_adapter")
    assert ["rollout_s" in r for r in history] == [True, False]
    # 2 prompts × 2 completions; the reward raised on every second one: scored 0, counted, logged once.
    assert history[0]["reward_failures"] == 2 and len(flaky_reward) == 4 + 2  # + the 2 held-out replies
    assert "reward 'flaky' failed" in caplog.text and "ValueError: flaky reward" in caplog.text
    assert history[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # LoRA starts as the reference
    assert history[1]["kl"] > 0  # the second iteration on the same completions sees a moved policy
    assert 0 <= history[1]["clip_fraction"] <= 1 and history[0]["clip_fraction"] == 0  # ratio 1 at first
    assert -2.0 <= history[1]["eval_val_loss"] <= 0.0  # minus the mean reward of greedy replies
    assert history[0]["completion_length"] <= 4 and history[0]["completions_per_s"] > 0
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(lines[0]["samples"]) == 3 and lines[0]["samples"][0].keys() == {"prompt", "completion", "reward"}
    assert "reward_json_valid" in lines[0] and "reward_flaky" in lines[0]
    assert (tmp_path / "final" / "adapter_config.json").exists()

    # Resumes like every stage: from the last checkpoint, sampling afresh.
    resumed = cfg.model_copy(deep=True)
    resumed.train.max_steps, resumed.train.resume = 3, "auto"
    history = run_training(resumed, allow_changes=["train.max_steps"]).result.history
    assert [r["step"] for r in history] == [3] and "rollout_s" in history[0]


def test_grpo_without_rewards_is_a_config_error():
    from tuneforge.errors import ConfigError

    with pytest.raises(ConfigError, match="stage grpo needs train.grpo"):
        build_config({"train": {"stage": "grpo"}})
