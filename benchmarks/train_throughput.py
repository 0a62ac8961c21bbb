"""LoRA fine-tuning throughput: tuneforge's training path vs TRL `SFTTrainer` + peft, same inputs.

Both sides train the same model (the default `smollm2-135m-instruct`, fp32 on CPU) with the same LoRA
(r=16, alpha=16, dropout 0.05 unless `--lora-dropout` says otherwise, all linear layers), for one
epoch over the same first `--samples` records of alpaca_en_demo.json, tokenised once by tuneforge (its
chat template and loss mask, cutoff 1024) and handed to TRL pre-tokenised (`input_ids` + `labels`), so
every side sees identical tokens and labels. Same learning rate (2e-4, cosine, 3% warmup), same seed,
same effective batch: 8 samples per optimizer step unpacked, 2 rows of 1024 tokens (~8 samples)
packed, as 2 micro-batches of 1 row. Runs:

- `tuneforge`: `tuneforge.train.run_training` (the product path) with `train.packing` on;
- `trl-default`: SFTConfig defaults (padded batches, gradient checkpointing) except the shared settings
  above and `bf16=False` (its bf16 default needs a GPU; every run here is fp32);
- `trl-best`: its best throughput settings on CPU: BFD packing (which turns on padding-free batches
  with per-sample position ids) and no gradient checkpointing.

Each run is a fresh child process; runs alternate (tuneforge, trl-default, trl-best, then again).

How tokens are counted: *trained tokens* are the positions that carry a label after the next-token
shift (`labels[1:] != -100` per sample: the assistant replies and their end-of-turn token), summed over
the samples of the epoch. The count is a property of the data, identical for every run (our run's
own per-step counts are checked against it). Trained tokens/s = that count / wall time from the start
of training to the end of the last optimizer step (model loading and tokenising excluded). Non-pad
tokens/s (all sample tokens, prompts included) is printed too.
Peak RSS: the child's maximum resident set (ru_maxrss) at the end of training.
Final loss: the last optimizer step's training loss, and the token-mean loss of the trained model on
the next 8 records of the file (held out), computed by the same code for every run.
MFU: 4 x parameters x tokens/s (forward + activation gradients; LoRA trains no base weights) over
this machine's fp32 matmul peak, the best of several timings of square products (4096^3, 2048^3) and
of the default model's MLP products, made in this run by torch's `@` (MKL, on its fast kernels where
`native/mkl_dispatch.py` switches them on, as tuneforge's training does) and by oneDNN; on a 2-core EPYC
both reach ~510 GFLOP/s, where MKL's generic kernels, which AMD CPUs get by default, reach ~215 (MFU
figures recorded before the peak took oneDNN's rate divided by that). Printed twice:
over trained tokens (`MFU`, the strict figure: prompt tokens cost forward and backward work but earn
no credit) and over non-pad tokens (`MFU np`: every token runs forward and backward through every
layer; it over-counts prompt tokens by the LM head, which runs only where there are labels).

    python benchmarks/train_throughput.py [--samples 64] [--repeats 2] [--runs tuneforge,trl-default,trl-best]
    python benchmarks/train_throughput.py --data long [--cutoff 2048] [--breakdown] [--trl-same-process-setup]
    python benchmarks/train_throughput.py --model-shape llama-3.2-1b --dtype bf16 --device cuda

`--data long`: long multi-turn dialogue, the prompt turns plus the chosen reply of each record of
dpo_en_demo.json as SFT data (median about 540 tokens, p90 about 1,500), cut with
`template.cutoff_policy: truncate_reply` (every side gets the same rows, none dropped), batch 4: TRL's
defaults take 4 padded samples per step, the packed runs as many rows of `--cutoff` tokens as hold about
4 samples of the data's mean length, one row per micro-batch. It prints MFU a third way, `MFU attn`: the
non-pad figure with each sample's own causal attention FLOPs added (6 x layers x attention width x L^2
per sample of L tokens: QK^T and AV forward over the causal half, twice that backward), so the cost
of attention, which grows with L^2, is told apart from the 4N per token. `--breakdown` profiles a
packed micro-batch of `--cutoff` tokens through tuneforge's training step (torch.profiler, self time
per operator) and prints where it goes: attention forward and backward, matmuls, element-wise work,
the optimizer, and the rest (Python, autograd bookkeeping, the native LoRA kernels).

TRL's runs get torch and glibc as its users get them. `--trl-same-process-setup` gives them the process
settings tuneforge's training makes for itself (MKL's fast kernels on AMD CPUs, large tensors from
malloc's heap: `native/mkl_dispatch.py`, `native/heap.py`), to tell that part of the lead from the rest.

`--model-shape llama-3.2-1b` trains a random-initialised model of Llama-3.2-1B's shape (no download),
written once to a temporary directory with the default model's tokenizer; it needs `--device cuda`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
RUNS = ("tuneforge", "trl-default", "trl-best")
DATA_FILES = {"alpaca": "alpaca_en_demo.json", "long": "dpo_en_demo.json"}
LONG_BATCH = 4  # samples per optimizer step on long data
LR, CUTOFF, HELD_OUT = 2e-4, 1024, 8
LORA = {"name": "lora", "r": 16, "alpha": 16.0, "dropout": 0.05, "target_modules": "all-linear"}
SAMPLES_PER_STEP = 8  # the same effective batch: 8 samples unpacked, or 2 packed rows of 1024 (~8 samples)
ROWS, ROW_ACCUM = 1, 2  # packed: micro-batches of 1 row, 2 per step (the same work, half the activations)
LLAMA_3_2_1B = dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                    num_key_value_heads=8, head_dim=64, vocab_size=128256, max_position_embeddings=131072,
                    rope_theta=500000.0, tie_word_embeddings=True, rms_norm_eps=1e-5)


# ---- what every child shares -------------------------------------------------------------------

def lora_settings(args) -> dict:
    return {**LORA, "dropout": args.lora_dropout}


def model_config(args):
    from tuneforge.config import ModelConfig

    dtype = {"fp32": "float32", "bf16": "bfloat16"}[args.dtype]
    return ModelConfig(name_or_path=args.model, dtype=dtype, device=args.device)


def template_settings(args) -> dict:
    """Long dialogues keep every sample: a reply that does not fit is cut (`truncate_reply`), as
    LLaMA-Factory users expect; the short data fits whole."""
    return {"cutoff_len": args.cutoff, **({"cutoff_policy": "truncate_reply"} if args.data == "long" else {})}


def tokenised(args, records: list[dict]):
    """Rows (input_ids, labels) exactly as `run_training` tokenises them."""
    from tuneforge.config import build_config
    from tuneforge.formatting import tokenize_samples
    from tuneforge.io import read_samples
    from tuneforge.models import load_tokenizer

    path = Path(tempfile.mkstemp(suffix=".json", dir=args.workdir)[1])
    path.write_text(json.dumps(records), encoding="utf-8")
    cfg = build_config({"data": str(path), "template": template_settings(args)})
    samples, _ = read_samples(cfg.data)
    ds, _ = tokenize_samples(samples, load_tokenizer(model_config(args)), cfg.template)
    return [([int(t) for t in ds["input_ids"][i]], [int(t) for t in ds["labels"][i]]) for i in range(len(ds))]


def trained_tokens(rows) -> int:
    return sum(sum(1 for y in labels[1:] if y != -100) for _, labels in rows)


def records(args) -> tuple[list[dict], list[dict]]:
    data = json.loads((DATASETS / DATA_FILES[args.data]).read_text(encoding="utf-8"))
    if args.data == "long":  # sharegpt preference records -> the dialogue with its chosen reply
        data = [{"conversations": [*r["conversations"], r["chosen"]]} for r in data]
    return data[:args.samples], data[args.samples:args.samples + HELD_OUT]


def schedule(args, rows) -> dict:
    """Micro-batch sizes and accumulation, the same effective batch on every side: padded samples per
    step, and packed rows (one per micro-batch) per step."""
    if args.data != "long":
        return {"padded": SAMPLES_PER_STEP, "rows": ROWS, "row_accum": ROW_ACCUM}
    mean = sum(len(ids) for ids, _ in rows) / len(rows)
    return {"padded": LONG_BATCH, "rows": 1, "row_accum": max(1, round(LONG_BATCH * mean / args.cutoff))}


def attention_sq(rows) -> int:
    """Sum of squared sample lengths: each sample's causal attention costs 6 x layers x width x L^2 FLOPs."""
    return sum(len(ids) ** 2 for ids, _ in rows)


