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

from collections.abc import Mapping
from typing import Any

from ..base import BaseAdapter, EmbeddingModel, RerankModel
from ..results import EmbeddingResult, RerankResult, Usage
from .jina import scores_in_input_order


class VoyageWire(BaseAdapter):
    """Not registered."""

    default_base_url = "https://api.voyageai.com/v1"

    def post_json(self, path: str, body: dict[str, Any]) -> Any:
        key = self.credentials.key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return self._json(self._request("POST", path, headers=headers, json=body))

    def reported_usage(self, data: Any) -> Usage | None:
        usage = data.get("usage") if isinstance(data, Mapping) else None
        total = usage.get("total_tokens") if isinstance(usage, Mapping) else None
        if isinstance(total, int) and not isinstance(total, bool) and total > 0:
            return Usage(prompt_tokens=total)
        return None


class VoyageEmbedding(VoyageWire, EmbeddingModel):
    factories = ("Voyage AI",)
    # Voyage takes up to 1000 texts but also caps the tokens of one request (120K for its
    # large models): 64 chunks of a few hundred tokens stay well under both.
    batch_size = 64

    def _embed(self, texts: list[str], *, query: bool) -> EmbeddingResult:
        body = {
            "input": texts,
            "model": self.wire_model_name,
            "input_type": "query" if query else "document",
        }
        data = self.post_json("embeddings", body)
        items = data.get("data") if isinstance(data, Mapping) else None
        if not isinstance(items, list):
            raise self._malformed("the embeddings response has no data list")
        try:
            ordered = sorted(items, key=lambda item: item.get("index", 0))
            vectors = [[float(x) for x in item["embedding"]] for item in ordered]
        except (AttributeError, KeyError, TypeError, ValueError):
            raise self._malformed("an embedding is missing or not a list of numbers") from None
        return EmbeddingResult(vectors, self.reported_usage(data) or self.estimate_usage(texts))


class VoyageRerank(VoyageWire, RerankModel):
    factories = ("Voyage AI",)

    def _rerank(self, query: str, texts: list[str]) -> RerankResult:
        body = {
            "query": query,
            "documents": texts,
            "model": self.wire_model_name,
            "top_k": len(texts),
        }
        data = self.post_json("rerank", body)
        results = data.get("data") if isinstance(data, Mapping) else None
        scores = scores_in_input_order(self, results, len(texts))
        usage = self.reported_usage(data) or self.estimate_usage(query, texts)
        return RerankResult(scores, usage)
