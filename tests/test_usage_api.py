"""GET /api/v1/usage and GET /api/v1/usage/quota: sums equal the events, periods, access."""

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from providers.models import LLMFactory
from tenants.models import Role, Tenant, TenantLLM, TenantMember
from tenants.services.tokens import api_token_create, api_token_revoke
from usage.models import UsageEvent
from usage.quotas import (
    config_rule,
    key_rules,
    tenant_budget_rule,
    tenant_rule,
    to_units,
    window_start,
)
from usage.records import UsageRecord
from usage.selectors.quotas import key_limits_of
from usage.selectors.sums import usage_event_totals
from usage.services.ledger import apply_records
from usage.services.quotas import quota_reserve, quota_settle

MARCH_1 = datetime(2026, 3, 1, tzinfo=UTC)
PERIOD = {"from": "2026-03-01", "to": "2026-03-04"}  # 1st to 4th of March, whole days
START, END = MARCH_1, datetime(2026, 3, 5, tzinfo=UTC)


def use(
    tenant,
    at,
    *,
    llm="gpt-4o",
    factory="OpenAI",
    model_type="chat",
    prompt=100,
    completion=20,
    cost="0.0012",
    outcome="ok",
    config=None,
):
    return UsageRecord(
        tenant_id=str(tenant.pk),
        factory=factory,
        llm_name=llm,
        model_type=model_type,
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cost=cost,
        outcome=outcome,
        created_at=at.timestamp(),
        tenant_llm_id=config.pk if config else None,
    )


@pytest.fixture
def other_tenant(db):
    return Tenant.objects.create(name="Other Co")


@pytest.fixture
def usage(tenant, other_tenant):
    """A mix of days, models, factories, types and outcomes; the other tenant's must not count."""
    at = MARCH_1 + timedelta(hours=9)
    apply_records(
        [
            use(tenant, at, prompt=100, completion=50, cost="0.0015"),
            use(tenant, at + timedelta(minutes=30), prompt=7, completion=3, cost="0.00000001"),
            use(tenant, at + timedelta(days=1), llm="gpt-4o-mini", prompt=300, cost="0.0003"),
            use(
                tenant,
                at + timedelta(days=1, hours=5),
                llm="text-embedding-3-small",
                model_type="embedding",
                prompt=512,
                completion=0,
                cost="0.00001",
            ),
            use(
                tenant,
                at + timedelta(days=2),
                llm="claude-3-5-sonnet",
                factory="Anthropic",
                prompt=1000,
                completion=400,
                cost="0.009",
                outcome="error",
            ),
            use(
                tenant,
                at + timedelta(days=3, hours=14),
                llm="deepseek-chat",
                factory="DeepSeek",
                prompt=64,
                completion=64,
                cost="0.00012",
            ),
            # Outside the period, before and after.
            use(tenant, MARCH_1 - timedelta(seconds=1), prompt=999_000),
            use(tenant, END, prompt=888_000),
            use(other_tenant, at, prompt=777_000, cost="7.5"),
        ]
    )


@pytest.fixture
def owner_api(api_for, owner):
    return api_for(owner)


def events_in(tenant, start=START, end=END):
    return UsageEvent.objects.filter(tenant=tenant, created_at__gte=start, created_at__lt=end)


def event_groups(tenant, group_by):
    """The same groups, summed straight from the raw events."""
    events = events_in(tenant)
    if group_by == "day":
        events = events.annotate(day=TruncDate("created_at", tzinfo=UTC))
    fields = {
        "day": ["day"],
        "model": ["llm_name", "factory"],
        "factory": ["factory"],
        "type": ["model_type"],
    }[group_by]
    grouped = events.values(*fields).annotate(
        calls=Count("pk"),
        prompt=Sum("prompt_tokens"),
        completion=Sum("completion_tokens"),
        total=Sum("total_tokens"),
        money=Sum("cost"),
    )
    result = {}
    for item in grouped:
        if group_by == "day":
            key = item["day"].isoformat()
        elif group_by == "model":
            key = f"{item['llm_name']}@{item['factory']}"
        else:
            key = item[fields[0]]
        result[key] = (
            item["calls"],
            item["prompt"],
            item["completion"],
            item["total"],
            Decimal(item["money"]),
        )
    return result


