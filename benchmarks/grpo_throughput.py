"""GRPO throughput: tuneforge's stage `grpo` vs TRL's `GRPOTrainer`, same model, prompts and rewards.

Both sides train the default model (`smollm2-135m-instruct`, fp32 on CPU) with the same LoRA (r=16,
alpha=32, all linear layers, no dropout) on the same 32 prompts (the quickstart's JSON-format task,
with the system prompt of `examples/train/grpo-json.yaml`), G = 8 completions per prompt, at most
`--max-new-tokens` (default 64, the most allowed) new tokens at temperature 0.7, 4 prompts (32 completions)
per optimizer step, the same learning rate, beta = 0 (no reference pass on either side) and loss
type `grpo`. The rewards are the example's (json_schema + 0.5 × format + 0.3 × key order + rouge_l
against the reference answer), computed by the same tuneforge code for both: TRL gets them as one
reward function, with the reference answer and the question from the dataset's columns.

- `tuneforge`: `run_training` with `train.stage: grpo` (the product path): sampling on the serving
  engine (continuous batching, KV cache) on the model being trained;
- `trl`: `GRPOTrainer` with peft, sampling with transformers' `generate` (its default without vLLM).

Each run is a fresh child process; runs alternate. Time per step is the median optimizer step
(sampling + scoring + update) after the first; completions/s = completions per step / time per step.
Reward curves (the mean total reward of each step's completions, averaged over the repeats) are printed
side by side: the same task and rewards should give the same curve within noise. Each repeat runs both
sides with its own seed (42, 43, ...), so the repeats average over prompt orders and samples.

    python benchmarks/grpo_throughput.py [--steps 6] [--repeats 2] [--max-new-tokens 64]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "train" / "grpo-json.yaml"
RUNS = ("tuneforge", "trl")
PROMPTS, G, PROMPTS_PER_STEP, LR = 32, 8, 4, 1e-3


def example_settings():
    from tuneforge.config import load_config

    return load_config(EXAMPLE)


def prompt_records(cfg) -> list[dict]:
    from tuneforge.io import read_samples

    samples, _ = read_samples(cfg.data)
    return [{"messages": [{"role": "system", "content": cfg.template.system},
                          *({"role": m.role, "content": m.content} for m in s.messages)]}
            for s in samples[:PROMPTS]]


def run_tuneforge(args) -> dict:
    from tuneforge.train.run import run_training

    cfg = example_settings()
    data = Path(tempfile.mkdtemp()) / "prompts.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in prompt_records(cfg)), encoding="utf-8")
    tc = cfg.train
    cfg.data.datasets[0].path = str(data)
    tc.output_dir, tc.max_steps, tc.batch_size, tc.learning_rate = tempfile.mkdtemp(), args.steps, PROMPTS_PER_STEP, LR
    tc.seed = args.seed
    assert tc.grpo is not None
    tc.grpo.max_new_tokens, tc.grpo.generations = args.max_new_tokens, G
    cfg.method = cfg.method.model_copy(update={"dropout": 0.0})
    steps, rewards, last = [], [], [time.perf_counter()]

    def on_log(record: dict) -> None:
        now = time.perf_counter()
        steps.append(now - last[0])
        last[0] = now
        rewards.append(record["reward"])

    start = time.perf_counter()
    run_training(cfg, on_log=on_log, on_start=lambda *_: last.__setitem__(0, time.perf_counter()))
    return {"step_s": steps, "reward": rewards, "total_s": time.perf_counter() - start}


def run_trl(args) -> dict:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from tuneforge.eval.rewards import build_rewards
    from tuneforge.models.load import resolve_model_path

    cfg = example_settings()
    assert cfg.train.grpo is not None
    rewards = build_rewards(cfg.train.grpo.rewards)

    def reward(completions, reference, question, **_):  # conversational completions: [{"role", "content"}]
        return rewards([c[0]["content"] for c in completions], reference, question).total

    records = prompt_records(cfg)
    # TRL hands a dataset's other columns to reward functions: the reference answer (rouge_l compares
    # with it) and the question, as tuneforge's rewards get them from its prompts.
    dataset = Dataset.from_list([{"prompt": r["messages"][:-1], "reference": r["messages"][-1]["content"],
                                  "question": r["messages"][-2]["content"]} for r in records])
    steps, curve = [], []

    class Timer(TrainerCallback):
        last = 0.0

        def on_step_begin(self, *a, **k):
            if not self.last:
                Timer.last = time.perf_counter()

        def on_step_end(self, *a, **k):
            now = time.perf_counter()
            steps.append(now - Timer.last)
            Timer.last = now

        def on_log(self, _args, _state, _control, logs=None, **k):
            if logs and "reward" in logs:
                curve.append(logs["reward"])

    out = tempfile.mkdtemp()
    config = GRPOConfig(output_dir=out, per_device_train_batch_size=PROMPTS_PER_STEP * G, num_generations=G,
                        max_completion_length=args.max_new_tokens, temperature=0.7, learning_rate=LR,
                        lr_scheduler_type="constant", warmup_steps=0, beta=0.0, loss_type="grpo",
                        max_steps=args.steps, logging_steps=1, report_to=[], use_cpu=True, bf16=False,
                        save_strategy="no", seed=args.seed,
                        disable_dropout=True)
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    start = time.perf_counter()
    trainer = GRPOTrainer(model=resolve_model_path("smollm2-135m-instruct"), reward_funcs=reward, args=config,
                          train_dataset=dataset, peft_config=lora, callbacks=[Timer()])
    Timer.last = time.perf_counter()
    trainer.train()
    return {"step_s": steps, "reward": curve, "total_s": time.perf_counter() - start}


def child(args) -> None:
    result = {"tuneforge": run_tuneforge, "trl": run_trl}[args.child](args)
    print("RESULT " + json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--max-new-tokens", type=int, default=64, choices=range(1, 65), metavar="1..64")
    parser.add_argument("--runs", default=",".join(RUNS))
    parser.add_argument("--seed", type=int, default=42, help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=RUNS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    results: dict[str, list[dict]] = {r: [] for r in args.runs.split(",")}
    for repeat in range(args.repeats):
        for run in results:  # alternating, each a fresh process; each repeat with its own seed, the same for both
            cmd = [sys.executable, __file__, "--child", run, "--steps", str(args.steps),
                   "--max-new-tokens", str(args.max_new_tokens), "--seed", str(42 + repeat)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                sys.exit(f"{run} failed:\n{out.stderr[-3000:]}")
            results[run].append(json.loads(line[7:]))

    completions = PROMPTS_PER_STEP * G
    summary = {}
    print(f"GRPO, default model, LoRA r=16, CPU fp32, G={G}, {PROMPTS_PER_STEP} prompts/step, "
          f"<= {args.max_new_tokens} new tokens, {args.steps} steps × {args.repeats}")
    print(f"{'run':<10} {'s/step':>8} {'compl/s':>8}  reward per step")
    for run, rs in results.items():
        per_step = statistics.median(s for r in rs for s in (r["step_s"][1:] or r["step_s"]))
        curve = [round(statistics.mean(c), 3) for c in zip(*(r["reward"] for r in rs))]
        summary[run] = {"s_per_step": round(per_step, 2), "completions_per_s": round(completions / per_step, 3),
                        "reward_curve": curve}
        print(f"{run:<10} {per_step:>8.2f} {completions / per_step:>8.3f}  {curve}")
    if {"tuneforge", "trl"} <= summary.keys():
        summary["ratio"] = round(summary["tuneforge"]["completions_per_s"] / summary["trl"]["completions_per_s"], 2)
        print(f"tuneforge / trl completions/s: {summary['ratio']}×")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
