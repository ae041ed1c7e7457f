"""The Jina protocol on the fake provider, and the servers that speak Jina's /rerank.

Roots (point an adapter's base URL at them):
- /jina/v1/{embeddings,rerank}   hosted Jina: `Authorization: Bearer <key>` required; errors
                                  are FastAPI's {"detail": ...}; usage {"total_tokens"}.
- /siliconflow/v1/rerank         hosted SiliconFlow: Bearer required; usage in Cohere's
                                  {"meta": {"billed_units", "tokens"}}.
- /selfhosted/v1/rerank and /selfhosted/rerank
                                  a vLLM-like server (vLLM serves both paths): keyless (a given
                                  key must be Bearer); vLLM's usage and error shapes.
- /xinference/v1/rerank          Xinference: keyless; reports tokens in "meta" only when asked
                                  with `return_len`.
Behaviour is chosen by the key or the model name (see MODELS); anything else gets a normal
reply. Results come back sorted by relevance, so clients must place scores by `index`.
"""

from __future__ import annotations

from typing import Any

from .server import FakeProviderServer, RecordedRequest, Reply

TOKENS_PER_TEXT = 4
JINA_TASKS = {
    "retrieval.query",
    "retrieval.passage",
    "text-matching",
    "classification",
    "separation",
    "code.query",
    "code.passage",
}
TASK_MODELS = ("jina-embeddings-v3", "jina-embeddings-v4")
EMBED_FIELDS = {
    "model",
    "input",
    "task",
    "dimensions",
    "embedding_type",
    "normalized",
    "late_chunking",
    "truncate",
}
RERANK_FIELDS = {"model", "query", "documents", "top_n", "return_documents"}
# What each server's rerank accepts on top of the common fields.
EXTRA_RERANK_FIELDS = {
    "jina": {"truncation"},
    "siliconflow": {"max_chunks_per_doc", "overlap_tokens", "instruction"},
    "selfhosted": {"truncate_prompt_tokens", "user"},
    "xinference": {"return_len", "max_chunks_per_doc", "kwargs"},
}
INVALID_KEY_PREFIX = "sk-invalid"
SLOW_SECONDS = 2.0


def register(server: FakeProviderServer) -> None:
    server.route("POST", r"/(?P<root>jina)/v1/(?P<endpoint>embeddings|rerank)", handle)
    server.route("POST", r"/(?P<root>siliconflow|xinference)/v1/(?P<endpoint>rerank)", handle)
    server.route("POST", r"/(?P<root>selfhosted)(?:/v1)?/(?P<endpoint>rerank)", handle)


def relevance(query: str, document: str) -> float:
    """The fake's score: shared words, damped by the document's length."""
    shared = len(set(query.lower().split()) & set(document.lower().split()))
    return round((shared + 1) / (len(document.split()) + 2), 6)


def vector(text: str, index: int, task: str | None) -> list[float]:
    return [len(text) / 10, -0.5 if task == "retrieval.query" else 0.5, float(index)]


# --- errors, in each server's shape --------------------------------------------------------------


