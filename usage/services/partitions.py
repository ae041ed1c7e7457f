"""The usage event table's day partitions (PostgreSQL), and retention by whole days.

On PostgreSQL `usage_usageevent` is partitioned by range of `created_at` (migration 0007):
one partition per UTC day, `usage_usageevent_pYYYYMMDD`, and a default partition that takes
any event of a day without one, so no insert ever fails for want of a partition. A beat job
creates the coming days' partitions ahead; the ledger writer creates the partition of a day it
meets without one (a backfill, a clock jump) before applying its batch. Creating a day whose
events sit in the default partition moves them into it. Retention drops the partitions of
days entirely older than the cutoff (no row-by-row DELETE, no bloat) and deletes what the
default partition holds from before it. On SQLite the table is plain: retention deletes rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from ..models import UsageEvent

TABLE = UsageEvent._meta.db_table
DEFAULT = f"{TABLE}_default"
_NAME = re.compile(rf"^{TABLE}_p(\d{{8}})$")
_LOCK = 0x7261676C  # the advisory lock of partition changes ("ragl")
EPOCH = date(1970, 1, 1)

_known_days: set[int] = set()  # days (since the epoch) this process saw a partition for


def is_partitioned() -> bool:
    """Whether the event table is partitioned (PostgreSQL after migration 0007)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [TABLE])
        row = cursor.fetchone()
    return bool(row) and row[0] == "p"


def partition_days() -> list[date]:
    """The days that have a partition of their own, oldest first."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = to_regclass(%s)",
            [TABLE],
        )
        names = [name for (name,) in cursor.fetchall()]
    days = [_NAME.match(name) for name in names]
    return sorted(datetime.strptime(m.group(1), "%Y%m%d").date() for m in days if m)


def _bounds(day: date) -> tuple[str, str]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start.isoformat(), (start + timedelta(days=1)).isoformat()


def usage_partitions_ensure(*, days: Iterable[date]) -> int:
    """Give each day its partition (moving its events out of the default one); returns how
    many were created. Safe to run from several processes at once."""
    wanted = sorted(set(days))
    if not wanted or connection.vendor != "postgresql":
        return 0
    created = 0
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK])
        existing = set(partition_days())
        for day in wanted:
            if day in existing:
                continue
            name = f"{TABLE}_p{day:%Y%m%d}"
            start, end = _bounds(day)
            cursor.execute(
                f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
            )
            cursor.execute(
                f"WITH moved AS (DELETE FROM {DEFAULT} WHERE created_at >= %s AND created_at < %s"
                f" RETURNING *) INSERT INTO {name} SELECT * FROM moved",
                [start, end],
            )
            cursor.execute(
                f"ALTER TABLE {TABLE} ATTACH PARTITION {name}"
                f" FOR VALUES FROM ('{start}') TO ('{end}')"
            )
            created += 1
    _known_days.update((day - EPOCH).days for day in wanted)
    return created


def usage_partitions_ahead(*, days: int = 7) -> int:
    """The beat job: partitions for today and the next `days` days (UTC)."""
    if not is_partitioned():
        return 0
    today = timezone.now().astimezone(UTC).date()
    return usage_partitions_ensure(days=[today + timedelta(days=n) for n in range(days + 1)])


def ensure_for_epoch_days(epoch_days: set[int]) -> None:
    """The writer's check before a batch: partitions for the days of its events (cheap when
    this process has seen them all; a day created elsewhere is found and remembered)."""
    missing = epoch_days - _known_days
    if missing:
        usage_partitions_ensure(days=[EPOCH + timedelta(days=n) for n in missing])


def forget_known_partitions() -> None:
    _known_days.clear()


@dataclass
class PruneResult:
    partitions: int = 0  # whole days dropped
    rows: int = 0  # rows deleted one by one (SQLite, or PostgreSQL's default partition)


def usage_prune_events(*, older_than_days: int) -> PruneResult:
    """Retention: events older than `older_than_days` go; rollups stay."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    result = PruneResult()
    if is_partitioned():
        last = cutoff.astimezone(UTC).date() - timedelta(days=1)  # the last whole day to drop
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK])
            for day in partition_days():
                if day > last:
                    break
                cursor.execute(f"DROP TABLE {TABLE}_p{day:%Y%m%d}")
                _known_days.discard((day - EPOCH).days)
                result.partitions += 1
            cursor.execute(f"DELETE FROM {DEFAULT} WHERE created_at < %s", [cutoff])
            result.rows = cursor.rowcount
        return result
    while True:
        ids = list(
            UsageEvent.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[:5000]
        )
        if not ids:
            return result
        count, _ = UsageEvent.objects.filter(pk__in=ids).delete()
        result.rows += count
