"""RAGFlow's own tests of its LLM and tenant-model routes, run against our RAGFlow-compatible
routes with RAGFlow's client conventions (bare token, JSON bodies, only the body checked).

Ported from RAGFlow's test/testcases/test_web_api/test_llm_app/test_llm_list.py,
test_llm_list_unit.py, test_user_app/test_user_app_unit.py and the `set_tenant_info` session
fixture, in our words. RAGFlow's unit tests stub its services; here every case runs through
the real services, the database, the Celery worker and the fake provider. Where we answer
differently on purpose, the test says so (README, "RAGFlow's web app and SDK").
"""

import json

import pytest

from providers.models import LLM, LLMFactory
from tenants.models import TenantLLM
from tests.fakeprovider import baidu as fake_baidu
from tests.fakeprovider import bedrock as fake_bedrock
from tests.fakeprovider import fishaudio as fake_fish
from tests.fakeprovider import hunyuan as fake_hunyuan
from tests.ragflow_client import RAGFlowClient, body, token_for

UNAUTHORIZED = {"code": 401, "message": "<Unauthorized '401: Unauthorized'>", "data": None}
INVALID_API_TOKEN = "invalid_key_123"  # RAGFlow's tests' own bad token


@pytest.fixture
def app(owner, catalog):
    return RAGFlowClient(token_for(owner))


@pytest.fixture
def live_app(owner, tasks, catalog):
    """The app against a real worker: key validations run and call the fake provider."""
    return RAGFlowClient(token_for(owner))


def stored_credential(tenant, factory, name):
    return json.loads(
        TenantLLM.objects.get(tenant=tenant, factory__name=factory, llm_name=name).api_key
    )


# --- test_llm_list.py -----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("route", ["llm/factories", "llm/list"])
@pytest.mark.parametrize("token", [None, INVALID_API_TOKEN], ids=["no token", "invalid token"])
def test_it_refuses_callers_without_a_valid_token(route, token):
    assert RAGFlowClient(token).get(route, CONTENT_TYPE="application/json").json() == UNAUTHORIZED


def test_factories_is_a_list_and_list_a_dict(app):
    factories = body(app.get("llm/factories", CONTENT_TYPE="application/json"))
    assert factories["code"] == 0 and isinstance(factories["data"], list)
    listed = body(app.get("llm/list", CONTENT_TYPE="application/json"))
    assert listed["code"] == 0 and isinstance(listed["data"], dict)


# --- test_llm_list_unit.py: /llm/list -------------------------------------------------------------


def test_list_groups_by_factory_marks_availability_and_adds_the_tenants_own_models(app, tenant):
    def config(factory, name, model_type, key=""):
        return TenantLLM.objects.create(
            tenant=tenant,
            factory=LLMFactory.objects.get(name=factory),
            llm_name=name,
            model_type=model_type,
            api_key=key,
        )

    # RAGFlow's FastEmbed (self-deployed, no key) and CustomFactory (a tenant-only model).
    fast = config("Ollama", "fast-emb", "embedding")
    own = config("OpenAI-API-Compatible", "tenant-only", "chat", "sk-own-000000000001")
    gpt55 = config("OpenAI", "gpt-5.5", "chat", "sk-openai-00000000001")
    config("OpenAI", "gpt-5.4", "chat", "sk-openai-00000000001")
    data = body(app.get("llm/list"))["data"]
    assert {"Ollama", "OpenAI-API-Compatible", "OpenAI"} <= set(data)
    assert data["Ollama"][0] | {"id": fast.pk, "available": True} == data["Ollama"][0]
    assert data["OpenAI-API-Compatible"][0]["llm_name"] == "tenant-only"
    assert data["OpenAI-API-Compatible"][0]["available"] is True
    assert data["OpenAI-API-Compatible"][0]["id"] == own.pk
    openai = {m["llm_name"]: m for m in data["OpenAI"]}
    assert {"gpt-5.5", "gpt-5.4"} <= set(openai)
    assert openai["gpt-5.5"]["available"] is True and openai["gpt-5.5"]["id"] == gpt55.pk
    # RAGFlow leaves out the catalog of factories the tenant has no key for; we list it,
    # unavailable, with no id.
    assert all(m["available"] is False and m["id"] is None for m in data["Anthropic"])