def attention_width(model) -> int:
    """layers x (heads x head dim): the attention FLOPs per squared token of one sample, over 6."""
    c = model.config
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    return c.num_hidden_layers * c.num_attention_heads * head_dim


def heldout_loss(model, rows) -> float:
    """Token-mean next-token loss over `rows`, one sample per forward (no padding, dropout off)."""
    import torch

    from tuneforge.lm_loss import logits_loss_sum

    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    with torch.no_grad():
        for ids, labels in rows:
            logits = model(input_ids=torch.tensor([ids], device=device), use_cache=False).logits  # (1, T, V)
            s, n = logits_loss_sum(logits, torch.tensor([labels], device=device))
            total, count = total + float(s), count + n
    return total / count


def peak_memory_mb(device: str) -> dict:
    out = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device == "cuda":
        import torch

        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


# Square products and the default model's MLP products (hidden 576, intermediate 1536), (m, k, n).
PEAK_SHAPES = ((4096, 4096, 4096), (2048, 2048, 2048), (2048, 576, 1536), (2048, 1536, 576))


def matmul_peak_gflops(device: str, dtype: str, repeats: int = 6) -> dict:
    """The machine's dense matmul rate: the best of `repeats` timings of each of `PEAK_SHAPES`, by torch's
    own `@` (MKL, on its fast kernels where `mkl_dispatch` could switch them on) and, for fp32 on CPU, by
    oneDNN's inner product (~2x MKL's generic kernels on AMD CPUs): `gflops` is the best of all, the
    peak MFU divides by."""
    import torch

    from tuneforge.native import onednn_mm
    from tuneforge.native.build import switched_off

    dt = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    products = {"torch": torch.mm}
    if device == "cpu" and dtype == "fp32" and torch.backends.mkldnn.is_available() and not switched_off():
        products["onednn"] = lambda a, b: onednn_mm._inner_product(a, b.t(), None)
    out = {f"{name}_gflops": 0.0 for name in products}
    for m, k, n in PEAK_SHAPES:
        a = torch.randn(m, k, dtype=dt, device=device)
        b = torch.randn(k, n, dtype=dt, device=device)
        for name, product in products.items():
            best = float("inf")
            for _ in range(repeats + 1):
                if device == "cuda":
                    torch.cuda.synchronize()
                t = time.perf_counter()
                product(a, b)
                if device == "cuda":
                    torch.cuda.synchronize()
                best = min(best, time.perf_counter() - t)
            out[f"{name}_gflops"] = max(out[f"{name}_gflops"], 2 * m * k * n / best / 1e9)
    out["gflops"] = max(out.values())
    return out


