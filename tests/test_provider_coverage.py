"""Every (factory, model type) pair of our catalog has an adapter, is in the README's table,
and makes a real call through the fake provider server."""

import json
from pathlib import Path

import pytest
from django.conf import settings

from providers.models import LLM
from providers.registry import get_adapter_class
from providers.selectors import catalog_pairs, coverage_table
from tenants.validation import probe_model
from tests.fakeprovider import baidu as fake_baidu
from tests.fakeprovider import bedrock as fake_bedrock
from tests.fakeprovider import fishaudio as fake_fish
from tests.fakeprovider import hunyuan as fake_hunyuan
from tests.fakeprovider import mistral_ocr as fake_mistral_ocr

KEY = "sk-coverage-key-0123456789"
HOSTED_OPENAI_FAMILY = "/v1"

# Where each adapter module's fake lives, and the credentials it expects.
JINA_STYLE_ROOTS = {"SILICONFLOW": "/siliconflow/v1", "Xinference": "/xinference/v1"}
MODULE_ROOTS = {
    "anthropic": "/anthropic",
    "gemini": "/gemini",
    "cohere": "/cohere",
    "voyage": "/voyage/v1",
    "ollama": "/ollama",
    "tei": "/tei",
    "bedrock": "/bedrock",
    "baidu": "/baidu",
    "hunyuan": "/hunyuan",
    "fishaudio": "/fishaudio",
    "mistral_ocr": "/mistral/v1",
    "azure": "",
}
CREDENTIALS = {
    "bedrock": json.dumps(
        {
            "bedrock_ak": fake_bedrock.ACCESS_KEY,
            "bedrock_sk": fake_bedrock.SECRET_KEY,
            "bedrock_region": "us-east-1",
        }
    ),
    "baidu": json.dumps({"yiyan_ak": fake_baidu.API_KEY, "yiyan_sk": fake_baidu.SECRET_KEY}),
    "hunyuan": json.dumps(
        {"hunyuan_sid": fake_hunyuan.SECRET_ID, "hunyuan_sk": fake_hunyuan.SECRET_KEY}
    ),
    "fishaudio": json.dumps(
        {"fish_audio_ak": fake_fish.API_KEY, "fish_audio_refid": fake_fish.VOICE}
    ),
    "mistral_ocr": fake_mistral_ocr.API_KEY,
    "azure": json.dumps({"api_key": KEY, "api_version": "2024-10-21"}),
}
# Models for factories whose catalog lists none (users add their own).
USER_MODELS = {
    ("Bedrock", "chat"): "anthropic.claude-3-haiku-20240307-v1:0",
    ("Bedrock", "embedding"): "amazon.titan-embed-text-v2:0",
    ("BaiduYiyan", "chat"): "ERNIE-4.0-8K",
    ("BaiduYiyan", "embedding"): "Embedding-V1",
    ("Fish Audio", "tts"): "s1",
    ("Ollama", "chat"): "llama3.2",
    ("Ollama", "image2text"): "llava",
    ("Ollama", "embedding"): "bge-m3",
}


def pairs():
    """The catalog's pairs, read from the fixture file (parametrisation runs before the DB)."""
    data = json.loads(Path(settings.LLM_FACTORIES_FILE).read_text())
    from providers.types import normalize_model_type, types_from_tags

    found = set()
    for factory in data["factory_llm_infos"]:
        declared = {t.value for t in types_from_tags(factory["tags"])}
        for llm in factory["llm"]:
            kinds = (
                llm["model_type"] if isinstance(llm["model_type"], list) else [llm["model_type"]]
            )
            declared |= {normalize_model_type(k).value for k in kinds}
        found |= {(factory["name"], model_type) for model_type in declared}
    return sorted(found)


def test_every_catalog_pair_has_an_adapter(catalog):
    missing = [
        (factory, model_type)
        for factory, types in catalog_pairs().items()
        for model_type in types
        if not _has_adapter(model_type, factory)
    ]
    assert missing == []


def _has_adapter(model_type, factory) -> bool:
    try:
        get_adapter_class(model_type, factory)
    except Exception:
        return False
    return True


def test_the_readme_coverage_table_is_current(catalog):
    readme = (Path(settings.BASE_DIR) / "README.md").read_text()
    assert coverage_table() in readme, "run `python manage.py provider_coverage` into README.md"


def _target(factory: str, model_type: str, fake_provider) -> tuple[str, str, str]:
    module = get_adapter_class(model_type, factory).__module__.rsplit(".", 1)[-1]
    catalog_model = next(
        (
            llm.llm_name
            for llm in LLM.objects.filter(factory__name=factory, status="1").order_by("pk")
            if llm.serves(model_type)
        ),
        None,
    )
    model = catalog_model or USER_MODELS.get((factory, model_type), "test-model")
    key = CREDENTIALS.get(module, KEY)
    if module == "openai":
        from providers.factories import SELF_HOSTED_FACTORIES

        if factory in SELF_HOSTED_FACTORIES:
            return fake_provider.url("/keyless/v1"), model, ""
        if factory == "VolcEngine":
            key = json.dumps({"ark_api_key": KEY, "endpoint_id": "ep-coverage"})
        return fake_provider.url(HOSTED_OPENAI_FAMILY), model, key
    if module == "jina":
        root = "/jina/v1" if factory == "Jina" else JINA_STYLE_ROOTS.get(factory, "/selfhosted/v1")
        return fake_provider.url(root), model, KEY
    return fake_provider.url(MODULE_ROOTS[module]), model, key


@pytest.mark.parametrize(("factory", "model_type"), pairs())
def test_each_pair_calls_its_provider_through_the_fake_server(
    factory, model_type, catalog, fake_provider
):
    base_url, model, key = _target(factory, model_type, fake_provider)
    attempt = probe_model(
        model_type=model_type, factory=factory, llm_name=model, api_key=key, api_base=base_url
    )
    assert attempt.ok, attempt.message
    assert fake_provider.requests, "no request reached the fake provider"
