import pytest

from providers.adapters.tei import TEIEmbedding, TEIRerank
from providers.errors import (
    AuthError,
    GenericProviderError,
    InvalidRequestError,
    ProviderError,
)
from providers.registry import build_adapter, get_adapter_class
from providers.results import Usage
from providers.tokens import num_tokens_from_string
from tests.fakeprovider import Reply
from tests.fakeprovider.tei import SECURED_KEY, relevance, vector

QUERY = "what is the capital of france"
DOCUMENTS = [
    "Berlin is a big city in Germany with many museums",
    "Paris is the capital of France",
    "the capital",
]


@pytest.fixture
def tei(fake_provider, make_adapter):
    def make(model_type="embedding", api_key="", root="/tei", **options):
        return make_adapter(
            model_type,
            factory="HuggingFace",
            model_name="BAAI/bge-m3___HuggingFace",
            api_key=api_key,
            base_url=fake_provider.url(root),
            **options,
        )

    return make


def estimated_rerank(query, texts):
    tokens = num_tokens_from_string(query) * len(texts) + sum(map(num_tokens_from_string, texts))
    return Usage(tokens, estimated=True)


# --- embeddings ---


def test_it_embeds_and_estimates_usage(fake_provider, tei):
    texts = ["hello world", "hi"]
    result = tei().encode(texts)
    request = fake_provider.last_request
    assert request.path == "/tei/embed"
    assert "authorization" not in request.headers
    assert request.json == {"inputs": texts, "truncate": True}
    assert result.vectors == [vector(text) for text in texts]
    # TEI reports no usage.
    assert result.usage == Usage(num_tokens_from_string("hello world") + 1, estimated=True)


def test_queries_are_embedded_like_documents(fake_provider, tei):
    assert tei().encode_queries("where?").vectors == [vector("where?")]
    assert fake_provider.last_request.json == {"inputs": ["where?"], "truncate": True}


def test_it_keeps_to_the_servers_batch_size(fake_provider, tei):
    result = tei().encode([f"text {i}" for i in range(40)])
    sizes = [len(r.json["inputs"]) for r in fake_provider.requests_to("/tei/embed")]
    assert sizes == [32, 8]
    assert result.vectors[35] == vector("text 35")


def test_it_sends_the_key_to_a_secured_server(fake_provider, tei):
    tei(api_key=SECURED_KEY, root="/tei-secured").encode(["a"])
    assert fake_provider.last_request.headers["authorization"] == f"Bearer {SECURED_KEY}"


def test_it_tolerates_a_base_url_ending_in_v1(fake_provider, tei):
    tei(root="/tei/v1/").encode(["a"])
    assert fake_provider.last_request.path == "/tei/embed"


def test_it_reports_a_response_that_is_not_a_list_of_vectors(fake_provider, tei):
    fake_provider.script("/tei/embed", [Reply.json({"embeddings": []})])
    with pytest.raises(GenericProviderError, match="not a list of vectors"):
        tei().encode(["a"])


# --- rerank ---


def test_it_reranks_and_returns_scores_in_input_order(fake_provider, tei):
    result = tei("rerank").similarity(QUERY, DOCUMENTS)
    request = fake_provider.last_request
    assert request.path == "/tei/rerank"
    assert request.json == {
        "query": QUERY,
        "texts": DOCUMENTS,
        "raw_scores": False,
        "truncate": True,
    }
    assert result.scores == [relevance(QUERY, doc) for doc in DOCUMENTS]
    assert result.scores != sorted(result.scores, reverse=True)  # the fake answered reordered
    assert result.usage == estimated_rerank(QUERY, DOCUMENTS)


def test_it_reranks_more_texts_than_one_batch_takes(fake_provider, tei):
    texts = [f"capital number {i} " + "word " * (i % 5) for i in range(40)]
    result = tei("rerank").similarity("capital", texts)
    sizes = [len(r.json["texts"]) for r in fake_provider.requests_to("/tei/rerank")]
    assert sizes == [32, 8]
    assert result.scores == [relevance("capital", text) for text in texts]


# --- errors ---


@pytest.mark.parametrize("api_key", ["", "hf-wrong-0123456789abcdef"])
def test_a_secured_server_refuses_a_missing_or_wrong_key(tei, sleeps, api_key):
    with pytest.raises(AuthError):
        tei(api_key=api_key, root="/tei-secured").encode(["a"])
    assert sleeps == []


def test_it_classifies_validation_errors(fake_provider, tei):
    too_long = Reply.json({"error": "Input validation error", "error_type": "Validation"}, 413)
    fake_provider.script("/tei/embed", [too_long])
    with pytest.raises(InvalidRequestError, match="Input validation error"):
        tei().encode(["a"])


def test_the_key_never_appears_in_an_error(tei):
    api_key = "hf-wrong-0123456789abcdef"
    adapter = tei("rerank", api_key=api_key, root="/tei-secured")
    with pytest.raises(ProviderError) as caught:
        adapter.similarity("q", ["a"])
    assert api_key not in str(caught.value)
    assert api_key not in repr(caught.value)
    assert api_key not in repr(adapter)


# --- factory ---


def test_it_serves_huggingface_embedding_and_rerank():
    assert get_adapter_class("embedding", "HuggingFace") is TEIEmbedding
    assert get_adapter_class("rerank", "HuggingFace") is TEIRerank


@pytest.mark.parametrize("model_type", ["embedding", "rerank"])
def test_it_needs_a_base_url(model_type):
    with pytest.raises(ProviderError, match="needs a base URL"):
        build_adapter(model_type=model_type, factory="HuggingFace", model_name="m", api_key="")