# ---- the runs (each in its own child process) ---------------------------------------------------

def run_tuneforge(args) -> dict:
    from tuneforge.config import build_config
    from tuneforge.train.run import run_training

    train, held = records(args)
    data = Path(args.workdir) / "train.json"
    data.write_text(json.dumps(train), encoding="utf-8")
    mc = model_config(args)
    batch = schedule(args, tokenised(args, train))
    cfg = build_config({
        "model": mc.model_dump(), "data": str(data), "template": template_settings(args),
        "method": lora_settings(args),
        "train": {"output_dir": str(Path(args.workdir) / "run"), "learning_rate": LR, "epochs": 1,
                  "packing": True, "batch_size": batch["rows"], "grad_accum": batch["row_accum"], "seed": 42,
                  "log_every": 1},
    })
    clock: dict = {"logs": []}

    def on_log(record: dict) -> None:
        clock["end"] = time.perf_counter()
        clock["logs"].append(record)

    summary = run_training(cfg, on_start=lambda *_: clock.update(start=time.perf_counter()), on_log=on_log)
    memory = peak_memory_mb(args.device)  # before the evaluation below loads a second copy
    logs = clock["logs"]
    assert sum(r["trained_tokens"] for r in logs) == trained_tokens(tokenised(args, train)), "token counts differ"

    from tuneforge.methods import get_method
    from tuneforge.models import load_model

    base, _ = load_model(mc)
    model = get_method("lora").load(base, summary.final_dir)
    return {"seconds": clock["end"] - clock["start"], "steps": len(logs), "loss": logs[-1]["loss"],
            "heldout_loss": heldout_loss(model, tokenised(args, held)),
            "params": summary.total, "attn_width": attention_width(base), **memory}


