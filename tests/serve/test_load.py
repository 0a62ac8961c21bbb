"""A bounded load test on loopback: 64 concurrent clients x 3 requests each through the official async
client, zero errors; p50 / p95 latency and aggregate tokens/s are printed."""

from __future__ import annotations

import asyncio
import statistics
import time

import pytest
from tests.serve.conftest import running_server

openai = pytest.importorskip("openai", reason="the serve extra is needed: pip install 'tuneforge[serve]'")

CLIENTS, REQUESTS_EACH, MAX_TOKENS = 64, 3, 16


async def _client(url: str, i: int, latencies: list[float], tokens: list[int]) -> None:
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0, timeout=120) as c:
        for j in range(REQUESTS_EACH):
            started = time.perf_counter()
            out = await c.chat.completions.create(
                model="tiny", messages=[{"role": "user", "content": f"client {i} request {j}"}],
                max_tokens=MAX_TOKENS, temperature=0.8, seed=i * 10 + j)
            latencies.append(time.perf_counter() - started)
            tokens.append(out.usage.completion_tokens)


def test_64_concurrent_clients_without_errors(make_engine, capsys):
    engine = make_engine(max_batch_size=64, max_waiting=256)
    latencies: list[float] = []
    tokens: list[int] = []
    with running_server(engine) as (url, _):
        started = time.perf_counter()

        async def main():
            await asyncio.wait_for(asyncio.gather(*(_client(url, i, latencies, tokens) for i in range(CLIENTS))),
                                   timeout=240)

        asyncio.run(main())
        seconds = time.perf_counter() - started
    assert len(latencies) == CLIENTS * REQUESTS_EACH  # every request answered; any error would have raised
    assert all(0 < t <= MAX_TOKENS for t in tokens)
    q = statistics.quantiles(latencies, n=20)
    with capsys.disabled():
        print(f"\nload test: {CLIENTS} clients x {REQUESTS_EACH} requests, {sum(tokens)} tokens in {seconds:.1f}s: "
              f"p50 {statistics.median(latencies) * 1000:.0f} ms, p95 {q[18] * 1000:.0f} ms, "
              f"{sum(tokens) / seconds:.0f} tokens/s")