def test_list_filters_by_model_type(app, tenant):
    TenantLLM.objects.create(
        tenant=tenant,
        factory=LLMFactory.objects.get(name="Ollama"),
        llm_name="fast-emb",
        model_type="embedding",
    )
    TenantLLM.objects.create(
        tenant=tenant,
        factory=LLMFactory.objects.get(name="OpenAI-API-Compatible"),
        llm_name="tenant-only",
        model_type="chat",
        api_key="sk-own-000000000001",
    )
    data = body(app.get("llm/list", {"model_type": "chat"}))["data"]
    assert data["OpenAI-API-Compatible"][0]["model_type"] == "chat"
    assert "Ollama" not in data
    assert all("chat" in m["model_types"] for models in data.values() for m in models)


def test_list_failing_is_code_100(app, monkeypatch):
    def boom(**kwargs):
        raise RuntimeError("query boom")

    monkeypatch.setattr("tenants.api.tenant_catalog", boom)
    answer = body(app.get("llm/list"))
    # RAGFlow puts the exception's repr in the message; we give a log reference instead.
    assert answer["code"] == 100 and answer["message"] and "boom" not in answer["message"]


# --- test_llm_list_unit.py: /llm/factories --------------------------------------------------------


def test_factories_lists_the_model_types_of_valid_catalog_models(app):
    custom = LLMFactory.objects.create(name="CustomFactory", tags="", rank=5)
    for name, model_type, status in [
        ("m1", "chat", "1"),
        ("m2", "embedding", "1"),
        ("m3", "rerank", "0"),
    ]:
        LLM.objects.create(
            factory=custom,
            llm_name=name,
            model_type=model_type,
            model_types=[model_type],
            status=status,
        )
    data = body(app.get("llm/factories"))["data"]
    assert {"OpenAI", "CustomFactory"} <= {f["name"] for f in data}
    item = next(f for f in data if f["name"] == "CustomFactory")
    assert set(item["model_types"]) == {"chat", "embedding"}
    assert isinstance(item["tags"], str)


def test_factories_failing_is_code_100(app, monkeypatch):
    def boom():
        raise RuntimeError("factories boom")

    monkeypatch.setattr("tenants.api.factories_with_types", boom)
    answer = body(app.get("llm/factories"))
    assert answer["code"] == 100 and "boom" not in answer["message"]


# --- test_llm_list_unit.py: set_api_key probes ----------------------------------------------------


def test_set_api_key_reports_every_failed_probe_then_saves_a_working_key(
    live_app, tenant, fake_provider
):
    # RAGFlow's FactoryA has an embedding, a chat and a rerank model, all failing; Cohere's
    # catalog has the three types, and the fake refuses the key for each of them.
    base = fake_provider.url("/cohere")
    failing = {"llm_factory": "Cohere", "api_key": "co-invalid-000000000001", "base_url": base}
    verified = body(live_app.post("llm/set_api_key", {**failing, "verify": True}))
    assert verified["code"] == 0 and verified["data"]["success"] is False
    message = verified["data"]["message"]
    assert "Fail to access embedding model(embed-v4.0) using this api key." in message
    assert "Fail to access model(Cohere/command-a-03-2025) using this api key." in message
    assert "Fail to access model(Cohere/rerank-v3.5) using this api key." in message
    assert message.startswith("\n") and "co-invalid" not in message
    refused = body(live_app.post("llm/set_api_key", {**failing, "verify": False}))
    assert refused["code"] == 102
    assert "Fail to access embedding model(embed-v4.0)" in refused["message"]
    assert not TenantLLM.objects.filter(tenant=tenant, factory__name="Cohere").exists()

    # A key that works is saved for every catalog model, with the catalog's max_tokens; the
    # model name and type in the request rename nothing (RAGFlow's bug, not ported).
    answer = body(
        live_app.post(
            "llm/set_api_key",
            {
                "llm_factory": "Cohere",
                "api_key": "co-good-0000000000001",
                "base_url": base,
                "model_type": "chat",
                "llm_name": "manual-model",
            },
        )
    )
    assert answer == {"code": 0, "message": "success", "data": True}
    rows = TenantLLM.objects.filter(tenant=tenant, factory__name="Cohere")
    catalog = dict(LLM.objects.filter(factory__name="Cohere").values_list("llm_name", "max_tokens"))
    assert {r.llm_name: r.max_tokens for r in rows} == catalog
    assert not rows.filter(llm_name="manual-model").exists()


