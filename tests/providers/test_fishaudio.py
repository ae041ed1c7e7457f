import json

import pytest

from providers.adapters.fishaudio import FishAudioTTS
from providers.errors import (
    AuthError,
    InvalidRequestError,
    ModelError,
    ProviderConnectionError,
    ProviderError,
    QuotaExceededError,
)
from providers.registry import build_adapter
from providers.results import Usage
from providers.tokens import num_tokens_from_string
from tests.fakeprovider import fishaudio as fake

from .conftest import error_chain

TEXT = "Hello there, this is Fish Audio."
CREDENTIALS = json.dumps({"fish_audio_ak": fake.API_KEY, "fish_audio_refid": fake.VOICE})
AUDIO = b"".join(fake.AUDIO_CHUNKS)


@pytest.fixture
def make_fish(fake_provider, policy):
    def make(model_name="s1", api_key=CREDENTIALS, base_url=None, **options):
        options.setdefault("retry_policy", policy)
        return build_adapter(
            model_type="tts",
            factory="Fish Audio",
            model_name=model_name,
            api_key=api_key,
            base_url=base_url or fake_provider.url("/fishaudio"),
            **options,
        )

    return make


def test_it_streams_the_audio_of_the_stored_voice(fake_provider, make_fish):
    stream = make_fish().tts(TEXT)
    chunks = list(stream)
    assert b"".join(chunks) == AUDIO
    assert len(chunks) >= 1
    assert stream.done
    assert stream.content_type == "audio/mpeg"
    request = fake_provider.last_request
    assert request.path == "/fishaudio/v1/tts"
    assert request.headers["authorization"] == f"Bearer {fake.API_KEY}"
    assert request.headers["model"] == "s1"
    assert request.json == {"text": TEXT, "reference_id": fake.VOICE, "format": "mp3"}


def test_usage_is_the_text_estimated(make_fish):
    stream = make_fish().tts(TEXT)
    assert stream.usage == Usage(num_tokens_from_string(TEXT), estimated=True)


def test_a_voice_replaces_the_stored_one(fake_provider, make_fish):
    assert make_fish().tts(TEXT, voice=fake.OTHER_VOICE).read() == AUDIO
    assert fake_provider.last_request.json["reference_id"] == fake.OTHER_VOICE


def test_it_accepts_ragflows_endpoint_as_base_url(fake_provider, make_fish):
    make_fish(base_url=fake_provider.url("/fishaudio/v1/tts")).tts(TEXT).read()
    assert fake_provider.last_request.path == "/fishaudio/v1/tts"
    adapter = build_adapter(
        model_type="tts", factory="Fish Audio", model_name="s1", api_key=CREDENTIALS
    )
    assert isinstance(adapter, FishAudioTTS)
    assert adapter.base_url == "https://api.fish.audio"


def test_a_stream_closed_early_keeps_usage(make_fish):
    with make_fish().tts(TEXT) as stream:
        next(stream)
    assert stream.closed
    assert not stream.done
    assert stream.usage.prompt_tokens == num_tokens_from_string(TEXT)


def test_a_stream_failing_midway_raises(make_fish):
    stream = make_fish(model_name="fake-drop").tts(TEXT)
    with pytest.raises(ProviderConnectionError):
        stream.read()
    assert isinstance(stream.error, ProviderConnectionError)
    assert stream.usage.estimated


@pytest.mark.parametrize(
    ("model", "credentials", "expected"),
    [
        (
            "s1",
            json.dumps({"fish_audio_ak": "wrong-key-000000", "fish_audio_refid": "x"}),
            AuthError,
        ),
        ("fake-credit", CREDENTIALS, QuotaExceededError),
        ("s1", json.dumps({"fish_audio_ak": fake.API_KEY, "fish_audio_refid": "nope"}), ModelError),
    ],
)
def test_it_classifies_errors_without_retrying(make_fish, sleeps, model, credentials, expected):
    with pytest.raises(expected) as caught:
        make_fish(model_name=model, api_key=credentials).tts(TEXT)
    assert sleeps == []
    assert caught.value.provider == "Fish Audio"


def test_an_empty_text_is_a_validation_error(make_fish):
    with pytest.raises(InvalidRequestError, match="HTTP 422"):
        make_fish().tts("")


def test_missing_credential_fields_are_named():
    with pytest.raises(InvalidRequestError, match=r"missing required field\(s\): fish_audio_refid"):
        build_adapter(
            model_type="tts",
            factory="Fish Audio",
            model_name="s1",
            api_key=json.dumps({"fish_audio_ak": fake.API_KEY}),
        )


def test_the_key_never_appears_in_an_error(make_fish):
    key = "wrong-key-0123456789"
    adapter = make_fish(api_key=json.dumps({"fish_audio_ak": key, "fish_audio_refid": "x"}))
    with pytest.raises(ProviderError) as caught:
        adapter.tts(TEXT)
    for error in error_chain(caught.value):
        assert key not in str(error)
        assert key not in repr(error)
    assert key not in repr(adapter)
