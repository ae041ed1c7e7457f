"""The ledger writer over 1,000,000 events (issue 12), against the ceiling of the same run.

Events spread over 20 tenants x 25 models and 30 days of hours go through ragllm's writer
(events, `used_tokens`, hourly rollups) in batches as its drain applies them; only the
writer's work is timed (building each batch's records is not). Then the daily rollup.
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
        created = [now - ((first + i) % HOURS) * 3600 for i in range(count)]
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
