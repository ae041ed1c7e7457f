import base64

import pytest

from providers.adapters.mistral_ocr import MistralOCR
from providers.errors import (
    AuthError,
    GenericProviderError,
    ModelError,
    ProviderError,
)
from providers.registry import build_adapter
from providers.results import Usage
from providers.tokens import num_tokens_from_string
from tests.fakeprovider import Reply
from tests.fakeprovider import mistral_ocr as fake

PDF = b"%PDF-1.7 first page\fsecond page"
PNG = b"\x89PNG\r\n\x1a\nan image"
TEXT = "# Page 1\n\n%PDF-1.7 first page\n\n# Page 2\n\nsecond page"


@pytest.fixture
def make_ocr(fake_provider, policy):
    def make(model_name="mistral-ocr-latest", api_key=fake.API_KEY, base_url=None, **options):
        options.setdefault("retry_policy", policy)
        return build_adapter(
            model_type="ocr",
            factory="Mistral",
            model_name=model_name,
            api_key=api_key,
            base_url=base_url or fake_provider.url("/mistral/v1"),
            **options,
        )

    return make


def test_it_sends_a_pdf_as_a_document_url(fake_provider, make_ocr):
    make_ocr().ocr(PDF)
    request = fake_provider.last_request
    assert request.path == "/mistral/v1/ocr"
    assert request.headers["authorization"] == f"Bearer {fake.API_KEY}"
    assert request.json == {
        "model": "mistral-ocr-latest",
        "document": {
            "type": "document_url",
            "document_url": "data:application/pdf;base64," + base64.b64encode(PDF).decode(),
        },
    }


def test_it_sends_an_image_as_an_image_url(fake_provider, make_ocr):
    result = make_ocr().ocr(PNG, mime_type="image/png")
    assert fake_provider.last_request.json["document"] == {
        "type": "image_url",
        "image_url": "data:image/png;base64," + base64.b64encode(PNG).decode(),
    }
    assert len(result.pages) == 1
    assert result.text.endswith("an image")


def test_it_joins_the_pages_in_order_and_estimates_usage(make_ocr):
    result = make_ocr().ocr(PDF)
    assert result.pages == ["# Page 1\n\n%PDF-1.7 first page", "# Page 2\n\nsecond page"]
    assert result.text == TEXT
    assert result.usage == Usage(completion_tokens=num_tokens_from_string(TEXT), estimated=True)


def test_the_default_base_url_is_mistrals():
    adapter = build_adapter(
        model_type="ocr", factory="Mistral", model_name="mistral-ocr-latest", api_key="k" * 10
    )
    assert isinstance(adapter, MistralOCR)
    assert adapter.base_url == "https://api.mistral.ai/v1"


@pytest.mark.parametrize(
    ("model", "api_key", "expected"),
    [
        ("mistral-ocr-latest", "wrong-key-0123456789", AuthError),
        # Mistral says "invalid_model": the model is at fault, not the request.
        ("missing-model", fake.API_KEY, ModelError),
        ("fake-malformed", fake.API_KEY, GenericProviderError),
    ],
)
def test_it_classifies_errors_without_retrying(make_ocr, sleeps, model, api_key, expected):
    with pytest.raises(expected) as caught:
        make_ocr(model_name=model, api_key=api_key).ocr(PDF)
    assert sleeps == []
    assert caught.value.provider == "Mistral"


def test_a_page_without_markdown_is_malformed(fake_provider, make_ocr):
    fake_provider.script("/mistral/v1/ocr", [Reply.json({"pages": [{"index": 0}]})])
    with pytest.raises(GenericProviderError, match="no markdown"):
        make_ocr().ocr(PDF)


def test_the_key_never_appears_in_an_error(make_ocr):
    key = "wrong-key-0123456789"
    with pytest.raises(ProviderError) as caught:
        make_ocr(api_key=key).ocr(PDF)
    assert key not in str(caught.value)
    assert key not in repr(caught.value)