def test_set_api_key_refuses_unknown_factories_and_empty_catalogs(app):
    unknown = body(app.post("llm/set_api_key", {"llm_factory": "NoSuchCo", "api_key": "k" * 20}))
    assert unknown == {"code": 102, "message": "LLM factory NoSuchCo is not allowed", "data": None}
    empty = body(app.post("llm/set_api_key", {"llm_factory": "Ollama", "api_key": "k" * 20}))
    assert empty["code"] == 102
    assert empty["message"] == "No models configured for Ollama (source: Ollama)."


# --- test_llm_list_unit.py: add_llm's factory-specific credentials --------------------------------

BAIDU = {"yiyan_ak": fake_baidu.API_KEY, "yiyan_sk": fake_baidu.SECRET_KEY}
# (factory, fake provider root, fields sent besides the model): each is stored as sent.
KEY_ASSEMBLY = [
    ("VolcEngine", "/v1", {"ark_api_key": "ak-volc-000000001", "endpoint_id": "eid"}),
    (
        "Bedrock",
        "/bedrock",
        # RAGFlow's test uses auth_mode "iam"; we offer access_key_secret and iam_role.
        {
            "auth_mode": "access_key_secret",
            "bedrock_ak": fake_bedrock.ACCESS_KEY,
            "bedrock_sk": fake_bedrock.SECRET_KEY,
            "bedrock_region": "us-east-1",
        },
    ),
    ("BaiduYiyan", "/baidu", BAIDU),
    (
        "Fish Audio",
        "/fishaudio",
        {"fish_audio_ak": fake_fish.API_KEY, "fish_audio_refid": fake_fish.VOICE},
    ),
    ("Azure-OpenAI", "", {"api_key": "real-key-0000000001", "api_version": "2024-01-01"}),
    ("OpenRouter", "/v1", {"api_key": "or-key-00000000001", "provider_order": "a,b"}),
]


@pytest.mark.parametrize(
    ("factory", "root", "extra", "stored"),
    [
        *[(factory, root, fields, fields) for factory, root, fields in KEY_ASSEMBLY],
        # What RAGFlow's app sends for BaiduYiyan (RAGFlow itself then stores empty keys).
        ("BaiduYiyan", "/baidu", {"api_key": BAIDU}, BAIDU),
    ],
)
def test_add_llm_assembles_each_factorys_credential(
    live_app, tenant, fake_provider, factory, root, extra, stored
):
    model_type = "tts" if factory == "Fish Audio" else "chat"
    base = fake_provider.url(root) if root else fake_provider.base_url + "/"
    answer = body(
        live_app.post(
            "llm/add_llm",
            {
                "llm_factory": factory,
                "llm_name": "model",
                "model_type": model_type,
                "api_base": base,
                **extra,
            },
        )
    )
    assert answer == {"code": 0, "message": "success", "data": True}
    assert stored_credential(tenant, factory, "model") == stored


