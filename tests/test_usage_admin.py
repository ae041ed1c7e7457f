"""The usage admin: read-only lists, the usage dashboard and the per-tenant usage page."""

import json
import re
import uuid
from datetime import timedelta
from decimal import Decimal
from html import unescape

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.staticfiles import finders
from django.urls import reverse
from django.utils import timezone

from providers.models import LLMFactory
from tenants.models import Tenant, TenantLLM
from tenants.services.tokens import api_token_create
from usage.models import UsageEvent
from usage.quotas import config_rule, key_rules, tenant_budget_rule, tenant_rule, to_units
from usage.records import UsageRecord
from usage.selectors.quotas import key_limits_of
from usage.services.ledger import apply_records
from usage.services.quotas import quota_reserve, quota_settle

SCRIPT_SRC = re.compile(r"<script[^>]*\bsrc=\"([^\"]+)\"")


def use(tenant, at, *, llm="gpt-4o", factory="OpenAI", prompt=100, completion=20, cost="0.001"):
    return UsageRecord(
        tenant_id=str(tenant.pk),
        factory=factory,
        llm_name=llm,
        model_type="chat",
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cost=cost,
        created_at=at.timestamp(),
    )


@pytest.fixture
def admin_client_(client, superuser):
    client.force_login(superuser)
    return client


@pytest.fixture
def today():
    return timezone.now().replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=1)


@pytest.fixture
def usage(tenant, today):
    small = Tenant.objects.create(name="Small Co")
    apply_records(
        [
            use(tenant, today, prompt=1000, completion=500, cost="0.015"),
            use(tenant, today - timedelta(days=1), llm="gpt-4o-mini", prompt=300, cost="0.0003"),
            use(tenant, today - timedelta(days=1), llm="claude-3-5-haiku", factory="Anthropic"),
            use(small, today, prompt=10, completion=0, cost="0.00001"),
            use(tenant, today - timedelta(days=40), prompt=999_999),  # before the last 30 days
        ]
    )
    return small


def chart_data(body: str) -> dict:
    found = re.search(
        r'<script id="usage-chart-data" type="application/json">(.*?)</script>', body, re.S
    )
    assert found, "no json_script element"
    return json.loads(unescape(found.group(1)))


def assert_local_scripts_only(body: str) -> None:
    sources = SCRIPT_SRC.findall(body)
    assert "/static/vendor/chartjs/chart.umd.min.js" in sources
    assert all(src.startswith("/static/") for src in sources), sources
    assert "https://" not in " ".join(sources)
    assert not re.search(r"<script[^>]*src=\"(https?:)?//", body)


def test_it_ships_chart_js_in_our_static_files():
    path = finders.find("vendor/chartjs/chart.umd.min.js")
    assert path is not None
    with open(path, encoding="utf-8") as handle:
        assert "Chart.js v4" in handle.read(200)
    assert finders.find("vendor/chartjs/LICENSE.md") is not None
    assert finders.find("usage/usage_charts.js") is not None


def test_it_renders_the_dashboard_with_the_top_tenants(admin_client_, tenant, usage):
    response = admin_client_.get(reverse("admin:usage_dashboard"))
    assert response.status_code == 200
    body = response.content.decode()
    assert '<canvas id="usage-tenants-chart"' in body
    assert_local_scripts_only(body)
    assert reverse("admin:usage_tenant", args=[tenant.pk]) in body
    assert reverse("admin:usage_tenant", args=[usage.pk]) in body
    data = chart_data(body)
    assert data["labels"] == [tenant.name, "Small Co"]  # most tokens first
    assert data["tokens"] == [1500 + 320 + 120, 10]
    assert "$0.016" in body  # the tenant's cost over the last 30 days ($0.0163)


