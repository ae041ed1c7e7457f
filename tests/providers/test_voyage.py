import pytest

from providers.adapters.voyage import VoyageEmbedding, VoyageRerank
from providers.errors import (
    AuthError,
    GenericProviderError,
    ModelError,
    ProviderError,
)
from providers.registry import build_adapter, get_adapter_class
from providers.results import Usage
from providers.tokens import num_tokens_from_string
from tests.fakeprovider import Reply
from tests.fakeprovider.voyage import TOKENS_PER_TEXT, relevance, vector

from .conftest import KEY

QUERY = "what is the capital of france"
DOCUMENTS = [
    "Berlin is a big city in Germany with many museums",
    "Paris is the capital of France",
    "the capital",
]


@pytest.fixture
def voyage(fake_provider, make_adapter):
    def make(model_type="embedding", model_name=None, api_key=KEY, **options):
        default = "voyage-3.5" if model_type == "embedding" else "rerank-2.5"
        return make_adapter(
            model_type,
            factory="Voyage AI",
            model_name=model_name or default,
            api_key=api_key,
            base_url=fake_provider.url("/voyage/v1"),
            **options,
        )

    return make


# --- embeddings ---


def test_it_embeds_documents(fake_provider, voyage):
    result = voyage().encode(["a", "bb", "ccc"])
    request = fake_provider.last_request
    assert request.path == "/voyage/v1/embeddings"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.json == {
        "input": ["a", "bb", "ccc"],
        "model": "voyage-3.5",
        "input_type": "document",
    }
    # The fake answers in reverse order; `index` says where each vector goes.
    assert result.vectors == [vector(t, i, "document") for i, t in enumerate(["a", "bb", "ccc"])]
    assert result.usage == Usage(3 * TOKENS_PER_TEXT)


def test_it_embeds_queries_as_queries(fake_provider, voyage):
    result = voyage().encode_queries("where?")
    assert fake_provider.last_request.json["input_type"] == "query"
    assert result.vectors == [vector("where?", 0, "query")]


def test_it_batches_large_inputs_and_sums_usage(fake_provider, voyage):
    result = voyage().encode([f"text {i}" for i in range(70)])
    sizes = [len(r.json["input"]) for r in fake_provider.requests_to("/voyage/v1/embeddings")]
    assert sizes == [64, 6]
    assert result.vectors[65] == vector("text 65", 1, "document")
    assert result.usage == Usage(70 * TOKENS_PER_TEXT)


def test_it_estimates_embedding_usage_when_none_is_reported(voyage):
    result = voyage(model_name="fake-nousage").encode(["hello world"])
    assert result.usage == Usage(num_tokens_from_string("hello world"), estimated=True)


def test_it_reports_a_response_without_vectors(fake_provider, voyage):
    fake_provider.script("/voyage/v1/embeddings", [Reply.json({"object": "list"})])
    with pytest.raises(GenericProviderError, match="no data list"):
        voyage().encode(["a"])


# --- rerank ---


def test_it_reranks_and_returns_scores_in_input_order(fake_provider, voyage):
    result = voyage("rerank").similarity(QUERY, DOCUMENTS)
    request = fake_provider.last_request
    assert request.path == "/voyage/v1/rerank"
    assert request.json == {
        "query": QUERY,
        "documents": DOCUMENTS,
        "model": "rerank-2.5",
        "top_k": 3,
    }
    assert result.scores == [relevance(QUERY, doc) for doc in DOCUMENTS]
    assert result.scores != sorted(result.scores, reverse=True)  # the fake answered reordered
    assert result.usage == Usage(4 * TOKENS_PER_TEXT)


def test_it_estimates_rerank_usage_when_none_is_reported(voyage):
    result = voyage("rerank", model_name="fake-nousage").similarity(QUERY, DOCUMENTS)
    tokens = num_tokens_from_string(QUERY) * 3 + sum(map(num_tokens_from_string, DOCUMENTS))
    assert result.usage == Usage(tokens, estimated=True)


def test_it_reports_a_missing_rerank_score(fake_provider, voyage):
    reply = Reply.json({"data": [{"index": 0, "relevance_score": 0.4}]})
    fake_provider.script("/voyage/v1/rerank", [reply])
    with pytest.raises(GenericProviderError, match="no score for text 1"):
        voyage("rerank").similarity("q", ["a", "b"])


# --- errors ---


@pytest.mark.parametrize("api_key", ["", "pa-invalid-0123456789abcdef"])
def test_it_classifies_key_problems_without_retrying(voyage, sleeps, api_key):
    with pytest.raises(AuthError) as caught:
        voyage(api_key=api_key).encode(["a"])
    assert sleeps == []
    assert caught.value.provider == "Voyage AI"


def test_it_classifies_an_unsupported_model(voyage):
    with pytest.raises(ModelError, match="not supported"):
        voyage("rerank", model_name="missing-model").similarity("q", ["a"])


@pytest.mark.parametrize(
    ("api_key", "model_type", "model"),
    [
        ("pa-invalid-0123456789abcdef", "embedding", "voyage-3.5"),
        ("pa-invalid-0123456789abcdef", "rerank", "rerank-2.5"),
        (KEY, "embedding", "fake-429"),
        (KEY, "rerank", "fake-malformed"),
    ],
)
def test_the_key_never_appears_in_an_error(voyage, api_key, model_type, model):
    adapter = voyage(model_type, model_name=model, api_key=api_key)
    with pytest.raises(ProviderError) as caught:
        adapter.encode(["a"]) if model_type == "embedding" else adapter.similarity("q", ["a"])
    error = caught.value
    while error is not None:
        assert api_key not in str(error)
        assert api_key not in repr(error)
        error = error.__cause__ or error.__context__
    assert api_key not in repr(adapter)


# --- factory ---


def test_it_serves_voyage_for_embedding_and_rerank():
    assert get_adapter_class("embedding", "Voyage AI") is VoyageEmbedding
    assert get_adapter_class("rerank", "Voyage AI") is VoyageRerank


def test_it_calls_the_hosted_api_by_default():
    adapter = build_adapter(
        model_type="embedding", factory="Voyage AI", model_name="m", api_key="k"
    )
    assert adapter.base_url == "https://api.voyageai.com/v1"
