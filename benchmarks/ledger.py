"""The ledger writer over 1,000,000 events (issue 12), against the ceiling of the same run.

Events spread over 20 tenants x 25 models and 30 days go through ragllm's writer (events in
their day partitions, `used_tokens`, hourly and daily rollups) in batches as a writer applies
them; only the writer's work is timed (building each batch's records is not). The events come
in time order, as a writer receives them (a batch covers some 14 hours of the 30 days); at
1,000,000 events over 720 hours x 500 models that is about 3 events per hourly row, so the
rollups cost nearly as much as the events. Then the daily rollup's repair over everything.
"""

from __future__ import annotations

import time

from . import adapters
from .baselines import print_baselines
from .common import Context, heading, line, per_second, times
from .workload import pick, ragllm_rows

BATCH = 20_000  # what a writer applies at a time: 10 stream entries of 2,000 records
HOURS = 30 * 24


def run(ctx: Context) -> None:
    events = ctx.args.events
    heading(f"Ledger writer over {events:,} events (issue 12)")
    best, top = print_baselines(ctx)
    rows = ragllm_rows(ctx)
    next_row = pick(rows, seed=7)
    adapters.reset_ledger()
    now = time.time()
    spent = 0.0
    for first in range(0, events, BATCH):
        count = min(BATCH, events - first)
        chosen = [next_row() for _ in range(count)]
        span = HOURS * 3600
        created = [now - span + span * (first + i) / events for i in range(count)]
        records = adapters.usage_records(chosen, created)
        start = time.perf_counter()
        adapters.apply_usage_records(records)
        spent += time.perf_counter() - start
    exact = adapters.ledger_totals().exact(events)
    line(
        f"ragllm's ledger writer, {BATCH:,} a batch",
        per_second(events, spent),
        f"{times(events / spent, best.rate)} RAGFlow, {times(events / spent, top.rate)} ceiling, "
        + ("totals exact" if exact else "TOTALS WRONG"),
    )
    start = time.perf_counter()
    daily_rows = adapters.rollup_daily()
    rolled = time.perf_counter() - start
    line(f"daily rollup ({daily_rows:,} daily rows)", f"{rolled:.2f} s")
    if not exact:
        raise SystemExit("ledger: totals are wrong")
