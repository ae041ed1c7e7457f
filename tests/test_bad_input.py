"""Bad input gets a clear 4xx with the envelope, never a 500: in the API, the admin and commands."""

import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from providers.models import LLMFactory
from tenants.models import KeyValidation, TenantLLM
from tests.ragflow_client import RAGFlowClient, body, token_for

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


@pytest.mark.parametrize("value", ["8.939984044024733e+307", "yes please", "null"])
def test_my_llms_refuses_an_include_details_that_is_not_on_or_off(api, value):
    response = api.get("/api/v1/llm/my_llms", {"include_details": value})
    assert response.status_code == 400, response.content
    assert "include_details must be true or false" in response.json()["message"]


@pytest.mark.parametrize(
    ("value", "details"), [("", False), ("0", False), ("FALSE", False), ("1", True), ("True", True)]
)
def test_my_llms_reads_include_details_in_any_spelling_it_documents(api, tenant, value, details):
    TenantLLM.objects.create(
        tenant=tenant,
        factory=LLMFactory.objects.get(name="OpenAI"),
        llm_name="gpt-4o",
        model_type="chat",
    )
    response = api.get("/api/v1/llm/my_llms", {"include_details": value})
    assert response.status_code == 200, response.content
    (config,) = response.json()["data"]["OpenAI"]["llm"]
    assert ("max_tokens" in config) is details


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
    ("bad", "field", "words"),
    [
        ({"max_tokens": "2147483648"}, "max_tokens", "2147483647"),
        ({"max_tokens": "1e30"}, "max_tokens", "whole number"),
        ({"llm_name": "m" * 129}, "llm_name", "128"),
        ({"api_base": "http://127.0.0.1:9/" + "a" * 500}, "api_base", "512"),
        # The add form goes through add_llm's service, which refuses it as the API does.
        ({"llm_name": "___OpenAI-API"}, "llm_name", "suffix alone is not one"),
    ],
)
def test_the_model_config_form_refuses_the_same_values(
    admin_client_, tenant, catalog, bad, field, words
):
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
    errors = response.context["adminform"].form.errors
    assert words in " ".join(errors.get(field, [])), errors
    assert not TenantLLM.objects.filter(factory=factory).exists()
    assert not KeyValidation.objects.exists()


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


# --- The same values through RAGFlow's routes (HTTP 200, the code in the body) -----------------


@pytest.fixture
def app(owner, catalog):
    """RAGFlow's web app, logged in as the owner."""
    return RAGFlowClient(token_for(owner))


@pytest.mark.parametrize(
    ("route", "fields", "words"),
    [
        ("llm/add_llm", {"llm_name": "___OpenAI-API"}, ["llm_name", "no model name"]),
        ("llm/add_llm", {"llm_name": "m" * 129}, ["llm_name", "128"]),
        ("llm/add_llm", {"max_tokens": 2147483648}, ["max_tokens"]),
        ("llm/add_llm", {"api_base": "http://127.0.0.1:9/" + "a" * 500}, ["api_base", "512"]),
        ("llm/delete_llm", {"llm_name": "___OpenAI-API"}, ["no model name"]),
        ("llm/enable_llm", {"llm_name": "___OpenAI-API"}, ["no model name"]),
    ],
)
def test_the_ragflow_routes_refuse_the_same_values(app, route, fields, words):
    answer = body(app.post(route, add_llm(**fields)))
    assert answer["code"] == 102, answer
    for word in words:
        assert word in answer["message"], answer["message"]
    assert not KeyValidation.objects.exists()
    assert not TenantLLM.objects.filter(factory__name="OpenAI-API-Compatible").exists()


def test_set_tenant_info_refuses_values_longer_than_their_columns(api, app, tenant):
    before = (tenant.name, tenant.llm_id)
    for field, longest in [("llm_id", 256), ("name", 128)]:
        given = {"tenant_id": str(tenant.pk), "llm_id": "", "embd_id": "", "img2txt_id": ""}
        given |= {"asr_id": "", field: "x" * (longest + 1)}
        response = api.post("/api/v1/tenant/set_tenant_info", given)
        assert_refused(response, 400, field, str(longest))
        answer = body(app.post("user/set_tenant_info", given))
        assert (answer["code"], answer["data"]) == (102, None)
        assert field in answer["message"] and str(longest) in answer["message"]
    tenant.refresh_from_db()
    assert (tenant.name, tenant.llm_id) == before


def test_the_ragflow_routes_answer_an_oversized_body_in_the_envelope(app, settings):
    data = json.dumps(add_llm(api_key="k" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE))
    response = app.post_raw("llm/add_llm", data, "application/json")
    assert response.status_code == 200  # RAGFlow's app reads the code, never the status
    answer = response.json()
    assert (answer["code"], answer["data"]) == (102, None)
    assert f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes" in answer["message"]
    assert not KeyValidation.objects.exists()
