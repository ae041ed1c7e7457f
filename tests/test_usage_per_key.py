"""Usage per API key (issue 11): events and rollups carry the token that made the call; the
usage API groups and filters by it, the report command too (the gateway: tests/gateway)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db.models import Count, Sum

from usage.models import UsageDaily, UsageEvent, UsageHourly
from usage.records import UsageRecord
from usage.services.ledger import apply_records

MARCH_1 = datetime(2026, 3, 1, tzinfo=UTC)
PERIOD = {"from": "2026-03-01", "to": "2026-03-03"}  # whole days and the hours around them


def use(tenant, at, tokens, token_id, cost="0.0001"):
    return UsageRecord(
        tenant_id=str(tenant.pk),
        factory="OpenAI",
        llm_name="gpt-4o",
        model_type="chat",
        prompt_tokens=tokens - 1,
        completion_tokens=1,
        total_tokens=tokens,
        cost=cost,
        created_at=at.timestamp(),
        token_id=token_id,
    )


@pytest.fixture
def owner_api(api_for, owner):
    return api_for(owner)


@pytest.fixture
def keyed_usage(tenant):
    at = MARCH_1 + timedelta(hours=10)
    records = [
        use(tenant, at, 100, 11),
        use(tenant, at + timedelta(hours=1), 50, 11),
        use(tenant, at + timedelta(days=1), 70, 12, cost="0.0002"),
        use(tenant, at + timedelta(days=2, hours=5), 30, None),
        use(tenant, at + timedelta(days=2, hours=6), 9, 12),
    ]
    apply_records(records)
    return records


def event_sums_by_token(tenant):
    rows = (
        UsageEvent.objects.filter(tenant=tenant)
        .values("token_id")
        .annotate(calls=Count("pk"), total=Sum("total_tokens"), money=Sum("cost"))
    )
    return {
        ("none" if r["token_id"] is None else str(r["token_id"])): (
            r["calls"],
            r["total"],
            Decimal(r["money"]),
        )
        for r in rows
    }


def test_events_and_rollups_carry_the_token(tenant, keyed_usage):
    assert sorted(UsageEvent.objects.values_list("token_id", flat=True), key=str) == sorted(
        [11, 11, 12, None, 12], key=str
    )
    for model in (UsageHourly, UsageDaily):
        sums = dict(model.objects.values_list("token_id").annotate(t=Sum("total_tokens")))
        assert sums == {11: 150, 12: 79, 0: 30}, model


def test_group_by_token_sums_equal_the_events(owner_api, tenant, keyed_usage):
    response = owner_api.get("/api/v1/usage", PERIOD | {"group_by": "token"})
    assert response.status_code == 200, response.json()
    rows = {
        row["token"]: (row["calls"], row["total_tokens"], Decimal(row["cost"]))
        for row in response.json()["data"]["rows"]
    }
    assert rows == event_sums_by_token(tenant)
    assert list(rows) == ["11", "12", "none"]  # most tokens first


def test_the_token_filter_keeps_only_that_keys_calls(owner_api, tenant, keyed_usage):
    response = owner_api.get("/api/v1/usage", PERIOD | {"group_by": "day", "token": "12"})
    assert response.status_code == 200, response.json()
    data = response.json()["data"]
    assert [(r["day"], r["total_tokens"]) for r in data["rows"]] == [
        ("2026-03-02", 70),
        ("2026-03-03", 9),
    ]
    assert data["totals"]["calls"] == 2
    bad = owner_api.get("/api/v1/usage", PERIOD | {"token": "abc"})
    assert bad.status_code == 400
    assert "token" in bad.json()["message"]


def test_usage_report_groups_by_token(tenant, keyed_usage, capsys):
    call_command(
        "usage_report",
        "--tenant",
        str(tenant.pk),
        "--from",
        "2026-03-01",
        "--to",
        "2026-03-03",
        "--group-by",
        "token",
        "--csv",
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("token,calls")
    assert {line.split(",")[0]: int(line.split(",")[5]) for line in lines[1:]} == {
        "11": 150,
        "12": 79,
        "none": 30,
    }


def test_the_admins_tenant_page_shows_spend_per_key(client, superuser, owner, tenant):
    from django.urls import reverse

    from tenants.services.tokens import api_token_issue

    token, _raw = api_token_issue(user=owner, name="billing-app")
    at = datetime.now(UTC) - timedelta(days=1)
    apply_records(
        [
            use(tenant, at, 1234, token.pk),
            use(tenant, at, 567, None),
            use(tenant, at, 89, 999_999),  # a key deleted since
        ]
    )
    client.force_login(superuser)
    body = client.get(reverse("admin:usage_tenant", args=[tenant.pk])).content.decode()
    table = body[body.index('id="usage-by-key"') :]
    table = table[: table.index("</table>")]
    assert f"billing-app ({token.prefix}" in table
    assert "1,234" in table or "1234" in table
    assert "No API key (called in-process)" in table
    assert "deleted key #999999" in table