def as_tuple(row):
    return (
        row["calls"],
        row["prompt_tokens"],
        row["completion_tokens"],
        row["total_tokens"],
        Decimal(row["cost"]),
    )


@pytest.mark.parametrize("group_by", ["day", "model", "factory", "type"])
def test_it_sums_equal_the_events_for_each_group_by(owner_api, tenant, usage, group_by):
    response = owner_api.get("/api/v1/usage", PERIOD | {"group_by": group_by})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["code"] == 0
    data = body["data"]
    assert data["group_by"] == group_by
    assert data["from"] == "2026-03-01T00:00:00Z"
    assert data["to"] == "2026-03-05T00:00:00Z"
    assert {row[group_by]: as_tuple(row) for row in data["rows"]} == event_groups(tenant, group_by)
    expected = usage_event_totals(tenant=tenant, start=START, end=END)
    assert as_tuple(data["totals"]) == (
        expected.calls,
        expected.prompt_tokens,
        expected.completion_tokens,
        expected.total_tokens,
        expected.cost,
    )
    assert data["totals"]["errors"] == expected.errors == 1


def test_it_lists_days_in_order_and_other_groups_by_tokens(owner_api, usage):
    days = owner_api.get("/api/v1/usage", PERIOD).json()["data"]["rows"]
    assert [row["day"] for row in days] == ["2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"]
    models = owner_api.get("/api/v1/usage", PERIOD | {"group_by": "model"}).json()["data"]
    assert models["rows"][0]["model"] == "claude-3-5-sonnet@Anthropic"
    tokens = [row["total_tokens"] for row in models["rows"]]
    assert tokens == sorted(tokens, reverse=True)


def test_it_keeps_costs_exact_as_decimal_strings(owner_api, usage):
    rows = owner_api.get("/api/v1/usage", PERIOD).json()["data"]["rows"]
    assert rows[0]["cost"] == "0.00150001"  # 0.0015 + 0.00000001, no float rounding


@pytest.mark.parametrize("group_by", ["day", "model", "factory", "type"])
def test_it_returns_csv_with_a_header_row_and_the_same_sums(owner_api, tenant, usage, group_by):
    response = owner_api.get("/api/v1/usage", PERIOD | {"group_by": group_by, "format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment; filename=")
    lines = list(csv.reader(io.StringIO(response.content.decode())))
    assert lines[0] == [
        group_by,
        "calls",
        "errors",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "cost",
    ]
    rows = {
        line[0]: (int(line[1]), int(line[3]), int(line[4]), int(line[5]), Decimal(line[6]))
        for line in lines[1:]
    }
    assert rows == event_groups(tenant, group_by)


def test_it_neutralises_formulas_in_csv_cells(owner_api, tenant):
    apply_records([use(tenant, MARCH_1, llm="=HYPERLINK(1)", factory="OpenAI-API-Compatible")])
    response = owner_api.get("/api/v1/usage", PERIOD | {"group_by": "model", "format": "csv"})
    assert "'=HYPERLINK(1)@OpenAI-API-Compatible" in response.content.decode()


def test_it_answers_a_bad_value_in_csv_mode_with_a_json_envelope(owner_api):
    response = owner_api.get("/api/v1/usage", {"format": "csv", "group_by": "week"})
    assert response.status_code == 400
    assert response.json()["code"] == 102


def test_it_includes_the_whole_to_day_when_to_is_a_date(owner_api, tenant):
    apply_records(
        [
            use(tenant, datetime(2026, 3, 1, 0, 0, 0, tzinfo=UTC), prompt=1, completion=0),
            use(
                tenant, datetime(2026, 3, 2, 23, 59, 59, 999000, tzinfo=UTC), prompt=2, completion=0
            ),
            use(tenant, datetime(2026, 3, 3, 0, 0, 0, tzinfo=UTC), prompt=4, completion=0),
            use(tenant, datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC), prompt=8, completion=0),
        ]
    )
    data = owner_api.get("/api/v1/usage", {"from": "2026-03-01", "to": "2026-03-02"}).json()
    assert data["data"]["totals"]["total_tokens"] == 1 + 2
    assert data["data"]["to"] == "2026-03-03T00:00:00Z"
    one_day = owner_api.get("/api/v1/usage", {"from": "2026-03-03", "to": "2026-03-03"}).json()
    assert one_day["data"]["totals"]["total_tokens"] == 4


