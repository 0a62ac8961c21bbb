"""Evaluation throughput: an eval set answered and scored by tuneforge's batched evaluation
(`tuneforge.eval.generation` on the serving engine, batch 8) vs the same prompts answered one by one
with plain `model.generate` (greedy, KV cache, same max_new_tokens, stopping at EOS) and scored with
the same metrics, on the default model, in the same process, alternating rounds.

Reported: samples/s of each side (best round), the ratio, and how many answers are identical (both
decode greedily, so they should nearly all be; batched float math can flip a near-tie).

    python benchmarks/eval_throughput.py [--samples 24] [--batch-size 8] [--max-new-tokens 40] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from tuneforge.config import GenerationConfig, build_config
from tuneforge.eval.generation import generate_answers
from tuneforge.eval.metrics import build_metrics
from tuneforge.eval.runner import question_of, read_eval_set, reference_of

METRICS = ["exact_match", "rouge_l", "chrf", "json_valid"]


def one_by_one(model, tokenizer, engine, prompts, max_new_tokens: int) -> list[str]:
    answers = []
    for prompt in prompts:
        ids = torch.tensor([engine.encode_chat(prompt)])  # (1, T): the same prompt tokens as the engine's
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=False, pad_token_id=tokenizer.eos_token_id)
        answers.append(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip())
    return answers


def score(metrics, answers: list[str], references: list[str]) -> dict:
    return {m.name: m.summarize(answers, references, [m.score(a, r) for a, r in zip(answers, references)])
            for m in metrics}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads for both sides")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from tuneforge.models import load_model
    from tuneforge.quickstart import DATA
    from tuneforge.serve.engine import Engine

    cfg = build_config({"eval": {"datasets": [{"path": str(DATA / "test.jsonl")}], "limit": args.samples}})
    samples, _ = read_eval_set(cfg)
    prompts = [question_of(s) for s in samples]
    references = [reference_of(s) for s in samples]
    metrics = build_metrics(METRICS)
    gen = GenerationConfig(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    model, tokenizer = load_model("smollm2-135m-instruct")
    engine = Engine(model, tokenizer, max_batch_size=args.batch_size)
    generate_answers(engine, prompts[:2], GenerationConfig(max_new_tokens=4))  # warm up both paths once
    one_by_one(model, tokenizer, engine, prompts[:1], 4)

    best = {"batched": 0.0, "one_by_one": 0.0}
    answers, scores = {}, {}
    for r in range(args.rounds):
        for name in ("one_by_one", "batched"):
            started = time.perf_counter()
            if name == "batched":
                texts = generate_answers(engine, prompts, gen).texts
            else:
                texts = one_by_one(model, tokenizer, engine, prompts, args.max_new_tokens)
            scores[name] = score(metrics, texts, references)
            seconds = time.perf_counter() - started
            rate = len(prompts) / seconds
            print(f"round {r + 1}  {name:<10} {len(prompts):3d} samples  {seconds:7.2f} s  {rate:7.3f} samples/s",
                  flush=True)
            best[name] = max(best[name], rate)
            answers[name] = texts
    engine.close()

    same = sum(a == b for a, b in zip(answers["batched"], answers["one_by_one"]))
    ratio = best["batched"] / best["one_by_one"]
    print()
    print(f"{'impl':<44} {'samples/s (best)':>16}")
    print(f"{f'tuneforge batched eval, batch {args.batch_size}':<44} {best['batched']:16.3f}")
    print(f"{'model.generate one by one + same metrics':<44} {best['one_by_one']:16.3f}")
    print(f"ratio {ratio:.2f}x · identical greedy answers {same}/{len(prompts)} · metrics batched "
          f"{json.dumps(scores['batched'])} · torch threads {torch.get_num_threads()} · "
          f"{platform.processor() or platform.machine()}")
    print(json.dumps({"benchmark": "eval_throughput", "samples": len(prompts), "batch_size": args.batch_size,
                      "max_new_tokens": args.max_new_tokens, "batched_samples_s": round(best["batched"], 3),
                      "one_by_one_samples_s": round(best["one_by_one"], 3), "ratio": round(ratio, 2),
                      "identical_answers": same}))


if __name__ == "__main__":
    main()
