"""Voyage AI: embeddings and rerank.

Endpoints, relative to https://api.voyageai.com/v1:
- POST embeddings: {"input": [...], "model", "input_type": "document" | "query"} ->
  {"data": [{"index", "embedding"}], "usage": {"total_tokens"}}. Voyage prepends a
  retrieval prompt chosen by `input_type`, so passages and queries are embedded apart.
- POST rerank: {"query", "documents", "model", "top_k"} -> {"data": [{"index",
  "relevance_score"}] sorted by relevance, "usage": {"total_tokens"}}.
Authentication: `Authorization: Bearer <key>`. Errors: {"detail": "..."}.
"""

from __future__ import annotations

from typing import Any

from ..base import BaseAdapter
from ..http import Request
from ..kinds.embedding import EmbeddingModel, RerankModel
from ..results import EmbeddingResult, RerankResult, Usage
from ..wire import dig, mapping


class VoyageWire(BaseAdapter):
    """Not registered."""

    default_base_url = "https://api.voyageai.com/v1"

    def reported_usage(self, data: Any) -> Usage | None:
        total = dig(data, "usage", "total_tokens")
        if isinstance(total, int) and not isinstance(total, bool) and total > 0:
            return Usage(prompt_tokens=total)
        return None


class VoyageEmbedding(VoyageWire, EmbeddingModel, factories=("Voyage AI",)):
    # Voyage takes up to 1000 texts but also caps the tokens of one request (120K for its
    # large models): 64 chunks of a few hundred tokens stay well under both.
    batch_size = 64

    def embed_request(self, texts: list[str], *, query: bool) -> Request:
        body = {
            "input": texts,
            "model": self.wire_model_name,
            "input_type": "query" if query else "document",
        }
        return self.post("embeddings", json=body)

    def parse_embeddings(self, data: Any, texts: list[str]) -> EmbeddingResult:
        vectors = self.indexed_vectors(mapping(data).get("data"))
        return EmbeddingResult(vectors, self.reported_usage(data) or self.estimate_usage(texts))


class VoyageRerank(VoyageWire, RerankModel, factories=("Voyage AI",)):
    def rerank_request(self, query: str, texts: list[str]) -> Request:
        body = {
            "query": query,
            "documents": texts,
            "model": self.wire_model_name,
            "top_k": len(texts),
        }
        return self.post("rerank", json=body)

    def parse_rerank(self, data: Any, query: str, texts: list[str]) -> RerankResult:
        scores = self.scores_in_input_order(mapping(data).get("data"), len(texts))
        usage = self.reported_usage(data) or self.estimate_usage(query, texts)
        return RerankResult(scores, usage)
