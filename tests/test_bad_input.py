"""Bad input gets a clear 4xx with the envelope, never a 500: in the API, the admin and commands."""

import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from tenants.models import KeyValidation, TenantLLM

ADD_LLM = "/api/v1/llm/add_llm"


@pytest.fixture
def api(api_for, owner, catalog):
    return api_for(owner)


def add_llm(**fields):
    return {
        "llm_factory": "OpenAI-API-Compatible",
        "llm_name": "my-model",
        "model_type": "chat",
        "api_base": "http://127.0.0.1:9/v1",
        "async": True,
        **fields,
    }


def assert_refused(response, status, *words):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == 102
    for word in words:
        assert word in body["message"], body["message"]
    # Nothing was queued or saved.
    assert not KeyValidation.objects.exists()
    assert not TenantLLM.objects.filter(factory__name="OpenAI-API-Compatible").exists()


@pytest.mark.parametrize("max_tokens", [2147483648, 1e30, -1, 0])
def test_add_llm_refuses_max_tokens_out_of_range(api, max_tokens):
    response = api.post(ADD_LLM, add_llm(max_tokens=max_tokens))
    assert_refused(response, 400, "max_tokens")


def test_add_llm_accepts_the_largest_max_tokens(api):
    response = api.post(ADD_LLM, add_llm(max_tokens=2147483647))
    assert response.status_code == 202, response.content
    assert KeyValidation.objects.get().max_tokens == 2147483647


def test_add_llm_refuses_a_name_longer_than_the_column(api):
    response = api.post(ADD_LLM, add_llm(llm_name="m" * 129))
    assert_refused(response, 400, "llm_name", "128")


@pytest.mark.parametrize("name", ["___OpenAI-API", "  ___VLLM", "___"])
def test_add_llm_refuses_a_name_that_is_only_ragflows_suffix(api, name):
    response = api.post(ADD_LLM, add_llm(llm_name=name))
    assert_refused(response, 400, "llm_name", "no model name")


def test_add_llm_still_strips_ragflows_suffix_from_a_real_name(api):
    response = api.post(ADD_LLM, add_llm(llm_name="qwen2___OpenAI-API"))
    assert response.status_code == 202, response.content
    assert KeyValidation.objects.get().llm_name == "qwen2"


@pytest.mark.parametrize("field", ["api_base", "base_url"])
def test_add_llm_refuses_a_base_url_longer_than_the_column(api, field):
    long_url = "http://127.0.0.1:9/" + "a" * 500
    fields = {"api_base": "", field: long_url}
    response = api.post(ADD_LLM, add_llm(**fields))
    assert_refused(response, 400, field, "512")


def test_set_api_key_refuses_a_base_url_longer_than_the_column(api):
    long_url = "https://a.example/" + "a" * 500
    body = {"llm_factory": "OpenAI", "api_key": "sk-x", "base_url": long_url}
    response = api.post("/api/v1/llm/set_api_key", body)
    assert_refused(response, 400, "base_url", "512")


def test_a_factory_name_longer_than_the_column_is_refused(api):
    response = api.post("/api/v1/llm/delete_factory", {"llm_factory": "F" * 129})
    assert_refused(response, 400, "llm_factory")


@pytest.mark.parametrize("route", ["delete_llm", "enable_llm"])
def test_model_routes_refuse_a_name_that_is_only_ragflows_suffix(api, route):
    body = {"llm_factory": "OpenAI-API-Compatible", "llm_name": "___OpenAI-API", "status": "1"}
    response = api.post(f"/api/v1/llm/{route}", body)
    assert_refused(response, 400, "no model name")


def test_default_models_refuse_a_value_longer_than_the_column(api):
    response = api.put("/api/v1/tenant/default_models", {"llm_id": "x" * 257})
    assert_refused(response, 400, "llm_id")


