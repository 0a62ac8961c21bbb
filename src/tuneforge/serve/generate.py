"""One-shot generation through a model's chat template, with token streaming."""

from __future__ import annotations

from typing import Callable

import torch

from tuneforge.types import Message


def _streamer(tokenizer, on_text: Callable[[str], None]):
    from transformers import TextStreamer

    class CallbackStreamer(TextStreamer):
        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            if text:
                on_text(text)

    return CallbackStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)


@torch.inference_mode()
def generate_reply(model, tokenizer, messages: list[Message], *, template: str = "auto",
                   max_new_tokens: int = 256, temperature: float = 0.0, top_p: float = 1.0, seed: int = 0,
                   stream: Callable[[str], None] | None = None) -> str:
    """Render `messages` plus the generation prompt, generate, and return the reply text."""
    from tuneforge.formatting import load_template, prompt_text

    text = prompt_text(load_template(template, tokenizer), messages)
    # The template already wrote BOS and other specials where the model expects them.
    ids = torch.tensor([tokenizer(text, add_special_tokens=False).input_ids], device=model.device)  # (1, T)
    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else {
        "do_sample": False}
    torch.manual_seed(seed)
    out = model.generate(
        input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        streamer=_streamer(tokenizer, stream) if stream else None, **sampling,
    )
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


@torch.inference_mode()
def generate_batch(model, tokenizer, conversations: list[list[Message]], *, template: str = "auto",
                   max_new_tokens: int = 128, batch_size: int = 8) -> list[str]:
    """Greedy replies to many conversations, `batch_size` at a time with left padding."""
    from tuneforge.formatting import load_template, prompt_text

    chat = load_template(template, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    replies = []
    for b in range(0, len(conversations), batch_size):
        prompts = [tokenizer(prompt_text(chat, c), add_special_tokens=False).input_ids
                   for c in conversations[b:b + batch_size]]
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompts], device=model.device)  # (B, T)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=model.device)
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=pad_id)
        replies += [tokenizer.decode(row[width:], skip_special_tokens=True).strip() for row in out]
    return replies
