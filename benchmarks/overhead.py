"""LLMBundle's overhead: a chat call through LLMBundle vs a raw httpx call, same upstream.

The fake provider runs in its own process; the two kinds of calls are interleaved so that both
see the same machine. Printed: p50 and p99 of each and what LLMBundle adds.
"""

from __future__ import annotations

import statistics
import time

from . import adapters
from .common import Context, heading, line, percentile
from .workload import API_KEY

MODEL = "gpt-4o-mini"


def run(ctx: Context) -> None:
    import httpx

    calls = ctx.args.calls
    heading(f"LLMBundle overhead over {calls:,} chat calls (fake provider in its own process)")
    base_url = ctx.fake_url + "/v1"
    chat = adapters.bundle_chat(adapters.create_chat_tenant(base_url, MODEL), f"{MODEL}@OpenAI")
    history = [{"role": "user", "content": "Hi"}]
    body = {"model": MODEL, "messages": history}
    headers = {"Authorization": f"Bearer {API_KEY}"}
    url = f"{base_url}/chat/completions"
    raw, ours = [], []
    with httpx.Client() as client:
        for _ in range(50):  # warm both paths
            chat(history)
            client.post(url, json=body, headers=headers).json()
        for _ in range(calls):
            start = time.perf_counter()
            client.post(url, json=body, headers=headers).json()
            raw.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            chat(history)
            ours.append((time.perf_counter() - start) * 1000)
    adapters.flush_recorder()
    adapters.drain()
    for name, p in (("p50", 50), ("p99", 99)):
        r, o = percentile(raw, p), percentile(ours, p)
        line(f"{name}: raw httpx {r:.2f} ms, LLMBundle {o:.2f} ms", f"added {o - r:+.2f} ms")
    ratio = statistics.median(ours) / statistics.median(raw)
    line("ratio of medians (LLMBundle / raw httpx)", f"{ratio:.2f}x")
