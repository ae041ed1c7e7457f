"""Key limits on the gateway (issue 11): requests/s with a key carrying RPM, TPM and a budget
against the same gateway with a key without limits, 16 concurrent, in one run.

Both are targets of targets.py ("not available" until issues 10 and 11 fill them in); the
limits are set high enough never to refuse, so the difference is what checking them costs.
Target: less than 10 % of throughput.
"""

from __future__ import annotations

from . import targets
from .common import Context, heading, line
from .gateway import measure


def run(ctx: Context) -> None:
    heading(
        f"Gateway with key limits (issue 11): RPM, TPM and a budget vs none; wrk, "
        f"{ctx.args.seconds} s a figure"
    )
    upstream = targets.upstream(ctx)
    plain = measure(ctx, "key without limits", targets.ragllm_gateway, upstream, single=False)
    limited = measure(
        ctx, "key with limits", targets.ragllm_gateway_limited_key, upstream, single=False
    )
    if plain and limited:
        cost = 1 - limited.concurrent.rate / plain.concurrent.rate
        line("throughput lost to limits (target < 10 %)", f"{cost:.1%}")
    else:
        line("throughput lost to limits (target < 10 %)", "n/a")
