"""Reads for usage: sums by group, chart series, top tenants, raw event totals.

Whole UTC days are read from UsageDaily, the hours around them from UsageHourly, in one query:
the ledger writes both in the events' own transaction, so sums equal the events exactly and are
never stale, and a long range reads a day's row where it would read 24 hourly ones. Every
function makes a fixed number of queries, whatever the number of tenants, models or days.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import Count, F, Q, Sum
from django.db.models.functions import TruncDate

from tenants.models import Tenant

from ..models import NO_TOKEN, ROLLUP_SUMS, Outcome, UsageDaily, UsageEvent, UsageHourly

# The columns each group_by groups on; "model" keys read "llm_name@factory", as RAGFlow's do.
_GROUP_FIELDS = {
    "day": ("on_day",),
    "model": ("llm_name", "factory"),
    "factory": ("factory",),
    "type": ("model_type",),
    "token": ("token_id",),
}
# group_by=token's key of calls made through no API token (LLMBundle called from inside).
NO_TOKEN_KEY = "none"


@dataclass(frozen=True)
class UsageRow:
    key: str
    calls: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost: Decimal = Decimal(0)


@dataclass(frozen=True)
class UsageSummary:
    group_by: str
    start: datetime
    end: datetime
    rows: list[UsageRow]
    totals: UsageRow


@dataclass(frozen=True)
class UsageSeries:
    """Per UTC day and model, for charts: every day of the range, zeros included."""

    days: list[date]
    models: list[str]  # most tokens first
    tokens: dict[str, list[int]]  # model -> total tokens per day
    cost: dict[str, list[Decimal]]  # model -> cost per day
    rows: list[tuple[date, UsageRow]]  # the non-empty (day, model) cells, by day then model

    @property
    def cost_per_day(self) -> list[Decimal]:
        return [
            sum((self.cost[m][i] for m in self.models), Decimal(0)) for i in range(len(self.days))
        ]


@dataclass(frozen=True)
class TenantUsage:
    tenant_id: uuid.UUID
    name: str
    usage: UsageRow


def _whole_days(start: datetime, end: datetime) -> tuple[date, date] | None:
    """The UTC days lying wholly inside `[start, end)`, as [first, stop), or None."""
    first = start.astimezone(UTC)
    if first.time() != time(0):
        first = datetime.combine(first.date() + timedelta(days=1), time(0), tzinfo=UTC)
    stop = end.astimezone(UTC).date()
    return (first.date(), stop) if first.date() < stop else None


def _grouped(
    *, tenant: Tenant | None, start: datetime, end: datetime, fields, token: int | None = None
) -> list[dict]:
    """Sums per `fields` over `[start, end)`, one dict per group, by `fields`. One query.
    `token`: only the calls made with that API token.

    Whole days come from the daily rows, the hours before and after them from the hourly rows
    (UNION ALL); groups found in both are added up here. A "on_day" field is the UTC date.
    """
    hourly = UsageHourly.objects.filter(bucket__gte=start, bucket__lt=end)
    daily = UsageDaily.objects.none()
    days = _whole_days(start, end)
    if days is not None:
        first, stop = (datetime.combine(day, time(0), tzinfo=UTC) for day in days)
        hourly = hourly.exclude(bucket__gte=first, bucket__lt=stop)
        daily = UsageDaily.objects.filter(day__gte=days[0], day__lt=days[1])
    if tenant is not None:
        hourly, daily = hourly.filter(tenant=tenant), daily.filter(tenant=tenant)
    if token is not None:
        hourly, daily = hourly.filter(token_id=token), daily.filter(token_id=token)
    parts = [
        rows.annotate(on_day=on_day).values(*fields).annotate(**_sums()).order_by()
        for rows, on_day in ((hourly, TruncDate("bucket", tzinfo=UTC)), (daily, F("day")))
    ]
    groups: dict[tuple, dict] = {}
    for item in parts[0].union(parts[1], all=True) if days is not None else parts[0]:
        key = tuple(item[name] for name in fields)
        group = groups.setdefault(key, {name: item[name] for name in fields})
        for name in ROLLUP_SUMS:
            group[f"sum_{name}"] = group.get(f"sum_{name}", 0) + (item[f"sum_{name}"] or 0)
    return [groups[key] for key in sorted(groups)]


def _sums() -> dict[str, Sum]:
    # Aliased: an annotation may not reuse a model field's name.
    return {f"sum_{name}": Sum(name) for name in ROLLUP_SUMS}


def _row(key: str, item: dict) -> UsageRow:
    values = {name: item[f"sum_{name}"] or 0 for name in ROLLUP_SUMS}
    values["cost"] = Decimal(values["cost"])
    return UsageRow(key=key, **values)


def _total(rows: list[UsageRow], key: str = "total") -> UsageRow:
    return UsageRow(
        key=key,
        **{
            name: sum((getattr(r, name) for r in rows), Decimal(0) if name == "cost" else 0)
            for name in ROLLUP_SUMS
        },
    )


def _key(group_by: str, item: dict) -> str:
    if group_by == "day":
        return item["on_day"].isoformat()
    if group_by == "model":
        return f"{item['llm_name']}@{item['factory']}"
    if group_by == "token":
        return NO_TOKEN_KEY if item["token_id"] == NO_TOKEN else str(item["token_id"])
    return item[_GROUP_FIELDS[group_by][0]]


def usage_summary(
    *,
    tenant: Tenant | None,
    start: datetime,
    end: datetime,
    group_by: str,
    token: int | None = None,
) -> UsageSummary:
    """Sums per group over `[start, end)`; `tenant=None` sums over every tenant, `token` only
    the calls of that API token. One query.

    Days come in order; other groups with the most tokens first. group_by=token keys are API
    token ids ("none": calls made without one).
    """
    grouped = _grouped(
        tenant=tenant, start=start, end=end, fields=_GROUP_FIELDS[group_by], token=token
    )
    result = [_row(_key(group_by, item), item) for item in grouped]
    if group_by != "day":
        result.sort(key=lambda r: (-r.total_tokens, r.key))
    return UsageSummary(group_by=group_by, start=start, end=end, rows=result, totals=_total(result))


def usage_series(*, tenant: Tenant | None, start: datetime, end: datetime) -> UsageSeries:
    """Tokens and cost per UTC day and model over `[start, end)`, for charts. One query."""
    grouped = _grouped(
        tenant=tenant, start=start, end=end, fields=("on_day", "llm_name", "factory")
    )
    first = start.astimezone(UTC).date()
    last = (end - timedelta(microseconds=1)).astimezone(UTC).date()
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    cells = [(item["on_day"], _row(_key("model", item), item)) for item in grouped]
    totals: dict[str, int] = {}
    for _, row in cells:
        totals[row.key] = totals.get(row.key, 0) + row.total_tokens
    models = sorted(totals, key=lambda m: (-totals[m], m))
    index = {day: i for i, day in enumerate(days)}
    tokens = {m: [0] * len(days) for m in models}
    cost = {m: [Decimal(0)] * len(days) for m in models}
    for day, row in cells:
        if day in index:
            tokens[row.key][index[day]] += row.total_tokens
            cost[row.key][index[day]] += row.cost
    return UsageSeries(days=days, models=models, tokens=tokens, cost=cost, rows=cells)


def top_tenants(*, start: datetime, end: datetime, limit: int = 20) -> list[TenantUsage]:
    """The tenants that used the most tokens over `[start, end)`. One query."""
    grouped = _grouped(tenant=None, start=start, end=end, fields=("tenant_id", "tenant__name"))
    grouped.sort(key=lambda g: (-g["sum_total_tokens"], -g["sum_cost"], g["tenant__name"]))
    return [
        TenantUsage(
            tenant_id=item["tenant_id"],
            name=item["tenant__name"],
            usage=_row(item["tenant__name"], item),
        )
        for item in grouped[:limit]
    ]


def usage_event_totals(*, tenant: Tenant | None, start: datetime, end: datetime) -> UsageRow:
    """Sums over the raw events of `[start, end)`, to check the rollups against. One query."""
    events = UsageEvent.objects.filter(created_at__gte=start, created_at__lt=end)
    if tenant is not None:
        events = events.filter(tenant=tenant)
    item = events.aggregate(
        sum_calls=Count("pk"),
        sum_errors=Count("pk", filter=~Q(outcome=Outcome.OK)),
        **{f"sum_{name}": Sum(name) for name in ROLLUP_SUMS if name not in {"calls", "errors"}},
    )
    return _row("total", item)
