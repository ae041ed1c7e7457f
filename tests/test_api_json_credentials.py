"""Factories whose credentials have several fields: built from request fields, stored as one
JSON object (encrypted), validated by a live call through the fake provider."""

import json

import pytest

from ragllm.errors import InvalidInput, MissingArguments
from tenants.models import TenantLLM
from tenants.services.credential_input import credentials_from_input
from tests.fakeprovider import baidu as fake_baidu
from tests.fakeprovider import bedrock as fake_bedrock
from tests.fakeprovider import fishaudio as fake_fish
from tests.fakeprovider import hunyuan as fake_hunyuan

CASES = [
    (
        "VolcEngine",
        "chat",
        "doubao-pro",
        "/v1",
        {"ark_api_key": "ark-key-000000000001", "endpoint_id": "ep-20240101"},
    ),
    (
        "Tencent Hunyuan",
        "chat",
        "hunyuan-turbos-latest",
        "/hunyuan",
        {"hunyuan_sid": fake_hunyuan.SECRET_ID, "hunyuan_sk": fake_hunyuan.SECRET_KEY},
    ),
    (
        "Bedrock",
        "chat",
        "anthropic.claude-3-haiku-20240307-v1:0",
        "/bedrock",
        {
            "bedrock_ak": fake_bedrock.ACCESS_KEY,
            "bedrock_sk": fake_bedrock.SECRET_KEY,
            "bedrock_region": "us-east-1",
        },
    ),
    ("Azure-OpenAI", "chat", "my-gpt4o", "", {"api_key": "azure-key-0000000001"}),
    (
        "BaiduYiyan",
        "chat",
        "ERNIE-4.0-8K",
        "/baidu",
        {"yiyan_ak": fake_baidu.API_KEY, "yiyan_sk": fake_baidu.SECRET_KEY},
    ),
    (
        "Fish Audio",
        "tts",
        "s1",
        "/fishaudio",
        {"fish_audio_ak": fake_fish.API_KEY, "fish_audio_refid": fake_fish.VOICE},
    ),
    (
        "OpenRouter",
        "chat",
        "openai/gpt-4o",
        "/v1",
        {"api_key": "sk-or-000000000000001", "provider_order": "openai,azure"},
    ),
]


@pytest.mark.parametrize(("factory", "model_type", "model", "root", "fields"), CASES)
def test_json_credentials_are_validated_and_stored_as_json(
    api_for, owner, tenant, tasks, catalog, fake_provider, factory, model_type, model, root, fields
):
    response = api_for(owner).post(
        "/api/v1/llm/add_llm",
        {
            "llm_factory": factory,
            "llm_name": model,
            "model_type": model_type,
            "api_base": fake_provider.url(root) if root else fake_provider.base_url + "/",
            **fields,
        },
    )
    assert response.status_code == 200, response.content
    row = TenantLLM.objects.get(tenant=tenant, factory__name=factory, llm_name=model)
    stored = json.loads(row.api_key)
    for name, value in fields.items():
        assert stored[name] == value
    if factory == "Azure-OpenAI":
        assert stored["api_version"] == "2024-02-01"
    if factory == "Bedrock":
        assert stored["auth_mode"] == "access_key_secret"
    if factory == "VolcEngine":  # the endpoint id is the model the provider sees
        assert fake_provider.last_request.json["model"] == "ep-20240101"
    body = response.content.decode()
    for value in fields.values():
        assert len(value) < 10 or value not in body


@pytest.mark.parametrize(
    ("factory", "fields", "missing"),
    [
        ("Google Cloud", {"google_project_id": "p"}, "google_region,google_service_account_key"),
        ("XunFei Spark", {"spark_app_id": "a", "spark_api_key": "k"}, "spark_api_secret"),
        ("Tencent Cloud", {"tencent_cloud_sid": "s"}, "tencent_cloud_sk"),
    ],
)
def test_credentials_of_factories_outside_our_catalog_are_built_and_checked(
    factory, fields, missing
):
    with pytest.raises(MissingArguments, match=missing):
        credentials_from_input(factory=factory, api_key=None, fields=fields)


def test_a_complete_json_credential_is_returned_sorted():
    built = credentials_from_input(
        factory="Tencent Cloud",
        api_key=None,
        fields={"tencent_cloud_sk": "sk-1", "tencent_cloud_sid": "sid-1", "other": "ignored"},
    )
    assert built == '{"tencent_cloud_sid": "sid-1", "tencent_cloud_sk": "sk-1"}'


def test_an_unsupported_bedrock_auth_mode_is_refused(api_for, owner, catalog):
    response = api_for(owner).post(
        "/api/v1/llm/add_llm",
        {
            "llm_factory": "Bedrock",
            "llm_name": "m",
            "model_type": "chat",
            "auth_mode": "assume_role",
            "bedrock_region": "us-east-1",
        },
    )
    assert response.status_code == 400
    assert "auth_mode must be one of" in response.json()["message"]


@pytest.mark.parametrize(
    "spelling",
    [
        {"api_key": {"yiyan_ak": "ak-1", "yiyan_sk": "sk-1"}},
        {"api_key": '{"yiyan_ak": "ak-1", "yiyan_sk": "sk-1"}'},
        {"api_key": {"yiyan_ak": "ak-0", "yiyan_sk": "sk-1"}, "fields": {"yiyan_ak": "ak-1"}},
    ],
    ids=["object", "json text", "request fields win"],
)
def test_a_credential_object_may_come_inside_api_key(spelling):
    built = credentials_from_input(
        factory="BaiduYiyan", api_key=spelling["api_key"], fields=spelling.get("fields", {})
    )
    assert json.loads(built) == {"yiyan_ak": "ak-1", "yiyan_sk": "sk-1"}


def test_a_single_key_for_a_factory_of_several_fields_is_refused_by_name():
    with pytest.raises(InvalidInput, match="yiyan_ak, yiyan_sk"):
        credentials_from_input(factory="BaiduYiyan", api_key="sk-single", fields={})
    # (Tencent Hunyuan takes a plain key as well: its OpenAI-compatible endpoint's.)
    assert credentials_from_input(factory="Tencent Hunyuan", api_key="sk-1", fields={}) == "sk-1"


def test_an_object_in_api_key_of_a_plain_key_factory_is_kept_as_json():
    built = credentials_from_input(factory="OpenAI", api_key={"api_key": "sk-1"}, fields={})
    assert json.loads(built) == {"api_key": "sk-1"}
