"""Hugging Face Text Embeddings Inference (TEI) on the fake provider.

Roots:
- /tei/{embed,rerank}          a server started without --api-key: no key needed (a given one
                                must be Bearer);
- /tei-secured/{embed,rerank}  a server started with `--api-key SECURED_KEY`: anything else
                                gets TEI's bare 401.
Errors are TEI's {"error", "error_type"}; a batch above MAX_CLIENT_BATCH_SIZE gets a 413, as
from a server with the default --max-client-batch-size. TEI serves one model and reports no
usage. Rerank results come back sorted by score: clients must place them by `index`.
"""

from __future__ import annotations

import hmac
from typing import Any

from .server import FakeProviderServer, RecordedRequest, Reply

SECURED_KEY = "hf-tei-secret-0123456789"
MAX_CLIENT_BATCH_SIZE = 32
EMBED_FIELDS = {"inputs", "truncate", "truncation_direction", "normalize", "prompt_name"}
RERANK_FIELDS = {"query", "texts", "raw_scores", "return_text", "truncate", "truncation_direction"}
SLOW_QUERY = "fake slow query"


def register(server: FakeProviderServer) -> None:
    server.route("POST", r"/(?P<root>tei|tei-secured)/(?P<endpoint>embed|rerank)", handle)


def error(status: int, message: str, error_type: str = "Validation") -> Reply:
    return Reply.json({"error": message, "error_type": error_type}, status=status)


def relevance(query: str, text: str) -> float:
    """The fake's score: shared words, damped by the text's length."""
    shared = len(set(query.lower().split()) & set(text.lower().split()))
    return round((shared + 1) / (len(text.split()) + 2), 6)


def vector(text: str) -> list[float]:
    return [len(text) / 10, 0.25, float(len(text.split()))]


def handle(request: RecordedRequest) -> Reply:
    header = request.headers.get("authorization")
    key = request.bearer
    if request.path_params["root"] == "tei-secured":
        if key is None or not hmac.compare_digest(key, SECURED_KEY):
            return Reply(status=401)  # TEI's auth layer answers with no body
    elif header is not None and key is None:
        return Reply(status=401)
    body = request.json
    if not isinstance(body, dict):
        return error(422, "Failed to parse the request body as JSON")
    endpoint = request.path_params["endpoint"]
    return embed(body) if endpoint == "embed" else rerank(body)


def check_batch(items: Any, name: str) -> Reply | None:
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        return error(422, f"`{name}` must be a string or a list of strings")
    if not items:
        return error(422, f"`{name}` cannot be empty", "Empty")
    if len(items) > MAX_CLIENT_BATCH_SIZE:
        return error(
            413,
            f"batch size {len(items)} > maximum allowed batch size {MAX_CLIENT_BATCH_SIZE}",
        )
    return None


def embed(body: dict[str, Any]) -> Reply:
    unknown = sorted(set(body) - EMBED_FIELDS)
    if unknown:
        return error(422, f"unknown field `{unknown[0]}`")
    inputs = body.get("inputs")
    if isinstance(inputs, str):
        inputs = [inputs]
    rejected = check_batch(inputs, "inputs")
    if rejected is not None:
        return rejected
    return Reply.json([vector(text) for text in inputs])


def rerank(body: dict[str, Any]) -> Reply:
    unknown = sorted(set(body) - RERANK_FIELDS)
    if unknown:
        return error(422, f"unknown field `{unknown[0]}`")
    query, texts = body.get("query"), body.get("texts")
    if not isinstance(query, str):
        return error(422, "missing field `query`")
    rejected = check_batch(texts, "texts")
    if rejected is not None:
        return rejected
    if not isinstance(body.get("raw_scores", False), bool):
        return error(422, "`raw_scores` must be a boolean")
    scores = [{"index": i, "score": relevance(query, text)} for i, text in enumerate(texts)]
    scores.sort(key=lambda item: -item["score"])
    reply = Reply.json(scores)
    if query == SLOW_QUERY:
        reply.delay = 2.0
    return reply