def test_a_body_over_the_upload_limit_is_413(api, settings):
    body = json.dumps(add_llm(api_key="k" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE))
    response = api.client.post(ADD_LLM, body, content_type="application/json")
    assert_refused(response, 413, f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes")


def test_json_nested_100000_deep_is_a_parse_error(api):
    body = "[" * 100_000 + "]" * 100_000
    response = api.client.post(ADD_LLM, body, content_type="application/json")
    assert_refused(response, 400, "nested deeper than 32 levels")


def test_json_nested_past_the_limit_inside_a_field_is_refused(api):
    deep: list = []
    for _ in range(40):
        deep = [deep]
    response = api.post(ADD_LLM, add_llm(ark_api_key=deep))
    assert_refused(response, 400, "nested deeper")


@pytest.mark.parametrize(
    "query",
    [
        {"to": "0001-01-01"},
        {"to": "9999-12-31"},
        {"from": "0001-01-01"},
        {"from": "1999-12-31", "to": "2000-01-05"},
        {"from": "9999-12-31T23:00:00-05:00"},
        {"to": "0001-01-01T00:00:00+05:00"},
    ],
)
def test_usage_refuses_dates_out_of_range(api, query):
    response = api.get("/api/v1/usage", query)
    assert response.status_code == 400, response.content
    assert "out of range" in response.json()["message"]
    assert "2000-01-01 to 2999-12-31" in response.json()["message"]


def test_usage_accepts_the_range_bounds(api):
    response = api.get("/api/v1/usage", {"from": "2000-01-01", "to": "2999-12-31"})
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert (data["from"], data["to"]) == ("2000-01-01T00:00:00Z", "3000-01-01T00:00:00Z")


# --- The same inputs through the admin and the commands ----------------------------------------


@pytest.fixture
def admin_client_(client, superuser):
    client.force_login(superuser)
    return client


@pytest.mark.parametrize("to", ["0001-01-01", "9999-12-31"])
def test_the_usage_dashboards_explain_dates_out_of_range(admin_client_, tenant, to):
    for url in (
        reverse("admin:usage_dashboard"),
        reverse("admin:usage_tenant", args=[tenant.pk]),
    ):
        response = admin_client_.get(url, {"to": to}, follow=True)
        assert response.status_code == 200, url
        assert "out of range" in response.content.decode(), url


def test_the_set_api_key_command_refuses_a_long_base_url(tenant, catalog):
    with pytest.raises(CommandError, match="longer than 512"):
        call_command(
            "set_api_key",
            "--tenant",
            str(tenant.pk),
            "--factory",
            "OpenAI",
            "--key",
            "sk-x",
            "--base-url",
            "https://a.example/" + "a" * 600,
        )
    assert not KeyValidation.objects.exists()


@pytest.mark.parametrize("to", ["0001-01-01", "9999-12-31"])
def test_usage_report_refuses_dates_out_of_range(db, to):
    with pytest.raises(CommandError, match="out of range"):
        call_command("usage_report", "--to", to)


@pytest.mark.parametrize(
    "bad",
    [
        {"max_tokens": "2147483648"},
        {"max_tokens": "1e30"},
        {"llm_name": "m" * 129},
        {"api_base": "http://127.0.0.1:9/" + "a" * 500},
    ],
)
def test_the_model_config_form_refuses_the_same_values(admin_client_, tenant, catalog, bad):
    factory = TenantLLM._meta.get_field("factory").related_model.objects.get(
        name="OpenAI-API-Compatible"
    )
    form = {
        "tenant": str(tenant.pk),
        "factory": factory.pk,
        "llm_name": "my-model",
        "model_type": "chat",
        "status": "1",
        "api_key": "",
        "api_base": "http://127.0.0.1:9/v1",
        "max_tokens": "8192",
        "token_quota": "",
        "quota_window": "monthly",
        **bad,
    }
    response = admin_client_.post(reverse("admin:tenants_tenantllm_add"), form)
    assert response.status_code == 200  # the form again, with its errors
    assert response.context["adminform"].form.errors
    assert not TenantLLM.objects.filter(factory=factory).exists()


def test_the_tenant_usage_page_charts_at_most_two_years(admin_client_, tenant):
    url = reverse("admin:usage_tenant", args=[tenant.pk])
    response = admin_client_.get(url, {"from": "2000-01-01", "to": "2999-12-31"})
    assert response.status_code == 200
    assert "The chart shows at most 731 days" in response.content.decode()
    assert len(response.context["chart"]["days"]) == 30


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--email", "a" * 140 + "@example.com"], "--email is longer than 150"),
        (["--email", "b@example.com", "--name", "n" * 129], "--name is longer than 128"),
    ],
)
def test_create_tenant_refuses_values_longer_than_their_columns(db, args, message):
    from django.contrib.auth import get_user_model

    with pytest.raises(CommandError, match=message):
        call_command("create_tenant", *args)
    assert not get_user_model().objects.exists()