@pytest.mark.parametrize(
    ("factory", "root"),
    [("LocalAI", ""), ("HuggingFace", ""), ("OpenAI-API-Compatible", "/v1"), ("VLLM", "")],
)
def test_add_llm_stores_self_hosted_names_without_ragflows_suffix(
    live_app, tenant, fake_provider, factory, root
):
    # RAGFlow stores "model___VLLM" and its app cuts the suffix off for display; we store
    # and show "model", and take either spelling as input.
    answer = body(
        live_app.post(
            "llm/add_llm",
            {
                "llm_factory": factory,
                "llm_name": "model",
                "model_type": "chat",
                "api_base": fake_provider.url(root) if root else fake_provider.base_url,
                "api_key": "k-00000000000000001",
            },
        )
    )
    assert answer["code"] == 0, answer
    names = body(live_app.get("llm/my_llms"))["data"][factory]["llm"]
    assert [n["name"] for n in names] == ["model"]
    suffix = {"OpenAI-API-Compatible": "OpenAI-API"}.get(factory, factory)
    disabled = {"llm_factory": factory, "llm_name": f"model___{suffix}", "status": 0}
    assert body(live_app.post("llm/enable_llm", disabled))["code"] == 0
    assert TenantLLM.objects.get(tenant=tenant, llm_name="model").status == "0"


def test_tencent_hunyuan_takes_its_keys_in_every_spelling_ragflows_app_sent(
    live_app, tenant, fake_provider
):
    base = fake_provider.url("/hunyuan")
    keys = {"hunyuan_sid": fake_hunyuan.SECRET_ID, "hunyuan_sk": fake_hunyuan.SECRET_KEY}
    # Older app: add_llm with the two fields and no model, saved as set_api_key saves.
    answer = body(
        live_app.post("llm/add_llm", {"llm_factory": "Tencent Hunyuan", "base_url": base, **keys})
    )
    assert answer == {"code": 0, "message": "success", "data": True}
    catalog = set(
        LLM.objects.filter(factory__name="Tencent Hunyuan").values_list("llm_name", flat=True)
    )
    rows = TenantLLM.objects.filter(tenant=tenant, factory__name="Tencent Hunyuan")
    assert set(rows.values_list("llm_name", flat=True)) == catalog
    rows.delete()
    # set_api_key with the JSON text of both in api_key.
    answer = body(
        live_app.post(
            "llm/set_api_key",
            {"llm_factory": "Tencent Hunyuan", "api_key": json.dumps(keys), "base_url": base},
        )
    )
    assert answer["code"] == 0, answer
    assert stored_credential(tenant, "Tencent Hunyuan", sorted(catalog)[0]) == keys
    # A single key (Hunyuan's OpenAI-compatible API, newer apps) is stored as it is and
    # validated on that endpoint.
    single = body(
        live_app.post(
            "llm/set_api_key",
            {
                "llm_factory": "Tencent Hunyuan",
                "api_key": fake_hunyuan.API_KEY,
                "base_url": fake_provider.url("/hunyuan/v1"),
            },
        )
    )
    assert single["code"] == 0, single
    row = TenantLLM.objects.get(
        tenant=tenant, factory__name="Tencent Hunyuan", llm_name=sorted(catalog)[0]
    )
    assert row.api_key == fake_hunyuan.API_KEY


@pytest.mark.parametrize(
    "factory", ["Google Cloud", "XunFei Spark", "Tencent Cloud", "MinerU", "PaddleOCR"]
)
def test_add_llm_refuses_factories_outside_our_catalog(app, factory):
    answer = body(
        app.post("llm/add_llm", {"llm_factory": factory, "llm_name": "model", "model_type": "chat"})
    )
    assert answer["code"] == 102 and answer["message"] == f"LLM factory {factory} is not allowed"


# --- test_llm_list_unit.py: add_llm's probe by model type -----------------------------------------


