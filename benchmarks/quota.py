"""Quota reservations (issue 12 Must 5): one tenant with a quota, calls from 16 threads.

Each call reserves its allowance before the provider call and settles with the real usage
after it, as LLMBundle does. Today's path is the database: a conditional UPDATE of the
tenant's counter row before the call and two after it, so the tenant's calls serialize on that
row. The Redis path (issue 12 Must 5) is one atomic script to reserve and one to settle, no
database query. Both run behind the same quota_reserve / quota_settle: the adapters pick the
path with QUOTA_REDIS_URL (empty for the database path, as without Redis or while it is down).
Ratios are printed against the database path measured in the same run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from . import adapters
from .common import TOKENS, Context, NotAvailable, heading, in_threads, line, per_second, times

THREADS = 16
RESERVE = 1_000  # the prompt estimate plus the completion allowance a chat call holds
QUOTA = 10**15  # never reached: the benchmark measures the path, not refusals


@dataclass(frozen=True)
class QuotaPath:
    name: str
    # tenant id -> (reserve_and_settle(reserve, actual), tokens used in the window now)
    prepare: Callable[[str], tuple[Callable[[int, int], None], Callable[[], int]]]
    # Calls made, as a multiple of --reservations: a faster path makes more, so that both
    # are measured over several seconds (a shared machine's load comes in bursts).
    scale: int = 1


PATHS = [
    QuotaPath("database path", adapters.database_quota),
    QuotaPath("Redis path", adapters.redis_quota, scale=4),
]


def run(ctx: Context) -> None:
    calls = ctx.args.reservations
    heading(f"Quota reservations: one tenant with a quota, {THREADS} threads (issue 12)")
    made = "; ".join(f"{calls * path.scale:,} calls on the {path.name}" for path in PATHS)
    print(f"  reserve {RESERVE:,} tokens, settle to {TOKENS}; {made}")
    baseline: float | None = None
    for path in PATHS:
        calls = ctx.args.reservations * path.scale
        tenant_id = adapters.create_tenant_with_quota(QUOTA)
        try:
            reserve_and_settle, used = path.prepare(tenant_id)
        except NotAvailable as exc:
            line(path.name, "not available", str(exc))
            continue
        before = used()
        timing = in_threads(THREADS, calls, _worker(reserve_and_settle))
        exact = used() - before == TOKENS * calls
        rate = calls / timing.seconds
        baseline = baseline or rate
        line(
            path.name,
            per_second(calls, timing.seconds, "calls/s"),
            f"{times(rate, baseline)} database path, "
            + ("totals exact" if exact else "TOTALS WRONG"),
        )
        if not exact:
            raise SystemExit(f"quota: the {path.name} lost or doubled tokens")


def _worker(reserve_and_settle: Callable[[int, int], None]):
    from django.db import connection

    @contextmanager
    def worker(index: int) -> Iterator[Callable[[], None]]:
        try:
            yield lambda: reserve_and_settle(RESERVE, TOKENS)
        finally:
            connection.close()  # this thread's own connection

    return worker