def test_it_excludes_to_when_to_is_a_datetime(owner_api, tenant):
    apply_records(
        [
            use(tenant, datetime(2026, 3, 1, 9, 59, 59, tzinfo=UTC), prompt=1, completion=0),
            use(tenant, datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC), prompt=2, completion=0),
            use(tenant, datetime(2026, 3, 1, 11, 0, 0, tzinfo=UTC), prompt=4, completion=0),
        ]
    )
    params = {"from": "2026-03-01T09:00:00Z", "to": "2026-03-01T11:00:00Z"}
    data = owner_api.get("/api/v1/usage", params).json()["data"]
    assert data["totals"]["total_tokens"] == 1 + 2
    assert (data["from"], data["to"]) == ("2026-03-01T09:00:00Z", "2026-03-01T11:00:00Z")
    assert (
        usage_event_totals(
            tenant=tenant,
            start=datetime(2026, 3, 1, 9, tzinfo=UTC),
            end=datetime(2026, 3, 1, 11, tzinfo=UTC),
        ).total_tokens
        == 3
    )


def test_it_converts_offsets_to_utc_even_when_the_plus_was_not_encoded(owner_api, tenant):
    apply_records([use(tenant, datetime(2026, 3, 1, 8, tzinfo=UTC), prompt=5, completion=0)])
    for start in ("2026-03-01T10:00:00+02:00", "2026-03-01T10:00:00 02:00"):
        data = owner_api.get("/api/v1/usage", {"from": start, "to": "2026-03-01"}).json()["data"]
        assert data["from"] == "2026-03-01T08:00:00Z"
        assert data["totals"]["total_tokens"] == 5


def test_it_defaults_to_the_last_30_days_with_today(owner_api, tenant):
    now = timezone.now()
    apply_records(
        [
            use(tenant, now, prompt=1, completion=0),
            use(tenant, now - timedelta(days=28), prompt=2, completion=0),
            use(tenant, now - timedelta(days=31), prompt=4, completion=0),
        ]
    )
    data = owner_api.get("/api/v1/usage").json()["data"]
    assert data["group_by"] == "day"
    assert data["totals"]["total_tokens"] == 1 + 2
    assert len(data["rows"]) == 2
    today = now.astimezone(UTC).date()
    assert data["to"] == f"{today + timedelta(days=1)}T00:00:00Z"
    assert data["from"] == f"{today - timedelta(days=29)}T00:00:00Z"


def test_it_returns_empty_rows_and_zero_totals_without_usage(owner_api):
    data = owner_api.get("/api/v1/usage", PERIOD).json()["data"]
    assert data["rows"] == []
    assert data["totals"] == {
        "calls": 0,
        "errors": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "total_tokens": 0,
        "cost": "0.00000000",
    }


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"group_by": "week"}, "group_by: 'week' is not one of day, model, factory, type, token"),
        ({"format": "xml"}, "format: 'xml' is not one of json, csv"),
        ({"from": "yesterday"}, "from: 'yesterday' is neither a date"),
        ({"to": "2026-02-30"}, "to: '2026-02-30' is neither a date"),
        ({"from": "2026-03-01T10:30:00Z"}, "is not on the hour"),
        ({"from": "2026-03-05", "to": "2026-03-04"}, "must be before to"),
        ({"from": "2026-03-01T10:00:00Z", "to": "2026-03-01T10:00:00Z"}, "must be before to"),
    ],
)
def test_it_refuses_bad_values_with_code_102(owner_api, params, fragment):
    response = owner_api.get("/api/v1/usage", params)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == 102
    assert fragment in body["message"]