def run_trl(args, best: bool) -> dict:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from tuneforge.methods.lora import LoraSettings, peft_config
    from tuneforge.models import load_model

    train, held = records(args)
    rows = tokenised(args, train)
    dataset = Dataset.from_dict({"input_ids": [r[0] for r in rows], "labels": [r[1] for r in rows]})
    model, tokenizer = load_model(model_config(args))
    params = sum(p.numel() for p in model.parameters())
    batch = schedule(args, rows)
    shared = dict(output_dir=str(Path(args.workdir) / "trl"), num_train_epochs=1, learning_rate=LR,
                  lr_scheduler_type="cosine", warmup_steps=0.03, max_length=args.cutoff, logging_steps=1,
                  save_strategy="no", report_to="none", seed=42, bf16=args.dtype == "bf16",
                  use_cpu=args.device == "cpu", disable_tqdm=True)
    if best:
        # One packed row per micro-batch: padding-free flattens a batch into one sequence, so 2 rows
        # would attend over 2048 positions (block mask) instead of 2 x 1024.
        settings = SFTConfig(**shared, per_device_train_batch_size=batch["rows"],
                             gradient_accumulation_steps=batch["row_accum"], packing=True, packing_strategy="bfd",
                             gradient_checkpointing=False)
    else:
        settings = SFTConfig(**shared, per_device_train_batch_size=batch["padded"])

    clock: dict = {"losses": []}

    class Clock(TrainerCallback):
        def on_train_begin(self, *a, **k):
            clock["start"] = time.perf_counter()

        def on_step_end(self, *a, **k):
            clock["end"] = time.perf_counter()

        def on_log(self, _args, _state, _control, logs=None, **k):
            if logs and "loss" in logs:
                clock["losses"].append(logs["loss"])

    trainer = SFTTrainer(model=model, args=settings, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=peft_config(LoraSettings(**lora_settings(args))), callbacks=[Clock()])
    trainer.train()
    memory = peak_memory_mb(args.device)
    return {"seconds": clock["end"] - clock["start"], "steps": trainer.state.global_step,
            "loss": clock["losses"][-1], "heldout_loss": heldout_loss(trainer.model, tokenised(args, held)),
            "params": params, "attn_width": attention_width(model), **memory}


# ---- where a packed micro-batch's time goes ---------------------------------------------------------

# Operator name patterns (self time) -> category; the first match wins, unmatched aten ops are element-wise.
CATEGORIES = (
    ("attention bwd", ("scaled_dot_product", "attention"), ("backward",)),
    ("attention fwd", ("scaled_dot_product", "attention"), ()),
    ("matmul", ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::linear", "aten::matmul",
                "mkldnn::_linear_pointwise"), ()),
    ("LoRA kernels", ("lora",), ()),  # tuneforge's native LoRA layers (autograd functions around C kernels)
)  # matched in lower case: SDPA's operators, and tuneforge's _PackedCausalAttention(Backward)
PROFILED_STEPS = 3
TRL_SETUP_NOTE = "; TRL with tuneforge's process setup"


def _category(name: str) -> str:
    name = name.lower()
    for label, any_of, also in CATEGORIES:
        if any(k in name for k in any_of) and all(k in name for k in also):
            return label
    return "element-wise" if name.startswith("aten::") else "other ops"


