"""The gateway benchmark (issue 10): the same non-streaming chat load on every target.

Targets (targets.py): direct to the upstream (the fake provider, its own process), LiteLLM's
proxy, and ragllm's gateway ("not available" until issue 10 fills `targets.ragllm_gateway`).
wrk (loadgen.py) measures requests/s with 16 requests in flight, then p50 and p99 latency
with one at a time; every process listens on 127.0.0.1. Each proxy runs with each worker
count of `--workers` (default: 1 and one per core) and its best rate is the one compared, so
that each side is measured at its best on the machine at hand. Beside each rate: the CPU time
its server processes spent per request (all their processes and threads), a figure that other
load on a shared machine disturbs far less than rates and latencies. Printed with the ratios
issue 10 sets targets on: ragllm's requests/s against LiteLLM's (>= 5x) and the p50 ragllm adds over
going direct (<= 1 ms).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import targets
from .common import TOKENS, Context, NotAvailable, cpu_seconds, heading, line, times
from .loadgen import Load, load, wrk

CONCURRENT = 16
WARM_UP = 2  # seconds of load before each figure (connections, caches, JIT-less warm paths)


@dataclass(frozen=True)
class Figures:
    name: str
    concurrent: Load
    single: Load | None


def run(ctx: Context) -> None:
    seconds = ctx.args.seconds
    counts = "/".join(map(str, ctx.args.workers))
    heading(
        f"Gateway: non-streaming chat, fake provider upstream (issue 10); wrk, {seconds} s a"
        f" figure; every proxy with {counts} workers, its best compared"
    )
    upstream = targets.upstream(ctx)
    direct = measure(ctx, "direct to the upstream", targets.direct, upstream)
    litellm = measure(ctx, "LiteLLM's proxy", targets.litellm_proxy, upstream, base=direct)
    ours = measure(ctx, "ragllm's gateway", targets.ragllm_gateway, upstream, base=direct)
    bare = measure(
        ctx, "ragllm's gateway, no quota", targets.ragllm_gateway_no_quota, upstream, base=direct
    )
    line(
        "ragllm / LiteLLM, 16 concurrent (target >= 5x)",
        times(ours.concurrent.rate, litellm.concurrent.rate) if ours and litellm else "n/a",
    )
    added = ours and direct and ours.single and direct.single
    line(
        "ragllm's added p50 (target <= 1 ms)",
        f"{ours.single.p50_ms - direct.single.p50_ms:+.2f} ms" if added else "n/a",
    )
    if bare and litellm and direct and bare.single and direct.single:
        line(
            "  without a quota: / LiteLLM, added p50",
            f"{times(bare.concurrent.rate, litellm.concurrent.rate)}, "
            f"{bare.single.p50_ms - direct.single.p50_ms:+.2f} ms",
        )


def measure(
    ctx: Context,
    label: str,
    factory: targets.TargetFactory,
    upstream: targets.Target,
    *,
    base: Figures | None = None,
    single: bool = True,
) -> Figures | None:
    """Requests/s at 16 concurrent with each worker count of the run (the best kept), and
    p50/p99 one at a time with the first count (one request at a time keeps one worker busy
    whatever their number), printed. A target without workers (direct) is measured once."""
    seconds = ctx.args.seconds
    counts = ctx.args.workers if factory is not targets.direct else ctx.args.workers[:1]
    best: tuple[Load, int] | None = None
    one = None
    try:
        wrk()
        for workers in counts:
            with factory(upstream, workers) as target:
                check(target)
                load(target, connections=CONCURRENT, seconds=WARM_UP)
                cpu = cpu_seconds(target.pid) if target.pid else 0.0
                concurrent = load(target, connections=CONCURRENT, seconds=seconds)
                if target.pid and concurrent.requests:
                    cpu = (cpu_seconds(target.pid) - cpu) * 1000 / concurrent.requests
                    cpu_note = f", server CPU {cpu:.2f} ms/req"
                else:
                    cpu_note = ""
                name = target.name if len(counts) == 1 else f"{target.name}, {workers} workers"
                ratio = f"{times(concurrent.rate, base.concurrent.rate)} direct" if base else ""
                line(
                    f"{name}, {CONCURRENT} concurrent",
                    f"{concurrent.rate:,.0f} req/s",
                    concurrent.failures or (ratio + cpu_note),
                )
                if concurrent.failures:
                    continue
                if best is None or concurrent.rate > best[0].rate:
                    best = (concurrent, workers)
                if single and one is None:
                    load(target, connections=1, seconds=WARM_UP)
                    one = load(target, connections=1, seconds=seconds)
    except NotAvailable as exc:
        line(label, "not available", str(exc))
        return None
    if best is None:
        return None
    concurrent = best[0]
    if len(counts) > 1:
        line(f"{target.name}: best, {best[1]} workers", f"{concurrent.rate:,.0f} req/s")
    if one is not None:
        added = (
            f"added p50 {one.p50_ms - base.single.p50_ms:+.2f} ms" if base and base.single else ""
        )
        line(
            f"{target.name}, 1 at a time: p50 / p99",
            f"{one.p50_ms:.2f} / {one.p99_ms:.2f} ms",
            one.failures or added,
        )
    return Figures(target.name, concurrent, one)


def check(target: targets.Target) -> None:
    """One call first: a target that answers wrongly is not measured."""
    import httpx

    reply = httpx.post(
        target.chat_url,
        json={"model": target.model, "messages": [{"role": "user", "content": "Hi"}]},
        headers={"Authorization": f"Bearer {target.api_key}"},
        timeout=30,
    )
    try:
        body = reply.json()
        ok = bool(body["choices"][0]["message"]["content"])
        ok = ok and body["usage"]["total_tokens"] == TOKENS
    except (ValueError, KeyError, IndexError, TypeError):
        ok = False
    if reply.status_code != 200 or not ok:
        raise NotAvailable(f"{target.name} answered {reply.status_code}: {reply.text[:200]}")
