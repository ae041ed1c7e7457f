"""Key limits on the gateway (issue 11): requests/s with a key carrying RPM, TPM and a budget
against the same gateway with a key without limits, 16 concurrent, in one run.

The limits are set high enough never to refuse, so the difference is what checking them
costs: one Redis script run per call charging the key's RPM and TPM (the settlement of the
TPM estimate rides along with the next call's). Measured twice: for a tenant under a token
quota (the issue's "accounting and quotas on", whose database reservation bounds the
throughput) and for one without (where the limits' cost shows most). Each pair runs
without, with, with, without, and compares the sums, so that a drift of this shared
machine's load during the run weighs on both sides alike. Beside requests/s, the server's
own CPU time per request (its processes' user + system time over the load, from /proc):
on a machine whose cores other work also takes, that is the steadier figure, and the
throughput the limits cost a saturated server is 1 - (CPU without / CPU with).
Target: less than 10 % of throughput.
"""

from __future__ import annotations

from . import targets
from .common import Context, NotAvailable, cpu_seconds, heading, line
from .gateway import CONCURRENT, WARM_UP, check
from .loadgen import load, wrk

PAIRS = (
    ("with a token quota", targets.ragllm_gateway, targets.ragllm_gateway_limited_key),
    (
        "no quota",
        targets.ragllm_gateway_no_quota,
        targets.ragllm_gateway_no_quota_limited_key,
    ),
)


def _measure(ctx: Context, label: str, factory) -> tuple[float, float] | None:
    """(requests/s, server CPU ms per request) at 16 concurrent, printed."""
    upstream = targets.upstream(ctx)
    try:
        wrk()
        with factory(upstream, max(ctx.args.workers)) as target:
            check(target)
            load(target, connections=CONCURRENT, seconds=WARM_UP)
            before = cpu_seconds(target.pid)
            measured = load(target, connections=CONCURRENT, seconds=ctx.args.seconds)
            cpu = (cpu_seconds(target.pid) - before) * 1000 / max(1, measured.requests)
    except NotAvailable as exc:
        line(label, "not available", str(exc))
        return None
    line(
        f"{target.name}, {CONCURRENT} concurrent",
        f"{measured.rate:,.0f} req/s",
        measured.failures or f"server CPU {cpu:.2f} ms/request",
    )
    return measured.rate, cpu


def run(ctx: Context) -> None:
    heading(
        f"Gateway with key limits (issue 11): RPM, TPM and a budget vs none; wrk, "
        f"{ctx.args.seconds} s a figure"
    )
    for name, plain_target, limited_target in PAIRS:
        plain, limited = [], []
        for factory, into in (
            (plain_target, plain),
            (limited_target, limited),
            (limited_target, limited),
            (plain_target, plain),
        ):
            figures = _measure(ctx, name, factory)
            if figures is not None:
                into.append(figures)
        if len(plain) == len(limited) == 2:
            rate = 1 - sum(r for r, _ in limited) / sum(r for r, _ in plain)
            cpu_plain = sum(c for _, c in plain) / 2
            cpu_limited = sum(c for _, c in limited) / 2
            line(f"{name}: throughput lost to limits (target < 10 %)", f"{rate:.1%}")
            line(
                f"  server CPU per request: {cpu_plain:.2f} -> {cpu_limited:.2f} ms",
                f"{1 - cpu_plain / cpu_limited:.1%}",
                "throughput lost when the server is CPU-bound",
            )
        else:
            line(f"{name}: throughput lost to limits (target < 10 %)", "n/a")
