import asyncio
import json

import pytest

from providers.errors import AuthError, ProviderError
from providers.registry import build_adapter
from tests.fakeprovider.openai import CHAT_PIECES, CHAT_TEXT, VISION_TEXT

HISTORY = [{"role": "user", "content": "hi"}]
AZURE_KEY = "azure-0123456789abcdef"


@pytest.fixture
def make_azure(fake_provider, policy):
    def make(model_type="chat", api_key=None, api_version=None, deployment="my-gpt4o"):
        if api_key is None:
            fields = {"api_key": AZURE_KEY}
            if api_version:
                fields["api_version"] = api_version
            api_key = json.dumps(fields)
        return build_adapter(
            model_type=model_type,
            factory="Azure-OpenAI",
            model_name=deployment,
            api_key=api_key,
            base_url=fake_provider.base_url + "/",
            retry_policy=policy,
        )

    return make


def test_it_calls_the_deployment_with_api_key_and_version(fake_provider, make_azure):
    result = make_azure().chat(HISTORY, gen_conf={"temperature": 0.1})
    assert result.text == CHAT_TEXT
    request = fake_provider.last_request
    assert request.path == "/openai/deployments/my-gpt4o/chat/completions"
    assert request.query == {"api-version": "2024-02-01"}
    assert request.headers["api-key"] == AZURE_KEY
    assert "authorization" not in request.headers
    assert request.json == {"messages": HISTORY, "temperature": 0.1}


def test_it_uses_the_stored_api_version(fake_provider, make_azure):
    make_azure(api_version="2024-10-21").chat(HISTORY)
    assert fake_provider.last_request.query == {"api-version": "2024-10-21"}


def test_it_accepts_a_plain_key(fake_provider, make_azure):
    make_azure(api_key=AZURE_KEY).chat(HISTORY)
    assert fake_provider.last_request.headers["api-key"] == AZURE_KEY
    assert fake_provider.last_request.query == {"api-version": "2024-02-01"}


def test_it_asks_for_streamed_usage_only_where_the_version_has_it(fake_provider, make_azure):
    old = make_azure().chat_streamly(HISTORY)
    assert list(old) == CHAT_PIECES
    assert "stream_options" not in fake_provider.last_request.json
    assert old.usage.estimated
    new = make_azure(api_version="2024-10-21").chat_streamly(HISTORY)
    list(new)
    assert fake_provider.last_request.json["stream_options"] == {"include_usage": True}
    assert not new.usage.estimated


def test_it_quotes_the_deployment_name(fake_provider, make_azure):
    make_azure(deployment="team a/gpt").chat(HISTORY)
    assert fake_provider.last_request.path == "/openai/deployments/team%20a%2Fgpt/chat/completions"


def test_it_embeds_through_the_deployment(fake_provider, make_azure):
    result = make_azure("embedding", deployment="ada").encode(["a", "b"])
    assert len(result.vectors) == 2
    request = fake_provider.last_request
    assert request.path == "/openai/deployments/ada/embeddings"
    assert request.json == {"input": ["a", "b"]}


def test_it_describes_images(make_azure):
    assert make_azure("image2text").describe(b"\x89PNG\r\n\x1a\n").text == VISION_TEXT


def test_it_chats_asynchronously(fake_provider, make_azure):
    assert asyncio.run(make_azure().achat(HISTORY)).text == CHAT_TEXT
    assert fake_provider.last_request.headers["api-key"] == AZURE_KEY


def test_a_missing_key_is_an_auth_error(make_azure):
    with pytest.raises(AuthError):
        make_azure(api_key="").chat(HISTORY)


def test_it_needs_a_base_url():
    with pytest.raises(ProviderError, match="needs a base URL"):
        build_adapter(model_type="chat", factory="Azure-OpenAI", model_name="d", api_key=AZURE_KEY)