def profile_packed_step(args, rows) -> dict:
    """Self CPU time per operator category of forward + backward on the fullest packed row of several
    samples within `--cutoff` tokens (tuneforge's LoRA model, kernels and loss, as `run_training` builds them), and the
    optimizer step timed on its own; means over `PROFILED_STEPS` steps after one warm-up step."""
    from types import SimpleNamespace

    import torch
    from torch.profiler import ProfilerActivity, profile

    from tuneforge.lm_loss import CausalLMLoss
    from tuneforge.methods import get_method
    from tuneforge.methods.lora import LoraSettings
    from tuneforge.models import load_model
    from tuneforge.native import speed_up
    from tuneforge.train.batching import collate_packed, pack_rows

    model, tokenizer = load_model(model_config(args))
    model = get_method("lora").apply(model, LoraSettings(**lora_settings(args)))
    speed_up(model)
    model.train()
    examples = [SimpleNamespace(input_ids=ids, labels=labels) for ids, labels in rows]
    packed = pack_rows([len(e.input_ids) for e in examples], args.cutoff, seed=0)
    # The fullest row that packs several samples (a row of one cut reply has no per-sample attention).
    row = max(packed, key=lambda r: (len(r) > 1, sum(len(examples[i].input_ids) for i in r)))
    batch = collate_packed(examples, [row], tokenizer.pad_token_id or 0)
    loss_fn = CausalLMLoss(model, whole_forward=False)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR)

    def forward_backward() -> None:
        loss, n = loss_fn(**batch.tensors)
        (loss / n).backward()

    def optimizer_step() -> float:
        t = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - t

    forward_backward()
    optimizer_step()
    load_before = os.getloadavg()[0]
    walls, opt = [], []
    by_category: dict[str, float] = {}
    ops: dict[str, float] = {}
    for _ in range(PROFILED_STEPS):
        with profile(activities=[ProfilerActivity.CPU]) as prof:  # forward + backward only
            t = time.perf_counter()
            forward_backward()
            walls.append(time.perf_counter() - t)
        for e in prof.key_averages():
            seconds = e.self_cpu_time_total / 1e6 / PROFILED_STEPS
            by_category[_category(e.key)] = by_category.get(_category(e.key), 0.0) + seconds
            ops[e.key] = ops.get(e.key, 0.0) + seconds
        opt.append(optimizer_step())
    return {"wall_s": sum(walls) / PROFILED_STEPS, "optimizer_s": sum(opt) / PROFILED_STEPS,
            "categories": by_category, "top_ops": sorted(ops.items(), key=lambda kv: -kv[1])[:12],
            "samples_in_row": [len(examples[i].input_ids) for i in row], "tokens": int(batch.n_tokens),
            "threads": torch.get_num_threads(), "load": [load_before, os.getloadavg()[0]]}


def print_breakdown(args, out: dict) -> None:
    total = out["wall_s"] + out["optimizer_s"]
    print(f"\none packed micro-batch of {out['tokens']} tokens ({len(out['samples_in_row'])} samples: "
          f"{sorted(out['samples_in_row'], reverse=True)}), {args.data} data, {args.model_shape} {args.dtype} on "
          f"{args.device}; mean of {PROFILED_STEPS} steps: forward+backward {out['wall_s'] * 1e3:.0f} ms, "
          f"optimizer {out['optimizer_s'] * 1e3:.0f} ms; {out['threads']} threads, 1-minute load average "
          f"{out['load'][0]:.1f} -> {out['load'][1]:.1f} (this run included; other processes' work delays every "
          f"multi-threaded operation)")
    print(f"{'where':<32} {'ms':>8} {'share':>7}")
    shares = dict(out["categories"])
    shares["optimizer"] = out["optimizer_s"]
    shares["python, autograd, native kernels"] = max(total - sum(shares.values()), 0.0)
    for name, seconds in sorted(shares.items(), key=lambda kv: -kv[1]):
        print(f"{name:<32} {seconds * 1e3:>8.1f} {seconds / total:>7.1%}")
    print("top operators (self ms): " + ", ".join(f"{k} {v * 1e3:.1f}" for k, v in out["top_ops"]))
    print(json.dumps({"benchmark": "train_throughput_breakdown", "data": args.data, "cutoff": args.cutoff,
                      "tokens": out["tokens"], "threads": out["threads"], "load": [round(x, 2) for x in out["load"]],
                      "ms": {k: round(v * 1e3, 1) for k, v in shares.items()}}))


def child(args) -> None:
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device is visible to torch")
    if args.child in ("peak", "breakdown") or (args.child.startswith("trl") and args.trl_same_process_setup):
        from tuneforge.native import heap, mkl_dispatch

        mkl_dispatch.enable()  # as tuneforge's training does first thing (the tuneforge run's own call)
        if args.child != "peak" and args.device == "cpu":
            heap.keep_allocations_on_heap()  # as tuneforge's training does on CPU
    if args.child == "peak":
        out = matmul_peak_gflops(args.device, args.dtype)
    elif args.child == "breakdown":
        out = profile_packed_step(args, tokenised(args, records(args)[0]))
    else:
        rows = tokenised(args, records(args)[0])
        out = run_tuneforge(args) if args.child == "tuneforge" else run_trl(args, best=args.child == "trl-best")
        out.update(trained=trained_tokens(rows), tokens=sum(len(ids) for ids, _ in rows), sq=attention_sq(rows),
                   batch=schedule(args, rows))
    print("RESULT " + json.dumps(out), flush=True)