def test_it_renders_the_tenant_page_with_charts_table_and_quota(
    admin_client_, tenant, usage, today
):
    response = admin_client_.get(reverse("admin:usage_tenant", args=[tenant.pk]))
    assert response.status_code == 200
    body = response.content.decode()
    assert '<canvas id="usage-tokens-chart"' in body
    assert '<canvas id="usage-cost-chart"' in body
    assert_local_scripts_only(body)
    data = chart_data(body)
    assert len(data["days"]) == 30
    models = {item["label"]: item for item in data["models"]}
    assert set(models) == {"gpt-4o@OpenAI", "gpt-4o-mini@OpenAI", "claude-3-5-haiku@Anthropic"}
    day = data["days"].index(today.date().isoformat())
    assert models["gpt-4o@OpenAI"]["tokens"][day] == 1500
    assert sum(models["gpt-4o@OpenAI"]["tokens"]) == 1500  # the 40-day-old call is outside
    assert data["cost"][day] == pytest.approx(0.015)
    assert data["cost"][day - 1] == pytest.approx(0.0003 + 0.001)
    table = body[body.index('id="usage-day-model"') :]
    assert "gpt-4o-mini@OpenAI" in table and "$0.0003" in table
    assert "No tenant quota." in body
    assert "usage-quota-warning" not in body


def test_it_shows_a_visible_warning_from_80_percent_of_a_quota(admin_client_, tenant, catalog):
    tenant.token_quota = 1000
    tenant.save()
    config = TenantLLM.objects.create(
        tenant=tenant,
        factory=LLMFactory.objects.get(name="OpenAI"),
        llm_name="gpt-4o",
        model_type="chat",
        token_quota=100,
        quota_window="daily",
    )
    for rule, tokens in ((tenant_rule(tenant), 850), (config_rule(config), 10)):
        quota_settle(reservation=quota_reserve(rules=(rule,), tokens=1), actual_tokens=tokens)
    body = admin_client_.get(reverse("admin:usage_tenant", args=[tenant.pk])).content.decode()
    warnings = re.findall(r'class="warning usage-quota-warning">([^<]*)<', body)
    assert warnings == ["Tenant quota: 85.0 % used (850 of 1,000 tokens, monthly window)."]
    assert "gpt-4o@OpenAI (chat)" in body  # the model's quota row, at 10 %: no warning


def test_it_shows_the_budget_and_the_keys_quotas_with_their_warnings(admin_client_, tenant, owner):
    tenant.budget = Decimal("10")
    tenant.save()
    key, _ = api_token_create(user=owner, tenant=tenant, name="rag", token_quota=200)
    spend = ((tenant_budget_rule(tenant), 1, to_units("2.5")),)
    spend += tuple((rule, 190, 0) for rule in key_rules(key_limits_of(key), tenant.pk))
    for rule, tokens, units in spend:
        reservation = quota_reserve(rules=(rule,), tokens=1, cost_units=1)
        quota_settle(reservation=reservation, actual_tokens=tokens, actual_cost_units=units)
    body = admin_client_.get(reverse("admin:usage_tenant", args=[tenant.pk])).content.decode()
    warnings = re.findall(r'class="warning usage-quota-warning">([^<]*)<', body)
    assert warnings == ["Key rag: 95.0 % of its quota used (190 of 200 tokens, monthly window)."]
    budget = re.search(r'<tr class="usage-budget">(.*?)</tr>', body, re.S).group(1)
    assert re.findall(r"<td>([^<]*)</td>", budget)[:3] == ["10.00", "2.5000", "7.5000"]
    assert f"Key rag ({key.prefix}…)" in unescape(body)


def test_it_takes_a_period_and_reports_a_bad_one(admin_client_, tenant, usage, today):
    url = reverse("admin:usage_tenant", args=[tenant.pk])
    day = today.date().isoformat()
    data = chart_data(admin_client_.get(url, {"from": day, "to": day}).content.decode())
    assert data["days"] == [day]
    assert [m["label"] for m in data["models"]] == ["gpt-4o@OpenAI"]
    response = admin_client_.get(url, {"from": "soon"})
    assert response.status_code == 200
    assert "is neither a date" in response.content.decode()


