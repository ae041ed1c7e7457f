import pytest

from providers.adapters.jina import JinaEmbedding, JinaRerank
from providers.errors import (
    AuthError,
    GenericProviderError,
    InvalidRequestError,
    ModelError,
    ProviderError,
)
from providers.registry import build_adapter, get_adapter_class
from providers.results import Usage
from providers.tokens import num_tokens_from_string
from tests.fakeprovider import Reply
from tests.fakeprovider.jina import TOKENS_PER_TEXT, relevance, vector

from .conftest import KEY

QUERY = "what is the capital of france"
DOCUMENTS = [
    "Berlin is a big city in Germany with many museums",
    "Paris is the capital of France",
    "the capital",
]
SCORES = [relevance(QUERY, doc) for doc in DOCUMENTS]
SELF_HOSTED = ["VLLM", "LocalAI", "GPUStack"]


@pytest.fixture
def jina(fake_provider, make_adapter):
    def make(model_type="rerank", model_name=None, api_key=KEY, **options):
        default = "jina-embeddings-v3" if model_type == "embedding" else "jina-reranker-v2"
        return make_adapter(
            model_type,
            factory="Jina",
            model_name=model_name or default,
            api_key=api_key,
            base_url=fake_provider.url("/jina/v1"),
            **options,
        )

    return make


def estimated_rerank(query, texts):
    tokens = num_tokens_from_string(query) * len(texts) + sum(map(num_tokens_from_string, texts))
    return Usage(tokens, estimated=True)


# --- embeddings ---


def test_it_embeds_passages_with_the_retrieval_task(fake_provider, jina):
    result = jina("embedding").encode(["a", "bb", "ccc"])
    request = fake_provider.last_request
    assert request.path == "/jina/v1/embeddings"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.json == {
        "model": "jina-embeddings-v3",
        "input": ["a", "bb", "ccc"],
        "task": "retrieval.passage",
    }
    # The fake answers in reverse order; `index` says where each vector goes.
    expected = [vector(text, i, "retrieval.passage") for i, text in enumerate(["a", "bb", "ccc"])]
    assert result.vectors == expected
    assert result.usage == Usage(3 * TOKENS_PER_TEXT)


def test_it_embeds_queries_with_the_query_task(fake_provider, jina):
    result = jina("embedding", model_name="jina-embeddings-v4").encode_queries("where?")
    assert fake_provider.last_request.json["task"] == "retrieval.query"
    assert result.vectors == [vector("where?", 0, "retrieval.query")]


def test_it_sends_no_task_to_models_without_task_adapters(fake_provider, jina):
    adapter = jina("embedding", model_name="jina-embeddings-v2-base-en")
    adapter.encode(["a"])
    adapter.encode_queries("b")
    assert all("task" not in r.json for r in fake_provider.requests_to("/jina/v1/embeddings"))


def test_it_estimates_embedding_usage_when_none_is_reported(jina):
    result = jina("embedding", model_name="fake-nousage").encode(["hello world"])
    assert result.usage == Usage(num_tokens_from_string("hello world"), estimated=True)


# --- rerank on Jina ---


def test_it_reranks_and_returns_scores_in_input_order(fake_provider, jina):
    result = jina().similarity(QUERY, DOCUMENTS)
    request = fake_provider.last_request
    assert request.path == "/jina/v1/rerank"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.json == {
        "model": "jina-reranker-v2",
        "query": QUERY,
        "documents": DOCUMENTS,
        "top_n": 3,
        "return_documents": False,
    }
    assert result.scores == SCORES
    assert result.scores != sorted(result.scores, reverse=True)  # the fake answered reordered
    assert result.usage == Usage(TOKENS_PER_TEXT * 4)


def test_it_makes_no_request_for_no_documents(fake_provider, jina):
    result = jina().similarity(QUERY, [])
    assert result.scores == []
    assert fake_provider.requests == []


def test_it_reports_a_result_out_of_range(fake_provider, jina):
    reply = Reply.json({"results": [{"index": 5, "relevance_score": 0.1}], "usage": {}})
    fake_provider.script("/jina/v1/rerank", [reply])
    with pytest.raises(GenericProviderError, match="out of range"):
        jina().similarity("q", ["a"])


# --- the servers that speak Jina's /rerank ---


@pytest.mark.parametrize("factory", SELF_HOSTED)
@pytest.mark.parametrize("root", ["/selfhosted", "/selfhosted/v1/"])
def test_self_hosted_servers_rerank_under_v1_without_a_key(
    fake_provider, make_adapter, factory, root
):
    adapter = make_adapter(
        "rerank",
        factory=factory,
        model_name=f"bge-reranker-v2-m3___{factory}",
        api_key="",
        base_url=fake_provider.url(root),
    )
    result = adapter.similarity(QUERY, DOCUMENTS)
    request = fake_provider.last_request
    assert request.path == "/selfhosted/v1/rerank"
    assert "authorization" not in request.headers
    assert request.json == {
        "model": "bge-reranker-v2-m3",
        "query": QUERY,
        "documents": DOCUMENTS,
        "top_n": 3,
    }
    assert result.scores == SCORES
    assert result.usage == Usage(TOKENS_PER_TEXT * 4)