def test_it_makes_a_fixed_number_of_queries(owner_api, tenant, django_assert_max_num_queries):
    records = [
        use(tenant, MARCH_1 + timedelta(days=day, hours=hour), llm=f"model-{m}")
        for day in range(4)
        for hour in (1, 13)
        for m in range(15)
    ]
    apply_records(records)
    owner_api.get("/api/v1/usage", PERIOD)  # the token's last-use write happens once a minute
    for group_by in ("day", "model", "factory", "type"):
        with django_assert_max_num_queries(3):
            response = owner_api.get("/api/v1/usage", PERIOD | {"group_by": group_by})
        assert response.status_code == 200
    with django_assert_max_num_queries(3):
        csv_response = owner_api.get("/api/v1/usage", PERIOD | {"format": "csv"})
    assert len(csv_response.content.decode().splitlines()) == 1 + 4


# --- Access -------------------------------------------------------------------------------

ROUTES = ["/api/v1/usage", "/api/v1/usage/quota"]


@pytest.mark.parametrize("route", ROUTES)
def test_it_lets_a_normal_member_read(api_for, member, tenant, usage, route):
    response = api_for(member, tenant_id=tenant.pk).get(route, PERIOD)
    assert response.status_code == 200
    assert response.json()["code"] == 0


@pytest.mark.parametrize("route", ROUTES)
def test_it_hides_the_tenant_from_an_outsider(api_for, outsider, tenant, usage, route):
    response = api_for(outsider, tenant_id=tenant.pk).get(route, PERIOD)
    assert response.status_code == 404
    assert "rows" not in response.content.decode()


@pytest.mark.parametrize("route", ROUTES)
def test_it_refuses_an_invited_member(api_for, outsider, tenant, route):
    TenantMember.objects.create(user=outsider, tenant=tenant, role=Role.INVITE)
    assert api_for(outsider, tenant_id=tenant.pk).get(route).status_code == 403


@pytest.mark.parametrize("route", ROUTES)
def test_it_requires_authentication(api_for, route):
    assert api_for(None).get(route).status_code == 401


def test_it_gives_a_member_the_selected_tenants_numbers(api_for, member, tenant, usage):
    data = api_for(member, tenant_id=tenant.pk).get("/api/v1/usage", PERIOD).json()["data"]
    expected = usage_event_totals(tenant=tenant, start=START, end=END)
    assert data["totals"]["total_tokens"] == expected.total_tokens


# --- Quota --------------------------------------------------------------------------------


@pytest.fixture
def openai(catalog):
    return LLMFactory.objects.get(name="OpenAI")


def spend(rule, tokens):
    """Spend through the real quota path: reserve an estimate, settle the actual count."""
    quota_settle(reservation=quota_reserve(rules=(rule,), tokens=1), actual_tokens=tokens)


def spend_cost(rule, dollars):
    """Spend money under a budget, through the same path."""
    reservation = quota_reserve(rules=(rule,), tokens=1, cost_units=1)
    quota_settle(reservation=reservation, actual_tokens=1, actual_cost_units=to_units(dollars))


