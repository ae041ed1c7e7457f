"""Key limits on the gateway (issue 11): requests/s with a key carrying RPM, TPM and a budget
against the same gateway with a key without limits, 16 concurrent, in one run.

The limits are set high enough never to refuse, so the difference is what checking them
costs: one Redis script run per call charging the key's RPM and TPM, and one more settling
the TPM estimate with the real usage, off the request's path. Measured twice: for a tenant
under a token quota (the issue's "accounting and quotas on", whose database reservation
bounds the throughput) and for one without (where the limits' cost shows most). Each pair
runs baseline, limited, limited, baseline, and compares the sums, so that a drift of this
shared machine's load during the run weighs on both sides alike.
Target: less than 10 % of throughput.
"""

from __future__ import annotations

from . import targets
from .common import Context, heading, line
from .gateway import measure

PAIRS = (
    ("with a token quota", targets.ragllm_gateway, targets.ragllm_gateway_limited_key),
    (
        "no quota",
        targets.ragllm_gateway_no_quota,
        targets.ragllm_gateway_no_quota_limited_key,
    ),
)


def run(ctx: Context) -> None:
    heading(
        f"Gateway with key limits (issue 11): RPM, TPM and a budget vs none; wrk, "
        f"{ctx.args.seconds} s a figure"
    )
    upstream = targets.upstream(ctx)
    for name, plain_target, limited_target in PAIRS:
        figures = {}
        for label, factory in (
            ("key without limits", plain_target),
            ("key with limits", limited_target),
            ("key with limits", limited_target),
            ("key without limits", plain_target),
        ):
            measured = measure(ctx, label, factory, upstream, single=False)
            if measured is not None:
                figures.setdefault(label, []).append(measured.concurrent.rate)
        plain = figures.get("key without limits", [])
        limited = figures.get("key with limits", [])
        label = f"{name}: throughput lost to limits (target < 10 %)"
        if len(plain) == len(limited) == 2:
            line(label, f"{1 - sum(limited) / sum(plain):.1%}")
        else:
            line(label, "n/a")