def error(root: str, status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    if root == "siliconflow":
        body: dict[str, Any] = {"code": 20000 + status, "message": message, "data": None}
    elif root == "selfhosted":
        body = {"object": "error", "message": message, "type": "BadRequestError", "code": status}
    else:  # FastAPI: Jina, Xinference
        body = {"detail": message}
    return Reply.json(body, status=status, headers=headers)


def missing_field(root: str, field: str, body: Any) -> Reply:
    if root in ("jina", "xinference"):
        detail = [
            {"type": "missing", "loc": ["body", field], "msg": "Field required", "input": body}
        ]
        return Reply.json({"detail": detail}, status=422)
    return error(root, 400, f"{field} is required")


def check_auth(request: RecordedRequest, root: str) -> Reply | None:
    header = request.headers.get("authorization")
    key = request.bearer
    if header is not None and key is None:
        return error(root, 401, "Invalid authorization header")
    if key is None and root in ("jina", "siliconflow"):
        return error(root, 401, "No API key provided. Provide it as Authorization: Bearer.")
    if key and key.startswith(INVALID_KEY_PREFIX):
        # Echoed in full (the real services do not) so tests can prove adapters scrub it.
        return error(root, 401, f"Invalid API key: {key}")
    return None


MODELS = {
    "fake-429": lambda root: error(
        root, 429, "Rate limit exceeded. Please try again later.", {"Retry-After": "2"}
    ),
    "fake-500": lambda root: error(root, 500, "Internal Server Error"),
    "missing-model": lambda root: error(root, 404, "The model `missing-model` does not exist."),
    "fake-malformed": lambda root: Reply.raw(b'{"results": [{"index": 0, "relev'),
}


def handle(request: RecordedRequest) -> Reply:
    root = request.path_params["root"]
    rejected = check_auth(request, root)
    if rejected is not None:
        return rejected
    body = request.json
    if not isinstance(body, dict):
        return error(root, 400, "The body is not a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return missing_field(root, "model", body)
    if model in MODELS:
        return MODELS[model](root)
    if request.path_params["endpoint"] == "embeddings":
        reply = embeddings(body, model)
    else:
        reply = rerank(root, body, model)
    if model == "fake-slow":
        reply.delay = SLOW_SECONDS
    return reply


# --- Jina embeddings -----------------------------------------------------------------------------


def embeddings(body: dict[str, Any], model: str) -> Reply:
    unknown = sorted(set(body) - EMBED_FIELDS)
    if unknown:
        return error("jina", 400, f"Unknown field: {unknown[0]}")
    inputs = body.get("input")
    if inputs is None:
        return missing_field("jina", "input", body)
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) for t in inputs):
        return error("jina", 400, "input must be a string or a non-empty list of strings")
    task = body.get("task")
    if task is not None:
        if not model.startswith(TASK_MODELS):
            return error("jina", 400, f"Model {model} does not support the task parameter")
        if task not in JINA_TASKS:
            return error("jina", 422, f"Invalid task: {task}")
    # Reverse order: clients must place vectors by `index`.
    data = [
        {"object": "embedding", "index": i, "embedding": vector(text, i, task)}
        for i, text in reversed(list(enumerate(inputs)))
    ]
    reply: dict[str, Any] = {"model": model, "object": "list", "data": data}
    if model != "fake-nousage":
        tokens = TOKENS_PER_TEXT * len(inputs)
        reply["usage"] = {"total_tokens": tokens, "prompt_tokens": tokens}
    return Reply.json(reply)


# --- rerank --------------------------------------------------------------------------------------


def rerank(root: str, body: dict[str, Any], model: str) -> Reply:
    unknown = sorted(set(body) - RERANK_FIELDS - EXTRA_RERANK_FIELDS[root])
    if unknown:
        return error(root, 400, f"Unknown field: {unknown[0]}")
    for field in ("query", "documents"):
        if field not in body:
            return missing_field(root, field, body)
    query, documents = body["query"], body["documents"]
    if not isinstance(query, str) or not query:
        return error(root, 400, "query must be a non-empty string")
    if (
        not isinstance(documents, list)
        or not documents
        or not all(isinstance(d, str) for d in documents)
    ):
        return error(root, 400, "documents must be a non-empty list of strings")
    top_n = body.get("top_n") or len(documents)
    if not isinstance(top_n, int) or top_n < 1:
        return error(root, 400, "top_n must be a positive integer")
    results = []
    for index, document in enumerate(documents):
        item: dict[str, Any] = {"index": index, "relevance_score": relevance(query, document)}
        if body.get("return_documents", root != "siliconflow"):
            item["document"] = {"text": document}
        results.append(item)
    results.sort(key=lambda item: -item["relevance_score"])
    results = results[:top_n]
    tokens = TOKENS_PER_TEXT * (len(documents) + 1)
    reply: dict[str, Any] = {"model": model, "results": results}
    if model == "fake-nousage":
        pass
    elif root == "siliconflow":
        reply["id"] = "fake-siliconflow-rerank"
        reply["meta"] = {
            "billed_units": {"input_tokens": tokens, "output_tokens": 0, "search_units": 0},
            "tokens": {"input_tokens": tokens, "output_tokens": 0},
        }
    elif root == "xinference":
        counted = body.get("return_len") is True
        reply["id"] = "fake-xinference-rerank"
        reply["meta"] = {
            "api_version": None,
            "billed_units": None,
            "tokens": {"input_tokens": tokens, "output_tokens": tokens} if counted else None,
            "warnings": None,
        }
    else:
        reply["usage"] = {"total_tokens": tokens}
        if root == "selfhosted":
            reply["id"] = "rerank-fake"
    return Reply.json(reply)