def test_it_reports_the_tenant_quota_and_warns_from_80_percent(owner_api, tenant):
    tenant.token_quota = 1000
    tenant.quota_window = "monthly"
    tenant.save()
    spend(tenant_rule(tenant), 799)
    data = owner_api.get("/api/v1/usage/quota").json()["data"]
    quota = data["tenant"]
    assert quota["quota"] == 1000 and quota["window"] == "monthly"
    assert (quota["used"], quota["remaining"], quota["percent"]) == (799, 201, 79.9)
    assert quota["warning"] is False and quota["unlimited"] is False
    assert quota["window_start"] == f"{window_start('monthly'):%Y-%m-%dT%H:%M:%SZ}"
    assert data["warn_at_percent"] == 80

    spend(tenant_rule(tenant), 1)
    quota = owner_api.get("/api/v1/usage/quota").json()["data"]["tenant"]
    assert (quota["used"], quota["remaining"], quota["percent"]) == (800, 200, 80.0)
    assert quota["warning"] is True


def test_it_reports_each_model_quota_in_its_own_window(owner_api, tenant, openai):
    daily = TenantLLM.objects.create(
        tenant=tenant,
        factory=openai,
        llm_name="gpt-4o",
        model_type="chat",
        token_quota=100,
        quota_window="daily",
        used_tokens=5000,
    )
    lifetime = TenantLLM.objects.create(
        tenant=tenant,
        factory=openai,
        llm_name="gpt-4o-mini",
        model_type="chat",
        token_quota=10_000,
        quota_window="none",
    )
    TenantLLM.objects.create(  # no quota: not listed
        tenant=tenant, factory=openai, llm_name="o1", model_type="chat"
    )
    spend(config_rule(daily), 95)
    spend(config_rule(lifetime), 1000)
    data = owner_api.get("/api/v1/usage/quota").json()["data"]
    assert data["tenant"]["quota"] is None and data["tenant"]["warning"] is False
    models = {item["model"]: item for item in data["models"]}
    assert set(models) == {"gpt-4o@OpenAI", "gpt-4o-mini@OpenAI"}
    assert models["gpt-4o@OpenAI"] | {"window_start": None} == {
        "id": daily.pk,
        "model": "gpt-4o@OpenAI",
        "model_type": "chat",
        "used_tokens": 5000,
        "quota": 100,
        "window": "daily",
        "window_start": None,
        "used": 95,
        "remaining": 5,
        "percent": 95.0,
        "warning": True,
    }
    assert models["gpt-4o-mini@OpenAI"]["window_start"] == "1970-01-01T00:00:00Z"
    assert models["gpt-4o-mini@OpenAI"]["percent"] == 10.0
    assert models["gpt-4o-mini@OpenAI"]["warning"] is False


def test_it_does_not_warn_an_unlimited_tenant(owner_api, tenant):
    tenant.token_quota = 100
    tenant.save()
    spend(tenant_rule(tenant), 90)
    Tenant.objects.filter(pk=tenant.pk).update(unlimited=True)
    quota = owner_api.get("/api/v1/usage/quota").json()["data"]["tenant"]
    assert quota["unlimited"] is True
    assert quota["used"] == 90 and quota["warning"] is False