def test_it_opens_a_tenant_page_from_the_dashboard_search(admin_client_, tenant, owner):
    response = admin_client_.get(reverse("admin:usage_dashboard"), {"tenant": owner.email})
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:usage_tenant", args=[tenant.pk])
    missing = admin_client_.get(reverse("admin:usage_dashboard"), {"tenant": "nobody@x.test"})
    assert missing.status_code == 200
    assert "No tenant matches" in missing.content.decode()


def test_it_answers_404_for_an_unknown_tenant(admin_client_):
    assert admin_client_.get(reverse("admin:usage_tenant", args=[uuid.uuid4()])).status_code == 404


@pytest.mark.parametrize("name", ["usage_dashboard", "usage_tenant"])
def test_it_refuses_the_pages_to_non_staff(client, tenant, outsider, name):
    url = reverse(f"admin:{name}", args=[tenant.pk] if name == "usage_tenant" else [])
    anonymous = client.get(url)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    client.force_login(outsider)
    logged_in = client.get(url)
    assert logged_in.status_code == 302 and "/admin/login/" in logged_in["Location"]


@pytest.mark.parametrize("name", ["usage_dashboard", "usage_tenant"])
def test_it_refuses_the_pages_to_staff_without_the_view_permission(client, tenant, name):
    staff = get_user_model().objects.create_user(username="staff", password="pw", is_staff=True)
    client.force_login(staff)
    url = reverse(f"admin:{name}", args=[tenant.pk] if name == "usage_tenant" else [])
    assert client.get(url).status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_usagedaily"))
    assert client.get(url).status_code == 200


def test_it_links_the_dashboard_from_the_index_and_the_changelist(admin_client_):
    dashboard = reverse("admin:usage_dashboard")
    assert dashboard in admin_client_.get(reverse("admin:index")).content.decode()
    changelist = admin_client_.get(reverse("admin:usage_usagedaily_changelist"))
    assert dashboard in changelist.content.decode()


def test_it_renders_the_tenant_page_in_a_fixed_number_of_queries(
    admin_client_, tenant, today, django_assert_max_num_queries
):
    apply_records(
        [use(tenant, today - timedelta(days=d), llm=f"m{m}") for d in range(20) for m in range(10)]
    )
    with django_assert_max_num_queries(10):
        response = admin_client_.get(reverse("admin:usage_tenant", args=[tenant.pk]))
    assert len(chart_data(response.content.decode())["models"]) == 10


def test_it_keeps_the_ledger_read_only_and_searchable(admin_client_, tenant, usage):
    event = UsageEvent.objects.filter(tenant=tenant).first()
    changelist = reverse("admin:usage_usageevent_changelist")
    for term in (str(event.request_id), "gpt-4o-mini", tenant.name):
        response = admin_client_.get(changelist, {"q": term})
        assert response.status_code == 200
    by_id = admin_client_.get(changelist, {"q": str(event.request_id)}).content.decode()
    others = UsageEvent.objects.exclude(pk=event.pk).values_list("request_id", flat=True)
    assert str(event.request_id) in by_id
    assert not any(str(other) in by_id for other in others)
    filtered = admin_client_.get(changelist, {"outcome__exact": "ok", "model_type__exact": "chat"})
    assert filtered.status_code == 200
    change = reverse("admin:usage_usageevent_change", args=[event.pk])
    assert admin_client_.get(change).status_code == 200
    admin_client_.post(change, {"total_tokens": "1"})
    event.refresh_from_db()
    assert event.total_tokens != 1
    for name in ("usageevent", "usagehourly", "usagedaily", "quotacounter"):
        assert admin_client_.get(reverse(f"admin:usage_{name}_add")).status_code == 403
    assert Decimal(event.cost) > 0
