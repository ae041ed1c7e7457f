"""Daily rows: written by the ledger with the hourly ones, read for whole days, repairable."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.db.models import F, Sum

from usage.models import UsageDaily, UsageHourly
from usage.records import UsageRecord
from usage.selectors.sums import top_tenants, usage_series, usage_summary
from usage.services.ledger import apply_records
from usage.services.rollups import usage_rollup_daily

MARCH_1 = datetime(2026, 3, 1, tzinfo=UTC)


def use(tenant, at, tokens, llm="gpt-4o"):
    return UsageRecord(
        tenant_id=str(tenant.pk),
        factory="OpenAI",
        llm_name=llm,
        model_type="chat",
        prompt_tokens=tokens,
        total_tokens=tokens,
        cost="0.001",
        created_at=at.timestamp(),
    )


@pytest.fixture
def three_days(tenant):
    """10 tokens at 01:00 and 20 at 13:00 on each of March 1st to 3rd."""
    apply_records(
        [
            use(tenant, MARCH_1 + timedelta(days=day, hours=hour), tokens)
            for day in range(3)
            for hour, tokens in ((1, 10), (13, 20))
        ]
    )


def tokens_by_day(tenant, start, end):
    summary = usage_summary(tenant=tenant, start=start, end=end, group_by="day")
    return {row.key: row.total_tokens for row in summary.rows}


def test_the_ledger_writes_daily_rows_with_the_hourly_ones(tenant, three_days):
    days = dict(UsageDaily.objects.values_list("day", "total_tokens"))
    assert days == {date(2026, 3, 1): 30, date(2026, 3, 2): 30, date(2026, 3, 3): 30}
    assert UsageDaily.objects.get(day=date(2026, 3, 2)).calls == 2
    daily = UsageDaily.objects.aggregate(t=Sum("total_tokens"))["t"]
    assert daily == UsageHourly.objects.aggregate(t=Sum("total_tokens"))["t"] == 90


def test_whole_days_are_read_from_the_daily_rows(tenant, three_days):
    # Marked so that a read of the daily rows shows: March 2nd's daily row says 1000 more.
    UsageDaily.objects.filter(day=date(2026, 3, 2)).update(total_tokens=F("total_tokens") + 1000)
    whole = tokens_by_day(tenant, MARCH_1, MARCH_1 + timedelta(days=3))
    assert whole == {"2026-03-01": 30, "2026-03-02": 1030, "2026-03-03": 30}
    # From 12:00 on March 1st to 12:00 on March 3rd: only March 2nd is whole.
    edges = tokens_by_day(tenant, MARCH_1 + timedelta(hours=12), MARCH_1 + timedelta(days=2.5))
    assert edges == {"2026-03-01": 20, "2026-03-02": 1030, "2026-03-03": 10}
    # Within one day, hourly rows only.
    hours = tokens_by_day(tenant, MARCH_1 + timedelta(days=1), MARCH_1 + timedelta(days=1.5))
    assert hours == {"2026-03-02": 10}


def test_other_reads_add_up_days_and_hours_alike(tenant, three_days):
    start, end = MARCH_1 + timedelta(hours=12), MARCH_1 + timedelta(days=3)
    by_model = usage_summary(tenant=tenant, start=start, end=end, group_by="model")
    assert [(row.key, row.total_tokens, row.calls) for row in by_model.rows] == [
        ("gpt-4o@OpenAI", 80, 5)
    ]
    series = usage_series(tenant=tenant, start=start, end=end)
    assert series.tokens == {"gpt-4o@OpenAI": [20, 30, 30]}
    (top,) = top_tenants(start=start, end=end)
    assert (top.tenant_id, top.usage.total_tokens) == (tenant.pk, 80)


def test_the_rollup_repairs_daily_rows_from_the_hourly_ones(tenant, three_days):
    UsageDaily.objects.filter(day=date(2026, 3, 2)).update(total_tokens=0, calls=0)
    UsageDaily.objects.filter(day=date(2026, 3, 3)).delete()
    assert usage_rollup_daily(since=date(2026, 3, 1)) == 3
    days = dict(UsageDaily.objects.values_list("day", "total_tokens"))
    assert days == {date(2026, 3, 1): 30, date(2026, 3, 2): 30, date(2026, 3, 3): 30}
    assert usage_rollup_daily(since=date(2026, 3, 1)) == 3  # again: nothing changes
    assert dict(UsageDaily.objects.values_list("day", "total_tokens")) == days
