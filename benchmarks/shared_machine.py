"""Training and serving on a shared CPU: torch's default threads vs tuneforge's (`tuneforge.threads`).

Each multi-threaded torch operation waits for all its threads; when another process holds a core, the
thread scheduled there is late at every operation. This runs the same work with one CPU-bound competitor
(a spinning Python process, like a second job on the machine) and without, under three thread settings:

- `torch-default`: one thread per available core (what torch does unless told otherwise);
- `one`: a single thread;
- `tuneforge`: the default tuneforge now picks, the cores that other processes leave free at start.

Workloads, each a fresh child process (timed from its start to its end, model loading included, as a
user waits for it):

- `train`: `tuneforge train` of the default model, LoRA r=8, the first 32 alpaca_en_demo records,
  packed rows of 512 tokens, batch 2, `--max-steps` steps;
- `serve`: the generation engine answering 8 alpaca prompts together, 32 new tokens each, greedy.

Runs alternate (idle and busy, every setting, then again) and the table shows medians.

    python benchmarks/shared_machine.py [--workloads train,serve] [--repeats 2] [--max-steps 8]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
SETTINGS = ("torch-default", "one", "tuneforge")


def _spin() -> None:
    while True:
        pass


def _threads_env(setting: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TUNEFORGE_THREADS"}
    if setting == "torch-default":
        env["TUNEFORGE_THREADS"] = str(len(os.sched_getaffinity(0)))
    elif setting == "one":
        env["TUNEFORGE_THREADS"] = "1"
    return env  # tuneforge: no setting, its own default


def train_command(work: Path, max_steps: int) -> list[str]:
    data = work / "alpaca32.json"
    data.write_text(json.dumps(json.loads((DATASETS / "alpaca_en_demo.json").read_text())[:32]))
    config = work / "train.yaml"
    config.write_text(json.dumps({
        "model": {"name_or_path": "smollm2-135m-instruct"}, "data": str(data),
        "template": {"cutoff_len": 512},
        "method": {"name": "lora", "r": 8, "dropout": 0.0},
        "train": {"output_dir": str(work / "run"), "max_steps": max_steps, "batch_size": 2, "packing": True,
                  "val_size": 0}}))
    return [sys.executable, "-m", "tuneforge", "train", str(config), "--set", f"train.output_dir={work}/run-{{n}}"]


SERVE = """
import json, sys
from tuneforge.serve.engine import load_engine
from tuneforge.serve.sampling import SamplingParams
from tuneforge.threads import use_threads
from tuneforge.types import Message
use_threads()
rows = json.load(open(sys.argv[1]))[:8]
with load_engine("smollm2-135m-instruct") as engine:
    import queue
    done = queue.Queue()
    from tuneforge.serve.engine import Completion
    for r in rows:
        engine.submit(engine.encode_chat([Message("user", r["instruction"])]), SamplingParams(max_tokens=32),
                      sink=lambda e: isinstance(e, Completion) and done.put(e))
    print(sum(done.get(timeout=600).completion_tokens for _ in rows))
"""


def run_once(workload: str, setting: str, busy: bool, work: Path, args, n: int) -> float:
    if workload == "train":
        command = [c.replace("{n}", str(n)) for c in train_command(work, args.max_steps)]
    else:
        command = [sys.executable, "-c", SERVE, str(DATASETS / "alpaca_en_demo.json")]
    hog = mp.get_context("spawn").Process(target=_spin, daemon=True) if busy else None
    if hog:
        hog.start()
        time.sleep(1.0)  # spinning before the run starts, as a job already running would be
    try:
        start = time.perf_counter()
        proc = subprocess.run(command, env={**_threads_env(setting), "HF_HUB_OFFLINE": "1"}, capture_output=True,
                              text=True)
        seconds = time.perf_counter() - start
    finally:
        if hog:
            hog.terminate()
            hog.join()
    if proc.returncode != 0:
        raise SystemExit(f"{workload}/{setting} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", default="train,serve")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=8)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    times: dict[tuple[str, str, bool], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        n = 0
        for _ in range(args.repeats):
            for workload in args.workloads.split(","):
                for busy in (False, True):
                    for setting in SETTINGS:
                        n += 1
                        seconds = run_once(workload, setting, busy, Path(tmp), args, n)
                        times.setdefault((workload, setting, busy), []).append(seconds)
                        print(f"  {workload:5} {setting:13} {'busy' if busy else 'idle'}  {seconds:7.1f} s",
                              flush=True)
    print(f"\n{cores} available cores; medians of {args.repeats} alternating runs (seconds, lower is better)")
    print(f"{'workload':9} {'threads':14} {'idle':>8} {'busy':>8} {'busy/idle':>10}")
    result = {}
    for workload in args.workloads.split(","):
        for setting in SETTINGS:
            idle = statistics.median(times[(workload, setting, False)])
            busy = statistics.median(times[(workload, setting, True)])
            result[f"{workload}/{setting}"] = {"idle_s": round(idle, 1), "busy_s": round(busy, 1)}
            print(f"{workload:9} {setting:14} {idle:8.1f} {busy:8.1f} {busy / idle:10.2f}")
        default_busy = result[f"{workload}/torch-default"]["busy_s"]
        ours_busy = result[f"{workload}/tuneforge"]["busy_s"]
        print(f"{workload}: busy machine, torch default / tuneforge = {default_busy / ours_busy:.2f}x")
        result[f"{workload}/busy_speedup"] = round(default_busy / ours_busy, 2)
    print(json.dumps({"benchmark": "shared_machine", "cores": cores, **result}))


if __name__ == "__main__":
    main()