# ---- the parent: alternate runs, then report ----------------------------------------------------

def random_model_dir(args, workdir: Path) -> str:
    """A random-initialised model of Llama-3.2-1B's shape with the default model's tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tuneforge.models import load_tokenizer

    out = workdir / "llama-3.2-1b-random"
    tokenizer = load_tokenizer("smollm2-135m-instruct")
    torch.manual_seed(0)
    config = LlamaConfig(**LLAMA_3_2_1B, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    LlamaForCausalLM(config).to(torch.bfloat16 if args.dtype == "bf16" else torch.float32).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


def spawn(args, name: str, workdir: Path) -> dict:
    run_dir = workdir / f"{name}-{time.monotonic_ns()}"
    run_dir.mkdir()
    cmd = [sys.executable, __file__, "--child", name, "--workdir", str(run_dir), "--samples", str(args.samples),
           "--model", args.model, "--dtype", args.dtype, "--device", args.device,
           "--lora-dropout", str(args.lora_dropout), "--data", args.data, "--cutoff", str(args.cutoff)]
    cmd += ["--trl-same-process-setup"] if args.trl_same_process_setup else []
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.exit(f"{name} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def report(args, results: dict[str, list[dict]], peaks: list[dict]) -> None:
    peak = max(p["gflops"] for p in peaks)
    by = ", ".join(f"{name[:-7]} {max(p.get(name, 0) for p in peaks):.1f}" for name in peaks[0] if name != "gflops")
    rows = {}
    for name, runs in results.items():
        tps = [r["trained"] / r["seconds"] for r in runs]
        best = runs[tps.index(max(tps))]
        rows[name] = {
            "trained_tok_s": statistics.median(tps), "trained_tok_s_runs": [round(t, 1) for t in tps],
            "nonpad_tok_s": statistics.median(r["tokens"] / r["seconds"] for r in runs),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs), "final_loss": best["loss"],
            "heldout_loss": best["heldout_loss"], "steps": best["steps"],
        }
        for key, rate in (("mfu", "trained_tok_s"), ("mfu_nonpad", "nonpad_tok_s")):
            rows[name][key] = 4 * best["params"] * rows[name][rate] / (peak * 1e9)
        # The same non-pad work plus each sample's own causal attention, per second of the median run.
        seconds = best["tokens"] / rows[name]["nonpad_tok_s"]
        rows[name]["mfu_attn"] = (4 * best["params"] * best["tokens"] + 6 * best["attn_width"] * best["sq"]
                                  ) / seconds / (peak * 1e9)
        if "peak_gpu_mb" in best:
            rows[name]["peak_gpu_mb"] = max(r["peak_gpu_mb"] for r in runs)
    first = next(iter(results.values()))[0]
    print(f"\n{args.data} data, {args.samples} samples, cutoff {args.cutoff}, {first['trained']} trained tokens "
          f"({first['tokens']} non-pad), {args.model_shape} {args.dtype} on {args.device}, LoRA dropout "
          f"{args.lora_dropout}, batch {first['batch']}; {len(peaks)} peak timings, best {peak:.1f} GFLOP/s ({by}); "
          f"medians of {args.repeats} alternating runs{TRL_SETUP_NOTE if args.trl_same_process_setup else ''}")
    print(f"{'run':<12} {'trained tok/s':>14} {'non-pad tok/s':>14} {'peak RSS MB':>12} {'final loss':>11} "
          f"{'held-out loss':>14} {'steps':>6} {'MFU':>6} {'MFU np':>6} {'MFU attn':>8}   runs (trained tok/s)")
    for name, r in rows.items():
        print(f"{name:<12} {r['trained_tok_s']:>14.1f} {r['nonpad_tok_s']:>14.1f} {r['peak_rss_mb']:>12.0f} "
              f"{r['final_loss']:>11.4f} {r['heldout_loss']:>14.4f} {r['steps']:>6} {r['mfu']:>6.1%} "
              f"{r['mfu_nonpad']:>6.1%} {r['mfu_attn']:>8.1%}   "
              f"{r['trained_tok_s_runs']}")
    ratios = {}
    if "tuneforge" in rows:
        for peer in (p for p in rows if p != "tuneforge"):
            ratios[peer] = {"speed": rows["tuneforge"]["trained_tok_s"] / rows[peer]["trained_tok_s"],
                            "memory": rows["tuneforge"]["peak_rss_mb"] / rows[peer]["peak_rss_mb"]}
            print(f"tuneforge vs {peer}: {ratios[peer]['speed']:.2f}x trained tokens/s, "
                  f"{ratios[peer]['memory']:.2f}x peak RSS")
    print(json.dumps({"benchmark": "train_throughput", "data": args.data, "cutoff": args.cutoff,
                      "samples": args.samples, "model": args.model_shape,
                      "dtype": args.dtype, "device": args.device, "peak_gflops": round(peak, 1),
                      "trl_same_process_setup": args.trl_same_process_setup,
                      "runs": {k: {m: (round(v, 4) if isinstance(v, float) else v) for m, v in r.items()}
                               for k, r in rows.items()},
                      "ratios": {k: {m: round(v, 3) for m, v in r.items()} for k, r in ratios.items()}}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--runs", default=",".join(RUNS), help="comma-separated subset of " + ", ".join(RUNS))
    parser.add_argument("--model-shape", choices=("smollm2-135m", "llama-3.2-1b"), default="smollm2-135m")
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--lora-dropout", type=float, default=LORA["dropout"],
                        help="LoRA dropout on both sides (default %(default)s; peft's own default is 0, which skips "
                             "the mask work)")
    parser.add_argument("--data", choices=tuple(DATA_FILES), default="alpaca",
                        help="alpaca: short instructions; long: dpo_en_demo's dialogues with their chosen reply")
    parser.add_argument("--cutoff", type=int, default=CUTOFF, help="template.cutoff_len and packed row length")
    parser.add_argument("--breakdown", action="store_true",
                        help="profile one packed micro-batch of --cutoff tokens instead of the comparison")
    parser.add_argument("--trl-same-process-setup", action="store_true",
                        help="give TRL's runs the process settings tuneforge's training makes (MKL's fast kernels "
                             "on AMD CPUs, native/mkl_dispatch.py; large tensors from the heap, native/heap.py), "
                             "to tell that part of the lead apart")
    parser.add_argument("--child", choices=RUNS + ("peak", "breakdown"), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="smollm2-135m-instruct", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda needs a CUDA GPU, and torch sees none here. The CPU benchmark is the default: "
                 "python benchmarks/train_throughput.py")
    if args.model_shape == "llama-3.2-1b" and args.device != "cuda":
        sys.exit("--model-shape llama-3.2-1b is the GPU benchmark: add --device cuda --dtype bf16")
    if not (DATASETS / DATA_FILES[args.data]).exists():
        sys.exit(f"{DATASETS / DATA_FILES[args.data]} not found: the benchmark needs ../shared/datasets")
    names = [n for n in args.runs.split(",") if n]
    if unknown := set(names) - set(RUNS):
        sys.exit(f"--runs: unknown {sorted(unknown)}; choose from {', '.join(RUNS)}")

    with tempfile.TemporaryDirectory(prefix="tf-train-bench-") as tmp:
        workdir = Path(tmp)
        if args.model_shape == "llama-3.2-1b":
            args.model = random_model_dir(args, workdir)
        if args.breakdown:
            return print_breakdown(args, spawn(args, "breakdown", workdir))
        results: dict[str, list[dict]] = {n: [] for n in names}
        peaks = [spawn(args, "peak", workdir)]
        for rep in range(args.repeats):
            for name in names:
                r = spawn(args, name, workdir)
                results[name].append(r)
                print(f"[{rep + 1}/{args.repeats}] {name:<12} {r['trained'] / r['seconds']:8.1f} trained tok/s  "
                      f"{r['seconds']:7.1f} s  peak RSS {r['peak_rss_mb']:.0f} MB  loss {r['loss']:.4f}", flush=True)
            peaks.append(spawn(args, "peak", workdir))
    report(args, results, peaks)


if __name__ == "__main__":
    main()