@pytest.mark.parametrize(
    ("model_type", "root", "label"),
    [
        ("embedding", "/v1", "Fail to access embedding model(m)."),
        ("chat", "/v1", "Fail to access model(OpenAI-API-Compatible/m)."),
        ("image2text", "/v1", "Fail to access model(OpenAI-API-Compatible/m)."),
        ("tts", "/v1", "Fail to access model(OpenAI-API-Compatible/m)."),
        ("speech2text", "/v1", "Fail to access model(OpenAI-API-Compatible/m)."),
        ("rerank", "/selfhosted", "Fail to access model(OpenAI-API-Compatible/m)."),
    ],
)
def test_add_llm_reports_a_failed_probe_in_ragflows_words(
    live_app, tenant, fake_provider, model_type, root, label
):
    request = {
        "llm_factory": "OpenAI-API-Compatible",
        "llm_name": "m",
        "model_type": model_type,
        "api_base": fake_provider.url(root),
        "api_key": "sk-invalid-000000000001",
    }
    verified = body(live_app.post("llm/add_llm", {**request, "verify": True}))
    assert verified["code"] == 0 and verified["data"]["success"] is False
    assert verified["data"]["message"].startswith(f"\n{label}")
    assert "rejected the credentials" in verified["data"]["message"]
    refused = body(live_app.post("llm/add_llm", request))
    assert refused["code"] == 102 and refused["message"].startswith(f"\n{label}")
    assert not TenantLLM.objects.filter(tenant=tenant, llm_name="m").exists()


def test_add_llm_names_a_model_type_the_factory_does_not_serve(app):
    request = {"llm_factory": "Ollama", "llm_name": "m", "model_type": "rerank"}
    verified = body(app.post("llm/add_llm", {**request, "verify": True}))
    assert verified["data"] == {
        "message": "Ollama does not support this model(Ollama/m)",
        "success": False,
    }
    refused = body(app.post("llm/add_llm", request))
    assert refused["code"] == 102 and "does not support this model(Ollama/m)" in refused["message"]


def test_add_llm_refuses_an_unknown_model_type(app):
    # RAGFlow answers code 100 with the repr of a RuntimeError.
    answer = body(
        app.post("llm/add_llm", {"llm_factory": "Ollama", "llm_name": "m", "model_type": "unknown"})
    )
    assert answer["code"] == 102 and "unknown" in answer["message"]


def test_add_llm_saves_a_model_whose_probe_passes(live_app, tenant, fake_provider):
    answer = body(
        live_app.post(
            "llm/add_llm",
            {
                "llm_factory": "OpenAI-API-Compatible",
                "llm_name": "m",
                "model_type": "chat",
                "api_base": fake_provider.url("/v1"),
                "api_key": "k-00000000000000001",
                "max_tokens": 4096,
                "is_tools": True,
            },
        )
    )
    assert answer == {"code": 0, "message": "success", "data": True}
    row = TenantLLM.objects.get(tenant=tenant, factory__name="OpenAI-API-Compatible", llm_name="m")
    assert (row.model_type, row.max_tokens, row.is_tools, row.status) == ("chat", 4096, True, "1")
    # Editing (the app sends no key, and older apps no is_tools) keeps both.
    edit = {
        "llm_factory": "OpenAI-API-Compatible",
        "llm_name": "m",
        "model_type": "chat",
        "api_base": fake_provider.url("/v1"),
        "max_tokens": 2048,
    }
    assert body(live_app.post("llm/add_llm", edit))["code"] == 0
    row.refresh_from_db()
    assert (row.max_tokens, row.is_tools, row.api_key) == (2048, True, "k-00000000000000001")


# --- test_llm_list_unit.py: my_llms ---------------------------------------------------------------


def test_my_llms_with_details_gives_tags_usage_and_limits(app, tenant):
    factory = LLMFactory.objects.get(name="OpenAI-API-Compatible")
    TenantLLM.objects.create(
        tenant=tenant,
        factory=factory,
        llm_name="chat-model",
        model_type="chat",
        used_tokens=42,
        api_base="",
        max_tokens=4096,
    )
    data = body(app.get("llm/my_llms", {"include_details": "true"}))["data"]
    assert data["OpenAI-API-Compatible"]["tags"] == factory.tags
    item = data["OpenAI-API-Compatible"]["llm"][0]
    assert (item["used_token"], item["max_tokens"], item["api_base"]) == (42, 4096, "")


