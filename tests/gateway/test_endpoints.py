"""Embeddings, rerank, audio and models through the gateway (the SDK where it has the call)."""

from __future__ import annotations

import base64
import struct

import pytest

from tests.fakeprovider import cohere as fake_cohere
from tests.fakeprovider import jina as fake_jina
from tests.fakeprovider.openai import (
    EMBEDDING_TOKENS_PER_INPUT,
    SPEECH_CHUNKS,
    TRANSCRIBE_USAGE,
    TRANSCRIPT,
    vector,
)

DOCUMENTS = ["the cat sat on the mat", "dogs bark", "a cat and a dog"]


def test_it_embeds_texts_as_floats(client, cast, fake_provider):
    result = client.embeddings.create(
        model="text-embedding-3-small@OpenAI", input=["a", "bb"], encoding_format="float"
    )

    assert result.object == "list"
    assert [item.index for item in result.data] == [0, 1]
    assert result.data[1].embedding == vector("bb", 1)
    assert result.usage.prompt_tokens == 2 * EMBEDDING_TOKENS_PER_INPUT
    [event] = cast.events(1)
    assert (event.model_type, event.total_tokens) == ("embedding", 10)


def test_it_embeds_as_base64_and_with_dimensions(client, fake_provider):
    # Without encoding_format the SDK asks for base64 and decodes it itself.
    decoded = client.embeddings.create(model="default", input="hello", dimensions=5)
    raw = client.embeddings.create(model="default", input="hello", encoding_format="base64")

    assert decoded.data[0].embedding == pytest.approx(vector("hello", 0, 5))
    assert fake_provider.requests[0].json["dimensions"] == 5
    packed = base64.b64decode(raw.data[0].embedding)
    assert struct.unpack("<3f", packed) == pytest.approx(tuple(vector("hello", 0)))


@pytest.mark.parametrize(
    ("model", "relevance"),
    [
        ("rerank-v3.5@Cohere", fake_cohere.relevance),
        ("jina-reranker-v2-base-multilingual@Jina", fake_jina.relevance),
    ],
)
def test_it_reranks_in_the_cohere_jina_shape(cast, model, relevance):
    reply = cast.post(
        "/rerank", json={"model": model, "query": "cat", "documents": DOCUMENTS, "top_n": 2}
    )

    assert reply.status_code == 200, reply.text
    body = reply.json()
    expected = sorted(
        ((i, relevance("cat", d)) for i, d in enumerate(DOCUMENTS)), key=lambda p: -p[1]
    )[:2]
    assert [(r["index"], r["relevance_score"]) for r in body["results"]] == expected
    [event] = cast.events(1)
    assert event.model_type == "rerank"
    assert body["usage"]["total_tokens"] == event.total_tokens


def test_it_lists_and_retrieves_the_tenants_models(client, cast):
    models = {model.id: model for model in client.models.list()}
    one = client.models.retrieve("claude-sonnet-4-5@Anthropic")

    assert "gpt-4o-mini@OpenAI" in models
    assert models["rerank-v3.5@Cohere"].owned_by == "Cohere"
    assert models["rerank-v3.5@Cohere"].model_type == "rerank"
    assert (one.id, one.owned_by, one.model_type) == (
        "claude-sonnet-4-5@Anthropic",
        "Anthropic",
        "chat",
    )


def test_the_model_list_is_the_callers_tenants_only(cast):
    from openai import OpenAI

    outsider = OpenAI(base_url=cast.url, api_key=cast.outsider_token, max_retries=0)

    assert list(outsider.models.list()) == []


def test_it_transcribes_audio(client, cast, fake_provider):
    text = client.audio.transcriptions.create(
        model="gpt-4o-transcribe@OpenAI", file=("talk.wav", b"RIFF-fake-audio"), language="en"
    )
    plain = client.audio.transcriptions.create(
        model="gpt-4o-transcribe", file=("talk.wav", b"RIFF-fake-audio"), response_format="text"
    )

    assert text.text == TRANSCRIPT
    assert plain.strip() == TRANSCRIPT
    form = fake_provider.requests[0].form()
    assert form.files["file"].content == b"RIFF-fake-audio"
    assert form.fields["language"] == "en"
    assert [e.total_tokens for e in cast.events(2)] == [TRANSCRIBE_USAGE["total_tokens"]] * 2


def test_it_streams_speech_as_it_arrives(client, cast, fake_provider):
    with client.audio.speech.with_streaming_response.create(
        model="tts-1@OpenAI", input="Hello there", voice="alloy", response_format="mp3"
    ) as response:
        assert response.headers["content-type"] == "audio/mpeg"
        audio = b"".join(response.iter_bytes())

    assert audio == b"".join(SPEECH_CHUNKS)
    assert fake_provider.requests[0].json["voice"] == "alloy"
    [event] = cast.events(1)
    assert (event.model_type, event.outcome) == ("tts", "ok")
