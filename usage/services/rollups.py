"""Recomputing daily usage rows from the hourly rows: a repair, idempotent.

The ledger adds every batch to its hourly and daily rows in one transaction, so the two agree
as they are written. This recomputation makes them agree again wherever they might not: after
an upgrade from a version in which only this job wrote daily rows, or after hourly rows were
changed by hand. The beat job runs it for yesterday and today.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from django.db import connection, transaction
from django.db.models import Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from ..models import ROLLUP_SUMS, UsageDaily, UsageHourly


@transaction.atomic
def usage_rollup_daily(*, since: date | None = None) -> int:
    """Recompute the daily rows of every UTC day from `since` (default: yesterday) on.

    Daily rows are replaced by the sums of their hourly rows, so running it again gives the same
    result. Returns the number of daily rows written.
    """
    _exclude_ledger_writers()
    since = since or (timezone.now().astimezone(UTC).date() - timedelta(days=1))
    start = datetime(since.year, since.month, since.day, tzinfo=UTC)
    grouped = (
        UsageHourly.objects.filter(bucket__gte=start)
        .annotate(day=TruncDate("bucket", tzinfo=UTC))
        .values("tenant_id", "day", "factory", "llm_name", "model_type", "token_id")
        .annotate(**{f"sum_{name}": Sum(name) for name in ROLLUP_SUMS})
        .order_by()
    )
    rows = [
        UsageDaily(
            tenant_id=item["tenant_id"],
            day=item["day"],
            factory=item["factory"],
            llm_name=item["llm_name"],
            model_type=item["model_type"],
            token_id=item["token_id"],
            **{name: item[f"sum_{name}"] or 0 for name in ROLLUP_SUMS},
        )
        for item in grouped
    ]
    UsageDaily.objects.bulk_create(
        rows,
        batch_size=1000,
        update_conflicts=True,
        unique_fields=["tenant", "day", "factory", "llm_name", "model_type", "token_id"],
        update_fields=list(ROLLUP_SUMS),
    )
    return len(rows)


def _exclude_ledger_writers() -> None:
    """Wait for the ledger batches in flight, and hold new ones until this transaction ends.

    Replacing daily rows with sums read from the hourly rows would drop a batch committed in
    between. SHARE ROW EXCLUSIVE conflicts with the ROW EXCLUSIVE lock of the ledger's upserts
    (and with itself), not with readers. SQLite runs one writer at a time anyway.
    """
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(UsageDaily._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")
