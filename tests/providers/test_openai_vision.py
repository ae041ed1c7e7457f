import base64

import pytest

from providers.errors import AuthError
from providers.media import DEFAULT_DESCRIBE_PROMPT, image_data_url, image_mime_type
from tests.fakeprovider.openai import CHAT_USAGE, VISION_TEXT

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 16


def image_parts(request):
    return request.json["messages"][0]["content"]


def test_it_describes_an_image_with_a_data_url(fake_provider, make_adapter):
    result = make_adapter("image2text", model_name="gpt-4o").describe(PNG)
    assert result.text == VISION_TEXT
    assert result.usage.total_tokens == CHAT_USAGE["total_tokens"]
    request = fake_provider.last_request
    assert request.path == "/v1/chat/completions"
    image, prompt = image_parts(request)
    assert image == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()},
    }
    assert prompt == {"type": "text", "text": DEFAULT_DESCRIBE_PROMPT}


def test_it_describes_with_a_prompt(fake_provider, make_adapter):
    make_adapter(
        "image2text", factory="Tongyi-Qianwen", model_name="qwen-vl-max"
    ).describe_with_prompt(JPEG, "What is written here?")
    image, prompt = image_parts(fake_provider.last_request)
    assert image["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert prompt["text"] == "What is written here?"


def test_a_vision_model_also_chats_with_images_in_history(make_adapter):
    history = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Compare"},
                {"type": "image_url", "image_url": {"url": image_data_url(PNG)}},
            ],
        }
    ]
    assert make_adapter("image2text").chat(history).text == VISION_TEXT


def test_vision_works_on_a_keyless_server(fake_provider, make_adapter):
    adapter = make_adapter(
        "image2text",
        factory="LM-Studio",
        model_name="llava",
        api_key="",
        base_url=fake_provider.url("/keyless"),
    )
    assert adapter.describe(PNG).text == VISION_TEXT
    assert "authorization" not in fake_provider.last_request.headers


def test_vision_errors_are_classified(make_adapter):
    with pytest.raises(AuthError):
        make_adapter("image2text", api_key="sk-invalid-0123456789").describe(PNG)


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (b"GIF89a...", "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"unknown", "image/jpeg"),
    ],
)
def test_it_sniffs_image_types(data, mime):
    assert image_mime_type(data) == mime


def test_it_passes_urls_through():
    assert image_data_url("https://example.com/a.png") == "https://example.com/a.png"
    assert image_data_url("data:image/png;base64,AAAA") == "data:image/png;base64,AAAA"
    assert image_data_url("AAAA") == "data:image/jpeg;base64,AAAA"
