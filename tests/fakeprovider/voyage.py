"""Voyage AI on the fake provider: /voyage/v1/embeddings and /voyage/v1/rerank.

Point an adapter at `fake_provider.url("/voyage/v1")`. `Authorization: Bearer <key>` is
required; malformed requests get a 400 with Voyage's error body {"detail": "..."}. Behaviour
is chosen by the key or the model name (see MODELS); anything else gets a normal reply in
Voyage's documented format. Results come back sorted by relevance, embeddings in reverse order:
clients must place both by `index`.
"""

from __future__ import annotations

from typing import Any

from .server import FakeProviderServer, RecordedRequest, Reply

TOKENS_PER_TEXT = 6
MAX_TEXTS = 1000
EMBED_FIELDS = {
    "input",
    "model",
    "input_type",
    "truncation",
    "output_dimension",
    "output_dtype",
    "encoding_format",
}
RERANK_FIELDS = {"query", "documents", "model", "top_k", "return_documents", "truncation"}
INVALID_KEY_PREFIX = "pa-invalid"
SLOW_SECONDS = 2.0


def register(server: FakeProviderServer) -> None:
    server.route("POST", r"/voyage/v1/(?P<endpoint>embeddings|rerank)", handle)


def error(status: int, detail: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply.json({"detail": detail}, status=status, headers=headers)


MODELS = {
    "fake-429": lambda: error(
        429,
        "You have exceeded the rate limit of 2000 RPM for your organization. "
        "Please try again later.",
        {"Retry-After": "2"},
    ),
    "fake-500": lambda: error(500, "Internal Server Error"),
    "missing-model": lambda: error(
        400, "Model missing-model is not supported. Supported models are voyage-3.5, ..."
    ),
    "fake-malformed": lambda: Reply.raw(b'{"object": "list", "data": [{"embedd'),
}


def relevance(query: str, document: str) -> float:
    """The fake's score: shared words, damped by the document's length."""
    shared = len(set(query.lower().split()) & set(document.lower().split()))
    return round((shared + 1) / (len(document.split()) + 2), 6)


def vector(text: str, index: int, input_type: str | None) -> list[float]:
    sign = {"query": -1.0, "document": 1.0}.get(input_type or "", 0.0)
    return [len(text) / 10, sign * 0.5, float(index)]


def handle(request: RecordedRequest) -> Reply:
    header = request.headers.get("authorization")
    key = request.bearer
    if header is None or key is None:
        return error(
            401,
            "No API key provided. You can set your API key in code using "
            "'voyageai.api_key = <API-KEY>'.",
        )
    if key.startswith(INVALID_KEY_PREFIX):
        # Echoed in full (Voyage does not) so tests can prove adapters scrub it.
        return error(401, f"Provided API key is invalid: {key}")
    body = request.json
    if not isinstance(body, dict):
        return error(400, "Request body is not valid JSON.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return error(400, "Request body is missing the 'model' field.")
    if model in MODELS:
        return MODELS[model]()
    if request.path_params["endpoint"] == "embeddings":
        reply = embeddings(body, model)
    else:
        reply = rerank(body, model)
    if model == "fake-slow":
        reply.delay = SLOW_SECONDS
    return reply


def embeddings(body: dict[str, Any], model: str) -> Reply:
    unknown = sorted(set(body) - EMBED_FIELDS)
    if unknown:
        return error(400, f"Unexpected field in the request body: '{unknown[0]}'.")
    inputs = body.get("input")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) for t in inputs):
        return error(400, "'input' must be a string or a non-empty list of strings.")
    if len(inputs) > MAX_TEXTS:
        return error(400, f"The batch size limit is {MAX_TEXTS}. Your batch size is {len(inputs)}.")
    input_type = body.get("input_type")
    if input_type not in (None, "query", "document"):
        return error(400, "'input_type' must be None, 'query' or 'document'.")
    data = [
        {"object": "embedding", "embedding": vector(text, i, input_type), "index": i}
        for i, text in reversed(list(enumerate(inputs)))
    ]
    reply: dict[str, Any] = {"object": "list", "data": data, "model": model}
    if model != "fake-nousage":
        reply["usage"] = {"total_tokens": TOKENS_PER_TEXT * len(inputs)}
    return Reply.json(reply)


def rerank(body: dict[str, Any], model: str) -> Reply:
    unknown = sorted(set(body) - RERANK_FIELDS)
    if unknown:
        return error(400, f"Unexpected field in the request body: '{unknown[0]}'.")
    query, documents = body.get("query"), body.get("documents")
    if not isinstance(query, str) or not query:
        return error(400, "'query' must be a non-empty string.")
    if (
        not isinstance(documents, list)
        or not documents
        or not all(isinstance(d, str) for d in documents)
    ):
        return error(400, "'documents' must be a non-empty list of strings.")
    top_k = body.get("top_k")
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        return error(400, "'top_k' must be a positive integer.")
    data = [
        {"relevance_score": relevance(query, doc), "index": i} for i, doc in enumerate(documents)
    ]
    data.sort(key=lambda item: -item["relevance_score"])
    reply: dict[str, Any] = {"object": "list", "data": data[:top_k], "model": model}
    if model != "fake-nousage":
        reply["usage"] = {"total_tokens": TOKENS_PER_TEXT * (len(documents) + 1)}
    return Reply.json(reply)
