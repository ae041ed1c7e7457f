"""Hugging Face Text Embeddings Inference (TEI): the "HuggingFace" factory's embeddings and
rerank. (Its chat goes to Text Generation Inference through the OpenAI family.)

Endpoints, relative to the user's base URL (the server's root; a trailing /v1, where TEI
serves its OpenAI-compatible routes, is dropped):
- POST embed: {"inputs": [...], "truncate": true} -> [[...], ...] in input order.
- POST rerank: {"query", "texts", "raw_scores": false, "truncate": true} -> [{"index",
  "score"}] sorted by score.
TEI serves one model, chosen when it starts, so requests name none. It reports no usage:
tokens are counted with tiktoken (estimated). Each request takes at most
`--max-client-batch-size` inputs (32 by default), and inputs longer than the model's
context are refused unless `truncate` is set. Authentication: `Authorization: Bearer <key>`
when the server runs with --api-key, nothing otherwise. Errors: {"error", "error_type"}.
"""

from __future__ import annotations

from typing import Any

from ..base import BaseAdapter, EmbeddingModel, RerankModel
from ..results import EmbeddingResult, RerankResult
from .jina import scores_in_input_order

MAX_CLIENT_BATCH_SIZE = 32


class TEIWire(BaseAdapter):
    """Not registered."""

    def resolve_base_url(self, given: str | None) -> str:
        return super().resolve_base_url(given).removesuffix("/v1")

    def post_json(self, path: str, body: dict[str, Any]) -> Any:
        key = self.credentials.key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return self._json(self._request("POST", path, headers=headers, json=body))


class TEIEmbedding(TEIWire, EmbeddingModel):
    factories = ("HuggingFace",)
    batch_size = MAX_CLIENT_BATCH_SIZE

    def _embed(self, texts: list[str], *, query: bool) -> EmbeddingResult:
        data = self.post_json("embed", {"inputs": texts, "truncate": True})
        if not isinstance(data, list):
            raise self._malformed("the embed response is not a list of vectors")
        try:
            vectors = [[float(x) for x in vector] for vector in data]
        except (TypeError, ValueError):
            raise self._malformed("an embedding is not a list of numbers") from None
        return EmbeddingResult(vectors, self.estimate_usage(texts))


class TEIRerank(TEIWire, RerankModel):
    factories = ("HuggingFace",)

    def _rerank(self, query: str, texts: list[str]) -> RerankResult:
        scores: list[float] = []
        for start in range(0, len(texts), MAX_CLIENT_BATCH_SIZE):
            batch = texts[start : start + MAX_CLIENT_BATCH_SIZE]
            body = {"query": query, "texts": batch, "raw_scores": False, "truncate": True}
            data = self.post_json("rerank", body)
            scores += scores_in_input_order(self, data, len(batch), score_key="score")
        return RerankResult(scores, self.estimate_usage(query, texts))
