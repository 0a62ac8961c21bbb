"""A tiny random Llama: the same code paths as a real model, in milliseconds (tests, smoke runs)."""

from __future__ import annotations

import torch


def tiny_llama(vocab_size: int = 512, *, hidden_size: int = 64, layers: int = 2, heads: int = 4,
               kv_heads: int = 2, seed: int = 0, pad_token_id: int | None = None):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=hidden_size * 2,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
        max_position_embeddings=2048, tie_word_embeddings=False, pad_token_id=pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model.float().eval()