def test_it_reports_the_tenant_budget_and_the_keys_quotas_and_budgets(owner_api, owner, tenant):
    tenant.budget = Decimal("2.00")
    tenant.quota_window = "daily"
    tenant.save()
    spend_cost(tenant_budget_rule(tenant), "1.70")  # 85 %: warns
    quota_key, _ = api_token_create(
        user=owner, tenant=tenant, name="rag", token_quota=1000, quota_window="daily"
    )
    budget_key, _ = api_token_create(user=owner, tenant=tenant, name="agent", budget=Decimal("1"))
    revoked, _ = api_token_create(user=owner, tenant=tenant, name="old", token_quota=5)
    api_token_create(user=owner, tenant=tenant, name="plain")  # no quota, no budget: not listed
    api_token_revoke(token=revoked)
    for key, tokens, cost in ((quota_key, 250, "0"), (budget_key, 10, "0.25")):
        for rule in key_rules(key_limits_of(key), tenant.pk):
            if rule.kind == "cost":
                spend_cost(rule, cost)
            else:
                spend(rule, tokens)
    data = owner_api.get("/api/v1/usage/quota").json()["data"]
    assert data["budget"] | {"window_start": None} == {
        "budget": "2.00000000",
        "window": "daily",
        "window_start": None,
        "spent": "1.70000000",
        "remaining": "0.30000000",
        "percent": 85.0,
        "warning": True,
    }
    assert data["budget"]["window_start"] == f"{window_start('daily'):%Y-%m-%dT%H:%M:%SZ}"
    keys = {item["name"]: item for item in data["keys"]}
    assert list(keys) == ["agent", "rag"]
    rag, agent = keys["rag"], keys["agent"]
    assert (rag["id"], rag["prefix"]) == (quota_key.pk, quota_key.prefix)
    assert (rag["quota"]["quota"], rag["quota"]["used"], rag["quota"]["window"]) == (
        1000,
        250,
        "daily",
    )
    assert rag["budget"]["budget"] is None and rag["budget"]["spent"] is None
    assert agent["quota"]["quota"] is None
    assert (agent["budget"]["budget"], agent["budget"]["spent"]) == ("1.00000000", "0.25000000")
    assert agent["budget"]["remaining"] == "0.75000000" and agent["budget"]["warning"] is False


def test_a_tenant_without_a_budget_or_keys_shows_none(owner_api):
    data = owner_api.get("/api/v1/usage/quota").json()["data"]
    assert data["keys"] == []
    assert data["budget"]["budget"] is None and data["budget"]["warning"] is False


def _quota_configs(owner, tenant, factory, first, count):
    """`count` model configs with quotas over the three windows: the even ones have spent
    through the quota path (their counters exist), the odd ones only have usage in the
    ledger (no counter yet, so the status reads the ledger, as a seed would)."""
    records = []
    for i in range(first, first + count):
        config = TenantLLM.objects.create(
            tenant=tenant,
            factory=factory,
            llm_name=f"m{i}",
            model_type="chat",
            token_quota=1000,
            quota_window=["none", "daily", "monthly"][i % 3],
        )
        if i % 2 == 0:
            spend(config_rule(config), i)
        else:
            records.append(use(tenant, timezone.now(), llm=f"m{i}", prompt=i, completion=0))
        if i % 5 == 0:  # and keys with a quota and a budget, one of them ever used
            key, _ = api_token_create(
                user=owner, tenant=tenant, name=f"k{i}", token_quota=10, budget=Decimal(1)
            )
            if i % 10 == 0:
                spend(key_rules(key_limits_of(key), tenant.pk)[0], 1)
    apply_records(records)


def test_it_reads_quotas_in_a_fixed_number_of_queries(owner_api, owner, tenant, openai):
    """As many queries for 40 model quotas and 8 keys as for 10 and 2, counters or not: the
    token and the membership, the configs, the keys, the owner's superuser flag and the
    ledger (for counters not made yet); the database path reads its counters with one query
    more than the Redis path."""
    tenant.token_quota = 100_000  # no counter: read from the ledger
    tenant.save()
    counts = []
    for first, count in ((0, 10), (10, 30)):
        _quota_configs(owner, tenant, openai, first, count)
        owner_api.get("/api/v1/usage/quota")
        with CaptureQueriesContext(connection) as queries:
            data = owner_api.get("/api/v1/usage/quota").json()["data"]
        counts.append(len(queries))
    assert counts[0] == counts[1] <= (6 if settings.QUOTA_REDIS_URL else 7), counts
    assert sorted(item["used"] for item in data["models"]) == list(range(40))
    assert data["tenant"]["used"] == sum(range(1, 40, 2))
    used = {key["name"]: key["quota"]["used"] for key in data["keys"]}
    assert used == {f"k{i}": int(i % 10 == 0) for i in range(0, 40, 5)}
