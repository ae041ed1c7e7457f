import pytest

from providers.errors import GenericProviderError
from providers.results import Usage
from providers.tokens import num_tokens_from_string
from tests.fakeprovider import Reply
from tests.fakeprovider.openai import EMBEDDING_TOKENS_PER_INPUT, vector

from .conftest import KEY


def test_it_sends_an_embeddings_request(fake_provider, make_adapter):
    make_adapter("embedding", model_name="text-embedding-3-small").encode(["a", "bb"])
    request = fake_provider.last_request
    assert request.path == "/v1/embeddings"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.json == {"model": "text-embedding-3-small", "input": ["a", "bb"]}


def test_it_returns_vectors_in_input_order(make_adapter):
    # The fake answers in reverse order; `index` says where each vector goes.
    result = make_adapter("embedding").encode(["a", "bb", "ccc"])
    assert result.vectors == [vector("a", 0), vector("bb", 1), vector("ccc", 2)]
    assert result.usage == Usage(3 * EMBEDDING_TOKENS_PER_INPUT)


def test_it_batches_large_inputs_and_sums_usage(fake_provider, make_adapter):
    texts = [f"text {i}" for i in range(40)]
    result = make_adapter("embedding").encode(texts)
    sizes = [len(r.json["input"]) for r in fake_provider.requests_to("/v1/embeddings")]
    assert sizes == [16, 16, 8]
    assert len(result.vectors) == 40
    assert result.vectors[17] == vector("text 17", 1)  # second batch, index 1
    assert result.usage == Usage(40 * EMBEDDING_TOKENS_PER_INPUT)


def test_it_uses_small_batches_where_the_provider_demands(fake_provider, make_adapter):
    make_adapter("embedding", factory="Tongyi-Qianwen").encode(["x"] * 25)
    sizes = [len(r.json["input"]) for r in fake_provider.requests_to("/v1/embeddings")]
    assert sizes == [10, 10, 5]


def test_it_estimates_usage_when_none_is_reported(make_adapter):
    result = make_adapter("embedding", model_name="fake-nousage").encode(["hello world", "hi"])
    assert result.usage == Usage(num_tokens_from_string("hello world") + 1, estimated=True)


def test_it_encodes_a_query(fake_provider, make_adapter):
    result = make_adapter("embedding").encode_queries("what is up")
    assert result.vectors == [vector("what is up", 0)]
    assert fake_provider.last_request.json["input"] == ["what is up"]


def test_nvidia_says_whether_it_embeds_passages_or_queries(fake_provider, make_adapter):
    adapter = make_adapter("embedding", factory="NVIDIA", model_name="nvidia/nv-embedqa-e5-v5")
    adapter.encode(["doc"])
    assert fake_provider.last_request.json["input_type"] == "passage"
    adapter.encode_queries("question")
    assert fake_provider.last_request.json["input_type"] == "query"


def test_it_makes_no_request_for_no_texts(fake_provider, make_adapter):
    result = make_adapter("embedding").encode([])
    assert result.vectors == []
    assert result.usage == Usage.zero()
    assert fake_provider.requests == []


def test_it_refuses_a_single_string(make_adapter):
    with pytest.raises(TypeError, match="encode_queries"):
        make_adapter("embedding").encode("one text")


def test_it_reports_a_vector_count_mismatch(fake_provider, make_adapter):
    reply = Reply.json({"data": [{"index": 0, "embedding": [0.1]}], "usage": {"prompt_tokens": 1}})
    fake_provider.script("/v1/embeddings", [reply])
    with pytest.raises(GenericProviderError, match="1 vectors for 2 texts"):
        make_adapter("embedding").encode(["a", "b"])


def test_it_reports_a_response_without_vectors(fake_provider, make_adapter):
    fake_provider.script("/v1/embeddings", [Reply.json({"object": "list"})])
    with pytest.raises(GenericProviderError, match="no data list"):
        make_adapter("embedding").encode(["a"])


def test_a_keyless_server_embeds_without_authorization(fake_provider, make_adapter):
    adapter = make_adapter(
        "embedding",
        factory="LM-Studio",
        model_name="bge-m3",
        api_key="",
        base_url=fake_provider.url("/keyless"),
    )
    adapter.encode(["a"])
    assert fake_provider.last_request.path == "/keyless/v1/embeddings"
    assert "authorization" not in fake_provider.last_request.headers
