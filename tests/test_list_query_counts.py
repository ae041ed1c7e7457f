"""The list endpoints make the same number of queries for 1 configuration as for 100."""

from datetime import UTC, datetime, timedelta

import pytest

from providers.models import LLMFactory
from tenants.models import TenantLLM
from usage.records import UsageRecord
from usage.services.ledger import apply_records

MARCH_1 = datetime(2026, 3, 1, tzinfo=UTC)
# A request: its token (with its user), and the caller's membership of the tenant.
AUTH = 2


@pytest.fixture
def owner_api(api_for, owner):
    client = api_for(owner)
    client.get("/api/v1/llm/my_llms")  # the token's last-use write happens once a minute
    return client


@pytest.fixture(params=[1, 100], ids=["1 config", "100 configs"])
def configs(request, tenant, catalog):
    openai = LLMFactory.objects.get(name="OpenAI")
    TenantLLM.objects.bulk_create(
        TenantLLM(
            tenant=tenant,
            factory=openai,
            llm_name=f"model-{i}",
            model_type="chat",
            api_key=f"sk-{i:030d}",
        )
        for i in range(request.param)
    )
    return list(TenantLLM.objects.filter(tenant=tenant))


@pytest.mark.parametrize("details", ["", "true"])
def test_my_llms(owner_api, configs, django_assert_num_queries, details):
    with django_assert_num_queries(AUTH + 1):  # the configs, with their catalog flags
        response = owner_api.get("/api/v1/llm/my_llms", {"include_details": details})
    assert len(response.json()["data"]["OpenAI"]["llm"]) == len(configs)


@pytest.mark.parametrize("model_type", ["", "chat"])
def test_list(owner_api, configs, django_assert_num_queries, model_type):
    with django_assert_num_queries(AUTH + 2):  # the tenant's configs, the catalog
        response = owner_api.get("/api/v1/llm/list", {"model_type": model_type})
    listed = {m["llm_name"] for m in response.json()["data"]["OpenAI"]}
    assert {c.llm_name for c in configs} <= listed


@pytest.mark.parametrize("group_by", ["day", "model", "factory", "type"])
def test_usage(owner_api, tenant, configs, django_assert_num_queries, group_by):
    apply_records(
        UsageRecord(
            tenant_id=str(tenant.pk),
            tenant_llm_id=config.pk,
            factory="OpenAI",
            llm_name=config.llm_name,
            model_type="chat",
            prompt_tokens=10,
            total_tokens=10,
            created_at=(MARCH_1 + timedelta(days=day, hours=hour)).timestamp(),
        )
        for config in configs
        for day in range(3)
        for hour in (0, 13)
    )
    # From 12:00 on March 1st: hourly rows around whole days, daily rows inside, one query.
    period = {"from": "2026-03-01T12:00:00Z", "to": "2026-03-03", "group_by": group_by}
    with django_assert_num_queries(AUTH + 1):
        response = owner_api.get("/api/v1/usage", period)
    assert response.json()["data"]["totals"]["total_tokens"] == 10 * 5 * len(configs)
