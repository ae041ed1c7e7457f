"""The event table's day partitions (PostgreSQL) and retention by whole days (issue 12)."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from usage.models import UsageDaily, UsageEvent, UsageHourly
from usage.records import UsageRecord
from usage.services import partitions
from usage.services.ledger import apply_records
from usage.tasks import create_usage_partitions

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="partitions are PostgreSQL's"
)


def use(tenant, at, tokens=10):
    return UsageRecord(
        tenant_id=str(tenant.pk),
        factory="OpenAI",
        llm_name="gpt-4o",
        model_type="chat",
        prompt_tokens=tokens,
        total_tokens=tokens,
        created_at=at.timestamp(),
    )


def rollup_totals():
    return tuple(
        model.objects.aggregate(t=Sum("total_tokens"))["t"] for model in (UsageHourly, UsageDaily)
    )


@pytest.fixture(autouse=True)
def _forget_partitions():
    partitions.forget_known_partitions()
    yield
    partitions.forget_known_partitions()


@postgres_only
def test_the_event_table_is_partitioned_by_day(tenant):
    assert partitions.is_partitioned()
    day = datetime(2026, 2, 10, 15, tzinfo=UTC)
    apply_records([use(tenant, day)])
    assert day.date() in partitions.partition_days()
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM usage_usageevent")
        assert cursor.fetchone()[0] == "usage_usageevent_p20260210"


@postgres_only
def test_a_batch_over_several_days_gets_a_partition_for_each_and_no_other(tenant):
    first = datetime(2026, 2, 10, 23, 59, tzinfo=UTC)
    days = [first, first + timedelta(minutes=2), first + timedelta(days=5)]
    apply_records([use(tenant, at) for at in days])
    found = {d for d in partitions.partition_days() if date(2026, 2, 9) <= d <= date(2026, 2, 16)}
    assert found == {date(2026, 2, 10), date(2026, 2, 11), date(2026, 2, 15)}
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM usage_usageevent_default")
        assert cursor.fetchone()[0] == 0


@postgres_only
def test_beat_creates_the_coming_days_partitions(db):
    assert create_usage_partitions() >= 0
    today = timezone.now().astimezone(UTC).date()
    days = set(partitions.partition_days())
    assert {today + timedelta(days=n) for n in range(8)} <= days
    assert create_usage_partitions() == 0  # idempotent


@postgres_only
def test_a_day_created_late_takes_its_events_out_of_the_default_partition(tenant):
    day = datetime(2026, 1, 5, 8, tzinfo=UTC)
    UsageEvent.objects.create(  # an insert that bypassed the writer: lands in the default
        tenant=tenant,
        factory="OpenAI",
        llm_name="gpt-4o",
        model_type="chat",
        total_tokens=5,
        request_id="0" * 32,
        created_at=day,
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM usage_usageevent_default")
        assert cursor.fetchone()[0] == 1
        assert partitions.usage_partitions_ensure(days=[day.date()]) == 1
        cursor.execute("SELECT count(*) FROM usage_usageevent_default")
        assert cursor.fetchone()[0] == 0
    assert UsageEvent.objects.get().total_tokens == 5


def test_retention_drops_old_days_and_keeps_the_rollups(tenant):
    now = timezone.now()
    old = [now - timedelta(days=40, hours=h) for h in range(0, 72, 6)]
    recent = [now - timedelta(days=2, hours=h) for h in range(3)]
    apply_records([use(tenant, at) for at in old + recent])
    before = rollup_totals()
    assert before == (150, 150)

    result = partitions.usage_prune_events(older_than_days=30)

    assert UsageEvent.objects.count() == len(recent)
    assert rollup_totals() == before  # rollups stay
    if partitions.is_partitioned():
        assert result.partitions >= 3 and result.rows == 0  # whole days, no row deletes
        cutoff = (now - timedelta(days=30)).astimezone(UTC).date()
        assert all(day >= cutoff for day in partitions.partition_days())
    else:
        assert result.rows == len(old)
