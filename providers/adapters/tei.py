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

from ..base import BaseAdapter
from ..http import Request
from ..kinds.embedding import EmbeddingModel, RerankModel
from ..results import EmbeddingResult, RerankResult
from ..runner import Flow

MAX_CLIENT_BATCH_SIZE = 32


class TEIWire(BaseAdapter):
    """Not registered."""

    def resolve_base_url(self, given: str | None) -> str:
        return super().resolve_base_url(given).removesuffix("/v1")


class TEIEmbedding(TEIWire, EmbeddingModel, factories=("HuggingFace",)):
    batch_size = MAX_CLIENT_BATCH_SIZE

    def embed_request(self, texts: list[str], *, query: bool) -> Request:
        return self.post("embed", json={"inputs": texts, "truncate": True})

    def parse_embeddings(self, data: Any, texts: list[str]) -> EmbeddingResult:
        if not isinstance(data, list):
            raise self.malformed("the embed response is not a list of vectors")
        return EmbeddingResult(self.vectors(data), self.estimate_usage(texts))


class TEIRerank(TEIWire, RerankModel, factories=("HuggingFace",)):
    def rerank_request(self, query: str, texts: list[str]) -> Request:
        body = {"query": query, "texts": texts, "raw_scores": False, "truncate": True}
        return self.post("rerank", json=body)

    def rerank_flow(self, query: str, texts: list[str]) -> Flow[RerankResult]:
        # One request per batch the server takes.
        scores: list[float] = []
        for start in range(0, len(texts), MAX_CLIENT_BATCH_SIZE):
            batch = texts[start : start + MAX_CLIENT_BATCH_SIZE]
            response = yield from self.fetch(self.rerank_request(query, batch))
            data = self.json_of(response)
            scores += self.scores_in_input_order(data, len(batch), score_key="score")
        return RerankResult(scores, self.estimate_usage(query, texts))
