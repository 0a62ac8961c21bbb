"""8-bit and 4-bit loading through bitsandbytes, and bf16 by default on CUDA."""

import importlib.util

import pytest
import torch

from tuneforge.config import ModelConfig
from tuneforge.models import load_model

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
needs_bnb = pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None,
                               reason="needs bitsandbytes: pip install 'tuneforge[quant]'")


def test_default_dtype_on_cuda_is_bf16_where_supported():
    model, _ = load_model(ModelConfig(device="cuda"))
    assert model.device.type == "cuda"
    assert model.dtype == (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)


@needs_bnb
@pytest.mark.parametrize("bits", ["8bit", "4bit"])
def test_quantized_default_model_still_answers(bits):
    from tuneforge.serve.generate import generate_reply
    from tuneforge.types import Message

    model, tokenizer = load_model(ModelConfig(device="cuda", quantization=bits))
    assert any("Linear8bitLt" in type(m).__name__ or "Linear4bit" in type(m).__name__ for m in model.modules())
    reply = generate_reply(model, tokenizer, [Message("user", "What is the capital of France?")], max_new_tokens=16)
    assert "Paris" in reply
