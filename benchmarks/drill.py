"""The metering drill, large (issue 12): 4 recorder processes, 3 writer processes, one writer
SIGKILLed while it holds a batch, the usage Redis restarted mid-run (a redis-server of the
drill's own, AOF with fsync always, in a temporary directory; never the shared one). Every
total must equal what was recorded. Prints the events recorded and applied per second
through all of it (recorders to rows), with the ceiling of the run beside it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from .common import Context, database_url, heading, line, per_second
from .workload import ragllm_rows


def run(ctx: Context) -> None:
    from django.db.models import Count, Sum

    from tenants.models import TenantLLM
    from tests.usage_drill import run_drill
    from tests.usage_helpers import PrivateRedis
    from usage.models import UsageDaily, UsageEvent, UsageHourly

    per_recorder = max(ctx.args.recording_events // 4, 1_000) * 2
    heading(
        f"Drill: 4 recorders x {per_recorder:,} calls, 3 writers, one SIGKILLed mid-batch,"
        " Redis restarted mid-run (issue 12)"
    )
    rows = ragllm_rows(ctx)
    from . import adapters

    adapters.reset_ledger()
    with tempfile.TemporaryDirectory(prefix="ragllm-drill-") as tmp:
        redis_server = PrivateRedis(Path(tmp)).start()
        try:
            report = run_drill(
                redis_server=redis_server,
                database_url=database_url(),
                configs=[(r.config_id, r.tenant_id, r.llm_name) for r in rows],
                workdir=Path(tmp),
                per_recorder=per_recorder,
                chunk=2_000,
                pause=0.01,
                timeout=1800,
            )
        finally:
            redis_server.stop()
    recorded = report.recorded
    events = UsageEvent.objects.aggregate(n=Count("pk"), t=Sum("total_tokens"))
    hourly = UsageHourly.objects.aggregate(c=Sum("calls"), t=Sum("total_tokens"))
    daily = UsageDaily.objects.aggregate(c=Sum("calls"), t=Sum("total_tokens"))
    used = TenantLLM.objects.aggregate(t=Sum("used_tokens"))["t"] or 0
    exact = (
        (events["n"], events["t"]) == (recorded.events, recorded.tokens)
        and (hourly["c"], hourly["t"]) == (recorded.events, recorded.tokens)
        and (daily["c"], daily["t"]) == (recorded.events, recorded.tokens)
        and used == recorded.tokens
    )
    line("writer 0 SIGKILLed holding", f"{report.killed_pending} entries", "claimed by the others")
    line("usage Redis restarted mid-run", "yes" if report.redis_restarted else "NO")
    line(
        f"recorded and applied, {recorded.events:,} events",
        per_second(recorded.events, report.seconds),
        "totals exact (events, counters, hourly, daily)" if exact else "TOTALS WRONG",
    )
    if not exact or not report.redis_restarted or not report.killed_pending:
        raise SystemExit("drill: the totals are wrong or the faults did not happen")