@pytest.mark.parametrize(
    ("root", "path"),
    [("/selfhosted", "/selfhosted/rerank"), ("/selfhosted/v1", "/selfhosted/v1/rerank")],
)
def test_an_openai_compatible_url_is_taken_as_given(fake_provider, make_adapter, root, path):
    adapter = make_adapter(
        "rerank",
        factory="OpenAI-API-Compatible",
        model_name="bge-reranker___OpenAI-API",
        api_key="",
        base_url=fake_provider.url(root),
    )
    assert adapter.similarity(QUERY, DOCUMENTS).scores == SCORES
    assert fake_provider.last_request.path == path
    assert fake_provider.last_request.json["model"] == "bge-reranker"


def test_a_self_hosted_key_is_sent_as_bearer(fake_provider, make_adapter):
    adapter = make_adapter(
        "rerank", factory="VLLM", model_name="m", base_url=fake_provider.url("/selfhosted")
    )
    adapter.similarity("q", ["a"])
    assert fake_provider.last_request.headers["authorization"] == f"Bearer {KEY}"


def test_xinference_is_asked_for_token_counts(fake_provider, make_adapter):
    adapter = make_adapter(
        "rerank",
        factory="Xinference",
        model_name="bge-reranker-base",
        api_key="",
        base_url=fake_provider.url("/xinference"),
    )
    result = adapter.similarity(QUERY, DOCUMENTS)
    request = fake_provider.last_request
    assert request.path == "/xinference/v1/rerank"
    assert request.json["return_len"] is True
    assert result.scores == SCORES
    # Xinference repeats the input count as output_tokens: only the input is counted.
    assert result.usage == Usage(TOKENS_PER_TEXT * 4)


def test_siliconflow_reports_usage_in_meta(fake_provider, make_adapter):
    adapter = make_adapter(
        "rerank",
        factory="SILICONFLOW",
        model_name="BAAI/bge-reranker-v2-m3",
        base_url=fake_provider.url("/siliconflow/v1"),
    )
    result = adapter.similarity(QUERY, DOCUMENTS)
    assert fake_provider.last_request.path == "/siliconflow/v1/rerank"
    assert fake_provider.last_request.headers["authorization"] == f"Bearer {KEY}"
    assert result.scores == SCORES
    assert result.usage == Usage(TOKENS_PER_TEXT * 4)


def test_it_estimates_rerank_usage_when_none_is_reported(make_adapter, fake_provider):
    adapter = make_adapter(
        "rerank",
        factory="VLLM",
        model_name="fake-nousage",
        api_key="",
        base_url=fake_provider.url("/selfhosted"),
    )
    assert adapter.similarity(QUERY, DOCUMENTS).usage == estimated_rerank(QUERY, DOCUMENTS)


# --- errors ---


@pytest.mark.parametrize("api_key", ["", "sk-invalid-0123456789abcdef"])
def test_it_classifies_key_problems_without_retrying(jina, sleeps, api_key):
    with pytest.raises(AuthError) as caught:
        jina(api_key=api_key).similarity("q", ["a"])
    assert sleeps == []
    assert caught.value.provider == "Jina"


def test_it_classifies_validation_errors(fake_provider, jina):
    detail = [{"type": "missing", "loc": ["body", "query"], "msg": "Field required"}]
    fake_provider.script("/jina/v1/rerank", [Reply.json({"detail": detail}, 422)])
    with pytest.raises(InvalidRequestError, match="Field required"):
        jina().similarity("q", ["a"])


def test_it_classifies_a_missing_model(make_adapter, fake_provider):
    adapter = make_adapter(
        "rerank",
        factory="VLLM",
        model_name="missing-model",
        api_key="",
        base_url=fake_provider.url("/selfhosted"),
    )
    with pytest.raises(ModelError, match="does not exist"):
        adapter.similarity("q", ["a"])


@pytest.mark.parametrize(
    ("api_key", "model_type", "model"),
    [
        ("sk-invalid-0123456789abcdef", "embedding", "jina-embeddings-v3"),
        ("sk-invalid-0123456789abcdef", "rerank", "jina-reranker-v2"),
        (KEY, "rerank", "fake-429"),
        (KEY, "rerank", "fake-malformed"),
    ],
)
def test_the_key_never_appears_in_an_error(jina, api_key, model_type, model):
    adapter = jina(model_type, model_name=model, api_key=api_key)
    with pytest.raises(ProviderError) as caught:
        adapter.encode(["a"]) if model_type == "embedding" else adapter.similarity("q", ["a"])
    error = caught.value
    while error is not None:
        assert api_key not in str(error)
        assert api_key not in repr(error)
        error = error.__cause__ or error.__context__
    assert api_key not in repr(adapter)


# --- factories ---


def test_it_serves_jina_and_every_jina_style_reranker():
    assert get_adapter_class("embedding", "Jina") is JinaEmbedding
    for factory in ("Jina", "SILICONFLOW", *SELF_HOSTED, "Xinference", "OpenAI-API-Compatible"):
        assert get_adapter_class("rerank", factory) is JinaRerank


@pytest.mark.parametrize(
    ("factory", "base_url"),
    [("Jina", "https://api.jina.ai/v1"), ("SILICONFLOW", "https://api.siliconflow.cn/v1")],
)
def test_hosted_factories_default_to_their_base_url(factory, base_url):
    adapter = build_adapter(model_type="rerank", factory=factory, model_name="m", api_key="k")
    assert adapter.base_url == base_url


@pytest.mark.parametrize("factory", [*SELF_HOSTED, "Xinference", "OpenAI-API-Compatible"])
def test_self_hosted_factories_need_a_base_url(factory):
    with pytest.raises(ProviderError, match="needs a base URL"):
        build_adapter(model_type="rerank", factory=factory, model_name="m", api_key="")
