"""Data generation throughput against a real endpoint: `tuneforge data generate` (distill mode, 16 requests
in flight) vs the loop people usually write (the official `openai` client, one request at a time), and
distilabel's TextGeneration pipeline when distilabel is installed. Same prompts, greedy decoding, same
max_tokens, all against one `tuneforge serve` on the default model, alternating rounds; a fresh response
cache each round, so every reply is really generated.

Reported: records/s of each side (best round), the ratio to the loop, and how many replies are identical
to the loop's (greedy on both sides, though a batch's padding can shift a near-tie).

    python benchmarks/generate_throughput.py [--prompts 32] [--max-tokens 48] [--rounds 2] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
MODEL = "smollm2-135m-instruct"
KEY = "bench-key"


def prompts(n: int) -> list[str]:
    rows = json.loads((DATASETS / "alpaca_en_demo.json").read_text(encoding="utf-8"))
    return [r["instruction"] for r in rows if not r.get("input")][:n]


def start_server(concurrency: int) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "tuneforge", "serve", "--port", str(port), "--api-key", KEY,
                               "--max-batch-size", str(concurrency)], env={**os.environ, "HF_HUB_OFFLINE": "1"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 300
    while True:
        try:
            request = urllib.request.Request(url + "/models", headers={"Authorization": f"Bearer {KEY}"})
            urllib.request.urlopen(request, timeout=5).read()
            return server, url
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("tuneforge serve did not start") from None
            time.sleep(0.5)


def run_tuneforge(url: str, texts: list[str], max_tokens: int, concurrency: int) -> list[str]:
    from tuneforge.datagen import generate, parse_recipe

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "prompts.txt").write_text("".join(t.replace("\n", " ") + "\n" for t in texts))
        os.environ["BENCH_KEY"] = KEY
        recipe = parse_recipe({"mode": "distill", "output_dir": "out", "distill": {"prompts": "prompts.txt"},
                               "teacher": {"url": url, "model": MODEL, "api_key_env": "BENCH_KEY", "temperature": 0.0,
                                           "max_tokens": max_tokens, "concurrency": concurrency, "seed": None}},
                              Path(tmp))
        stats = generate(recipe)
        assert stats["kept"] == len(texts), stats
        rows = [json.loads(line) for line in (Path(tmp) / "out" / "data.jsonl").read_text().splitlines()]
    by_id = {r["id"]: r["messages"][-1]["content"] for r in rows}
    return [by_id[f"p{i}-s0"] for i in range(len(texts))]


def run_loop(url: str, texts: list[str], max_tokens: int) -> list[str]:
    import openai

    client = openai.OpenAI(base_url=url, api_key=KEY, max_retries=0, timeout=600)
    out = []
    for text in texts:  # one request at a time: the loop people usually write
        reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": text}],
                                               temperature=0, max_tokens=max_tokens)
        out.append((reply.choices[0].message.content or "").strip())
    return out


def run_distilabel(url: str, texts: list[str], max_tokens: int, concurrency: int) -> list[str]:
    from distilabel.models import OpenAILLM
    from distilabel.pipeline import Pipeline
    from distilabel.steps import LoadDataFromDicts
    from distilabel.steps.tasks import TextGeneration

    handlers = logging.root.handlers[:]  # distilabel routes the root logger to its own queue, closed after a run
    with Pipeline(name="bench") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": t} for t in texts], batch_size=concurrency)
        generation = TextGeneration(llm=OpenAILLM(model=MODEL, base_url=url, api_key=KEY, max_retries=0, timeout=600),
                                    input_batch_size=concurrency)
        load >> generation
    try:
        distiset = pipeline.run(use_cache=False, parameters={generation.name: {"llm": {"generation_kwargs": {
            "temperature": 0.0, "max_new_tokens": max_tokens}}}})
    finally:
        logging.root.handlers[:] = handlers
    rows = distiset["default"]["train"]
    by_instruction = {r["instruction"]: (r["generation"] or "").strip() for r in rows}
    return [by_instruction[t] for t in texts]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    texts = prompts(args.prompts)
    try:
        import distilabel  # noqa: F401

        sides = ["loop", "tuneforge", "distilabel"]
        distilabel_note = "distilabel installed: compared"
    except ImportError:
        sides = ["loop", "tuneforge"]
        distilabel_note = "distilabel not installed here (pip install distilabel): not compared"
    server, url = start_server(args.concurrency)
    best = dict.fromkeys(sides, 0.0)
    replies: dict[str, list[str]] = {}
    try:
        run_loop(url, texts[:2], 4)  # warm the server up
        for r in range(args.rounds):
            for side in sides:
                started = time.perf_counter()
                if side == "loop":
                    out = run_loop(url, texts, args.max_tokens)
                elif side == "tuneforge":
                    out = run_tuneforge(url, texts, args.max_tokens, args.concurrency)
                else:
                    out = run_distilabel(url, texts, args.max_tokens, args.concurrency)
                seconds = time.perf_counter() - started
                rate = len(out) / seconds
                print(f"round {r + 1}  {side:<10} {len(out):4d} records  {seconds:7.2f} s  {rate:7.2f} records/s",
                      flush=True)
                best[side] = max(best[side], rate)
                replies[side] = out
    finally:
        server.terminate()
        server.wait(30)
    print()
    print(f"{'impl':<44} {'records/s (best)':>16} {'vs loop':>8} {'same replies':>13}")
    labels = {"tuneforge": f"tuneforge data generate, concurrency {args.concurrency}",
              "loop": "openai client loop, one at a time",
              "distilabel": f"distilabel TextGeneration, batch {args.concurrency}"}
    for side in sides:
        same = sum(a == b for a, b in zip(replies[side], replies["loop"]))
        print(f"{labels[side]:<44} {best[side]:16.2f} {best[side] / best['loop']:7.2f}x {same:>8}/{len(texts)}")
    print(f"{distilabel_note} · {len(texts)} prompts, max_tokens {args.max_tokens}, greedy · "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus")
    print(json.dumps({"benchmark": "generate_throughput", "prompts": len(texts), "max_tokens": args.max_tokens,
                      "concurrency": args.concurrency, **{f"{s}_records_per_s": round(best[s], 3) for s in sides},
                      "ratio_tuneforge_vs_loop": round(best["tuneforge"] / best["loop"], 2),
                      **({"ratio_tuneforge_vs_distilabel": round(best["tuneforge"] / best["distilabel"], 2)}
                         if "distilabel" in best else {"distilabel": "not installed"})}))


if __name__ == "__main__":
    main()
