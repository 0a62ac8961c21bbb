"""Serving throughput: 16 concurrent chat requests through tuneforge's batching engine vs the same
requests answered one by one with plain `model.generate` (greedy, KV cache, same prompts, same
max_new_tokens, stopping at EOS), on the default model, in the same process, alternating rounds.

Reported: aggregate generated tokens/s of each side (best round), the ratio, and whether the replies
are identical (both decode greedily, so they should be).

    python benchmarks/serve_throughput.py [--requests 16] [--max-new-tokens 64] [--rounds 2] [--threads N]
                                          [--products auto|onednn|torch]

Both sides run on the same model with the same float32 products, chosen by `--products`: `auto` as
`tuneforge serve` loads it (on AMD CPUs MKL's fast kernels, `native/mkl_dispatch.py`; elsewhere oneDNN's
products, `native/onednn_mm.py`), `onednn` oneDNN's with MKL on its generic kernels, `torch` torch's
own with MKL on its generic kernels (as before either existed).

On a machine whose cores are busy with other work, `--threads 1` keeps both sides from fighting over
cores that are not free (with more threads than free cores every small op waits for a straggler).
"""

from __future__ import annotations

import argparse
import json
import platform
import queue
import time

import torch

QUESTIONS = [
    "What is the capital of France?", "Write a haiku about snow.", "List three primary colors.",
    "Explain photosynthesis in one sentence.", "Give me a tip for learning Python.", "What is 12 times 7?",
    "Name three planets of the solar system.", "Describe a cat to a child.", "Why is the sky blue?",
    "Suggest a name for a coffee shop.", "What does a compiler do?", "Write a short greeting for an email.",
    "How do I boil an egg?", "What is the tallest mountain on Earth?", "Translate 'thank you' into Spanish.",
    "Give one reason to exercise daily.", "What is machine learning?", "Recommend a book for a long trip.",
]


def plain_generate(model, tokenizer, prompts: list[list[int]], max_new_tokens: int) -> tuple[list[str], int]:
    replies, tokens = [], 0
    for prompt in prompts:
        ids = torch.tensor([prompt])  # (1, T)
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=False, pad_token_id=tokenizer.eos_token_id)
        new = out[0, ids.shape[1]:]
        tokens += len(new)
        replies.append(tokenizer.decode(new, skip_special_tokens=True))
    return replies, tokens


def engine_concurrent(engine, prompts: list[list[int]], max_new_tokens: int) -> tuple[list[str], int]:
    from tuneforge.serve.engine import Completion
    from tuneforge.serve.sampling import SamplingParams

    done: queue.Queue = queue.Queue()
    for i, prompt in enumerate(prompts):  # all at once, as concurrent clients would send them
        engine.submit(prompt, SamplingParams(max_tokens=max_new_tokens),
                      lambda e, i=i: isinstance(e, Completion) and done.put((i, e)))
    results = dict(done.get() for _ in prompts)
    return [results[i].text for i in range(len(prompts))], sum(r.completion_tokens for r in results.values())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads for both sides (default: torch's own choice)")
    parser.add_argument("--products", choices=("auto", "onednn", "torch"), default="auto",
                        help="auto: as `tuneforge serve` chooses them; onednn / torch: those products, with MKL "
                             "on its generic kernels")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from tuneforge.models import load_model
    from tuneforge.native import mkl_dispatch
    from tuneforge.native.onednn_mm import use_onednn_linear
    from tuneforge.serve.engine import Engine
    from tuneforge.types import Message

    if args.products == "auto":
        mkl_dispatch.enable()  # as `load_engine` does first thing
    else:
        torch.ones(2, 2) @ torch.ones(2, 2)  # a first product: MKL settles on its generic kernels
    model, tokenizer = load_model("smollm2-135m-instruct")
    if args.products != "torch":
        use_onednn_linear(model)  # as `load_engine` does (it steps aside where MKL's fast kernels run)
    products = {"auto": "MKL fast" if mkl_dispatch.enable() else "oneDNN", "onednn": "oneDNN",
                "torch": "torch (MKL generic)"}[args.products]
    engine = Engine(model, tokenizer, max_batch_size=args.requests)
    questions = (QUESTIONS * (args.requests // len(QUESTIONS) + 1))[:args.requests]
    prompts = [engine.encode_chat([Message("user", q)]) for q in questions]
    engine_concurrent(engine, prompts[:2], 4)  # warm up both paths once
    plain_generate(model, tokenizer, prompts[:1], 4)

    best = {"plain": 0.0, "engine": 0.0}
    replies = {}
    for r in range(args.rounds):
        for name, run in (("plain", plain_generate), ("engine", engine_concurrent)):
            target = model if name == "plain" else engine
            started = time.perf_counter()
            texts, tokens = run(target, tokenizer, prompts, args.max_new_tokens) if name == "plain" else run(
                target, prompts, args.max_new_tokens)
            seconds = time.perf_counter() - started
            rate = tokens / seconds
            print(f"round {r + 1}  {name:<7} {tokens:5d} tokens  {seconds:7.2f} s  {rate:8.1f} tok/s", flush=True)
            best[name] = max(best[name], rate)
            replies[name] = texts
    engine.close()

    same = sum(a == b for a, b in zip(replies["plain"], replies["engine"]))
    ratio = best["engine"] / best["plain"]
    print()
    print(f"{'impl':<34} {'tok/s (best)':>12}")
    print(f"{'tuneforge engine, 16 concurrent':<34} {best['engine']:12.1f}")
    print(f"{'model.generate, one by one':<34} {best['plain']:12.1f}")
    print(f"ratio {ratio:.2f}x · identical greedy replies {same}/{len(prompts)} · torch threads "
          f"{torch.get_num_threads()} · {platform.processor() or platform.machine()} · "
          f"{products} products")
    print(json.dumps({"benchmark": "serve_throughput", "requests": len(prompts),
                      "max_new_tokens": args.max_new_tokens, "engine_tok_s": round(best["engine"], 1),
                      "plain_generate_tok_s": round(best["plain"], 1), "ratio": round(ratio, 2),
                      "identical_replies": same, "products": products}))


if __name__ == "__main__":
    main()
