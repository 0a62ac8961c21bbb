"""QLoRA on a real 4-bit base: LoRA over bitsandbytes NF4 layers trains, saves and reloads through peft."""

import importlib.util

import pytest
import torch
import torch.nn.functional as F

from tuneforge.config import ModelConfig
from tuneforge.methods import get_method, method_config, parameter_report
from tuneforge.models import load_model, tiny_llama

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
    pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None,
                       reason="needs bitsandbytes: pip install 'tuneforge[quant]'"),
]
VOCAB = 128


@pytest.fixture
def base_dir(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    path = tmp_path / "base"
    tiny_llama(vocab_size=VOCAB).save_pretrained(path)
    tok = Tokenizer(models.WordLevel({f"w{i}": i for i in range(VOCAB)}, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="w1", pad_token="w2").save_pretrained(path)
    return path


def load_4bit(path):
    model, _ = load_model(ModelConfig(name_or_path=str(path), device="cuda", quantization="4bit"))
    return model


def test_qlora_trains_saves_and_reloads_through_peft(base_dir, tmp_path):
    from peft import PeftModel

    cfg = method_config({"name": "qlora", "r": 4, "dropout": 0.0})
    model = get_method("qlora").apply(load_4bit(base_dir), cfg)
    # LoRA on all 7 linear layers of both layers (see tests/methods); the 4-bit base counts unpacked.
    lora_params = 2 * 4 * (128 + 96 + 96 + 128 + 192 + 192 + 192)
    assert parameter_report(model).trainable == lora_params
    assert parameter_report(model).total == 90432 + lora_params

    ids = torch.randint(0, VOCAB, (2, 12), generator=torch.Generator().manual_seed(0)).cuda()  # (B, T)

    def loss_of(m):
        logits = m(input_ids=ids).logits.float()  # (B, T, V)
        return F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), ids[:, 1:].reshape(-1))

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    first = loss_of(model).item()
    for _ in range(4):
        loss = loss_of(model)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    with torch.no_grad():
        assert loss_of(model) < first - 0.01
        trained = model(input_ids=ids).logits

    out = tmp_path / "adapter"
    get_method("qlora").save(model, out)
    with torch.no_grad():
        reloaded = get_method("qlora").load(load_4bit(base_dir), out)(input_ids=ids).logits
        by_peft = PeftModel.from_pretrained(load_4bit(base_dir), str(out))(input_ids=ids).logits
    torch.testing.assert_close(reloaded, trained, atol=1e-3, rtol=0)
    torch.testing.assert_close(by_peft, trained, atol=1e-3, rtol=0)
