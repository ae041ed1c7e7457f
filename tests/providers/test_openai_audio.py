import pytest

from providers.errors import AuthError, ProviderConnectionError
from providers.results import Usage
from providers.tokens import num_tokens_from_string
from tests.fakeprovider.openai import SPEECH_CHUNKS, TRANSCRIPT

from .conftest import KEY

AUDIO = b"RIFF\x00\x00\x00\x00WAVEfmt fake audio"


def test_it_uploads_audio_for_transcription(fake_provider, make_adapter):
    adapter = make_adapter("speech2text", model_name="whisper-1")
    adapter.transcription(AUDIO, filename="meeting.wav", language="en")
    request = fake_provider.last_request
    assert request.path == "/v1/audio/transcriptions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    form = request.form()
    assert form.fields == {"model": "whisper-1", "response_format": "json", "language": "en"}
    upload = form.files["file"]
    assert (upload.filename, upload.content_type, upload.content) == (
        "meeting.wav",
        "audio/x-wav",
        AUDIO,
    )


def test_it_uses_the_token_usage_a_transcription_model_reports(make_adapter):
    result = make_adapter("speech2text", model_name="gpt-4o-transcribe").transcription(AUDIO)
    assert result.text == TRANSCRIPT
    assert result.usage == Usage(14, 6, 20)


def test_it_estimates_transcription_usage_from_the_text_otherwise(make_adapter):
    # whisper-1 reports seconds of audio, not tokens.
    result = make_adapter("speech2text", model_name="whisper-1").transcription(AUDIO)
    assert result.usage == Usage(0, num_tokens_from_string(TRANSCRIPT), estimated=True)


def test_groq_transcribes_through_the_same_protocol(fake_provider, make_adapter):
    result = make_adapter(
        "speech2text", factory="Groq", model_name="whisper-large-v3"
    ).transcription(AUDIO)
    assert result.text == TRANSCRIPT
    assert fake_provider.last_request.form().fields["model"] == "whisper-large-v3"


def test_it_streams_speech(fake_provider, make_adapter):
    stream = make_adapter("tts", model_name="tts-1").tts("Hello there.", voice="nova")
    assert b"".join(stream) == b"".join(SPEECH_CHUNKS)
    assert stream.done
    assert stream.content_type == "audio/mpeg"
    assert stream.usage == Usage(num_tokens_from_string("Hello there."), estimated=True)
    request = fake_provider.last_request
    assert request.path == "/v1/audio/speech"
    assert request.json == {
        "model": "tts-1",
        "input": "Hello there.",
        "voice": "nova",
        "response_format": "mp3",
    }


def test_speech_reads_whole_and_defaults_the_voice(fake_provider, make_adapter):
    audio = make_adapter("tts", model_name="tts-1").tts("Hi").read()
    assert audio == b"".join(SPEECH_CHUNKS)
    assert fake_provider.last_request.json["voice"] == "alloy"


def test_a_speech_stream_closed_early_keeps_usage(make_adapter):
    with make_adapter("tts", model_name="tts-1").tts("Hello there.") as stream:
        next(stream)
    assert stream.closed
    assert not stream.done
    assert stream.usage.prompt_tokens == num_tokens_from_string("Hello there.")


def test_a_speech_stream_failing_midway_raises(make_adapter):
    stream = make_adapter("tts", model_name="fake-drop").tts("Hello")
    with pytest.raises(ProviderConnectionError):
        stream.read()
    assert isinstance(stream.error, ProviderConnectionError)


def test_audio_errors_are_classified(make_adapter):
    with pytest.raises(AuthError):
        make_adapter("speech2text", api_key="sk-invalid-0123456789").transcription(AUDIO)
    with pytest.raises(AuthError):
        make_adapter("tts", api_key="sk-invalid-0123456789").tts("Hi")
