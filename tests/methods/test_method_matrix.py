"""Every registered method on a tiny random Llama: apply -> exact trainable parameters -> a few steps
lower the loss -> save -> load onto a fresh base -> the same logits (and through peft's own loader)."""

import pytest
import torch
import torch.nn.functional as F
from peft import PeftModel

from tuneforge.methods import METHODS, get_method, method_config, parameter_report
from tuneforge.models import tiny_llama

VOCAB = 128
# tiny_llama(vocab_size=128): hidden 64, MLP 128, 4 query heads of 16, 2 KV heads (k/v are 32 wide), 2 layers.
LAYER = 2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 128 + 2 * 64  # q, o + k, v + gate, up, down + 2 norms = 36992
BASE = 2 * LAYER + 2 * VOCAB * 64 + 64  # + embeddings, LM head, final norm = 90432
# (in, out) of q, k, v, o, gate, up, down
LINEAR_IN_OUT = [(64, 64), (64, 32), (64, 32), (64, 64), (64, 128), (64, 128), (128, 64)]


def lora_params(r):
    return 2 * sum(r * (i + o) for i, o in LINEAR_IN_OUT)


# (method settings, trainable parameters, does the adapted model start exactly at the base?)
CASES = {
    "full": ({"name": "full"}, BASE, True),
    "freeze-last-layer": ({"name": "freeze", "last_layers": 1}, LAYER, True),
    "freeze-patterns-embeddings-head": (
        {"name": "freeze", "last_layers": 0, "patterns": ["*.mlp.down_proj.*"], "embeddings": True,
         "lm_head": True},
        2 * 128 * 64 + 2 * VOCAB * 64, True),
    "lora": ({"name": "lora", "r": 4, "dropout": 0.0}, lora_params(4), True),
    "lora-qv-rslora": ({"name": "lora", "r": 4, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"],
                        "rslora": True}, 2 * (4 * (64 + 64) + 4 * (64 + 32)), True),
    # DoRA adds one magnitude per output feature of every adapted linear layer.
    "dora": ({"name": "lora", "r": 4, "dropout": 0.0, "dora": True},
             lora_params(4) + 2 * sum(o for _, o in LINEAR_IN_OUT), True),
    # Two bottlenecks per layer, each 64 -> 8 -> 64 with biases.
    "adapter": ({"name": "adapter", "bottleneck": 8}, 2 * 2 * ((64 * 8 + 8) + (8 * 64 + 64)), True),
    # Keys and values of both layers: 4 positions x 2 layers x (k, v) x 32 (the GQA key/value width).
    "prefix": ({"name": "prefix", "num_virtual_tokens": 4}, 4 * 2 * 2 * 32, False),
    # 4 x 32 embeddings, then the MLP 32 -> 16 -> (2 layers x (k, v) x 32).
    "prefix-projection": ({"name": "prefix", "num_virtual_tokens": 4, "projection": True,
                           "projection_hidden_size": 16},
                          4 * 32 + (32 * 16 + 16) + (16 * 2 * 2 * 32 + 2 * 2 * 32), False),
    "prompt": ({"name": "prompt", "num_virtual_tokens": 4}, 4 * 64, False),
    # Virtual-token embeddings + the MLP encoder 64 -> 16 -> 16 -> 64.
    "ptuning": ({"name": "ptuning", "num_virtual_tokens": 4, "encoder_hidden_size": 16},
                4 * 64 + (64 * 16 + 16) + (16 * 16 + 16) + (16 * 64 + 64), False),
    # One scale per k and v output feature and per down_proj input feature, in both layers.
    "ia3": ({"name": "ia3"}, 2 * (32 + 32 + 128), True),
}
ADDS_NO_PARAMETERS = {"full", "freeze"}
NEEDS_CUDA = {"qlora"}  # tests/gpu/test_gpu_qlora.py; the CPU error is tested in test_method_registry.py


def test_every_registered_method_is_in_the_matrix():
    assert {settings["name"] for settings, _, _ in CASES.values()} | NEEDS_CUDA == set(METHODS)


@pytest.fixture(scope="module")
def batch():
    return torch.randint(0, VOCAB, (2, 12), generator=torch.Generator().manual_seed(0))  # (B, T)


def logits_of(model, ids):
    with torch.no_grad():
        # prompt / ptuning return their virtual positions first; keep the positions of the real tokens.
        return model(input_ids=ids).logits[:, -ids.shape[1]:]  # (B, T, V)


def next_token_loss(model, ids):
    logits = model(input_ids=ids).logits[:, -ids.shape[1]:]  # (B, T, V)
    return F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), ids[:, 1:].reshape(-1))


@pytest.mark.parametrize("case", CASES)
def test_apply_trains_exactly_the_method_parameters(case, batch):
    raw, trainable, starts_at_base = CASES[case]
    cfg = method_config(raw)
    base_logits = logits_of(tiny_llama(vocab_size=VOCAB), batch)

    model = get_method(cfg.name).apply(tiny_llama(vocab_size=VOCAB), cfg)

    report = parameter_report(model)
    assert report.trainable == trainable
    assert report.total == BASE + (0 if cfg.name in ADDS_NO_PARAMETERS else trainable)
    if starts_at_base:
        torch.testing.assert_close(logits_of(model, batch), base_logits, atol=1e-6, rtol=0)


@pytest.mark.parametrize("case", CASES)
def test_train_save_load_reproduces_the_trained_model(case, batch, tmp_path):
    raw, _, _ = CASES[case]
    cfg = method_config(raw)
    method = get_method(cfg.name)
    torch.manual_seed(0)  # the methods' own random initialisation
    base_logits = logits_of(tiny_llama(vocab_size=VOCAB), batch)
    model = method.apply(tiny_llama(vocab_size=VOCAB), cfg)

    model.train()
    lr = 0.3 if cfg.name == "prompt" else 1e-2  # soft prompts need large steps (Lester et al. use 0.3)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses = []
    for _ in range(4):
        loss = next_token_loss(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        losses.append(next_token_loss(model, batch).item())
    assert losses[-1] < losses[0] - 0.01, losses
    trained = logits_of(model, batch)
    assert not torch.allclose(trained, base_logits, atol=1e-4)

    method.save(model, tmp_path)
    files = {p.name for p in tmp_path.iterdir()}
    assert any(name.endswith(".safetensors") for name in files), files
    assert any(name.endswith(".json") for name in files), files
    assert not any(name.endswith((".bin", ".pt", ".pth", ".pkl")) for name in files), files

    reloaded = method.load(tiny_llama(vocab_size=VOCAB), tmp_path)
    assert not reloaded.training and not any(p.requires_grad for p in reloaded.parameters())
    torch.testing.assert_close(logits_of(reloaded, batch), trained, atol=1e-6, rtol=0)
    if isinstance(model, PeftModel):
        by_peft = PeftModel.from_pretrained(tiny_llama(vocab_size=VOCAB), str(tmp_path))
        torch.testing.assert_close(logits_of(by_peft, batch), trained, atol=1e-6, rtol=0)