def test_my_llms_failing_is_code_100(app, monkeypatch):
    def boom(**kwargs):
        raise RuntimeError("my llms boom")

    monkeypatch.setattr("tenants.api.tenant_llm_by_factory", boom)
    answer = body(app.get("llm/my_llms"))
    assert answer["code"] == 100 and "boom" not in answer["message"]


# --- test_user_app_unit.py ------------------------------------------------------------------------


def test_tenant_info_failing_is_code_100(app, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("tenant info boom")

    monkeypatch.setattr(
        "tenants.tenant_api.TenantInfoView.OutputSerializer.to_representation", boom
    )
    answer = body(app.get("user/tenant_info"))
    assert answer["code"] == 100 and "boom" not in answer["message"]


def test_set_tenant_info_failing_is_code_100(app, tenant, monkeypatch):
    def boom(**kwargs):
        raise RuntimeError("tenant update boom")

    monkeypatch.setattr("tenants.tenant_api.tenant_settings_set", boom)
    request = {
        "tenant_id": str(tenant.pk),
        "llm_id": "",
        "embd_id": "",
        "asr_id": "",
        "img2txt_id": "",
    }
    answer = body(app.post("user/set_tenant_info", request))
    assert answer["code"] == 100 and "boom" not in answer["message"]


# --- conftest.py: the set_tenant_info session fixture ---------------------------------------------


@pytest.mark.parametrize("img2txt_id", ["", "glm-4.5v@ZHIPU-AI"], ids=["web API", "SDK"])
def test_the_session_fixture_flow(live_app, tenant, fake_provider, img2txt_id):
    listed = body(live_app.get("llm/my_llms", CONTENT_TYPE="application/json"))
    assert listed["code"] == 0
    if "ZHIPU-AI" not in listed["data"]:
        # The fixture sends no base URL (it calls ZHIPU's real API); ours points at the fake.
        request = {
            "llm_factory": "ZHIPU-AI",
            "api_key": "zhipu-key-0000000001",
            "base_url": fake_provider.url("/v1"),
        }
        answer = body(live_app.post("llm/set_api_key", request))
        assert answer["code"] == 0, answer["message"]
    info = body(live_app.get("user/tenant_info"))
    assert info["code"] == 0
    # RAGFlow's values are glm-4-flash@ZHIPU-AI (not in our catalog) and the embedding
    # model of its Builtin factory (which we do not have): ours are from the ZHIPU-AI catalog.
    request = {
        "tenant_id": info["data"]["tenant_id"],
        "llm_id": "glm-4-flash-250414@ZHIPU-AI",
        "embd_id": "embedding-3@ZHIPU-AI",
        "img2txt_id": img2txt_id,
        "asr_id": "",
        "tts_id": None,
    }
    assert body(live_app.post("user/set_tenant_info", request)) == {
        "code": 0,
        "message": "success",
        "data": True,
    }
    data = body(live_app.get("user/tenant_info"))["data"]
    assert (
        data["llm_id"],
        data["embd_id"],
        data["img2txt_id"],
        data["asr_id"],
        data["tts_id"],
    ) == (
        "glm-4-flash-250414@ZHIPU-AI",
        "embedding-3@ZHIPU-AI",
        img2txt_id,
        "",
        "",
    )
    # A model the tenant cannot use is refused by name, where RAGFlow stores anything.
    builtin = {**request, "embd_id": "BAAI/bge-small-en-v1.5@Builtin"}
    refused = body(live_app.post("user/set_tenant_info", builtin))
    assert refused["code"] == 102
    assert "BAAI/bge-small-en-v1.5@Builtin" in refused["message"]
