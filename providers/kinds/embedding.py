"""Embedding and rerank models.

An embedding family describes `embed_request(texts, query=...)` and `parse_embeddings(data,
texts)`; a rerank family `rerank_request(query, texts)` and `parse_rerank(data, query,
texts)`. `encode()` batches texts by the provider's limit and sums the usage; `similarity()`
returns one score per text, in input order. Each call is one flow (`encode_flow`,
`rerank_all_flow`) that providers.runner performs in the calling thread or, for `aencode()` /
`asimilarity()`, on the event loop. Families whose exchange is not one request per batch
override `embed_flow` / `rerank_flow`.

`dimensions` (an adapter option, as OpenAI's API names it) asks for shorter vectors from the
families that can give them (`supports_dimensions`); the others refuse it before any request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ..base import BaseAdapter
from ..errors import InvalidRequestError
from ..http import Request
from ..results import EmbeddingResult, RerankResult, Usage
from ..runner import Flow, arun, run
from ..types import ModelType


class EmbeddingModel(BaseAdapter):
    model_type = ModelType.EMBEDDING
    # Texts per request; providers cap it (DashScope at 10, for one).
    batch_size: ClassVar[int] = 16
    batch_sizes: ClassVar[Mapping[str, int]] = {}

    # Families whose API can shorten vectors take the `dimensions` option.
    supports_dimensions: ClassVar[bool] = False

    def encode(self, texts: list[str]) -> EmbeddingResult:
        return run(self.encode_flow(texts))

    async def aencode(self, texts: list[str]) -> EmbeddingResult:
        return await arun(self.encode_flow(texts))

    def encode_queries(self, text: str) -> EmbeddingResult:
        return run(self.encode_flow([text], query=True))

    def encode_flow(self, texts: list[str], *, query: bool = False) -> Flow[EmbeddingResult]:
        """The texts' vectors, in batches of the provider's size, usage summed."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a list of texts; use encode_queries() for one query")
        if self.options.get("dimensions") is not None and not self.supports_dimensions:
            raise self.context.error(
                InvalidRequestError, f"{self.factory} embeddings do not take `dimensions`"
            )
        texts = list(texts)
        size = self.batch_sizes.get(self.factory, self.batch_size)
        vectors: list[list[float]] = []
        usage = Usage.zero()
        for start in range(0, len(texts), size):
            batch = yield from self.embed_flow(texts[start : start + size], query=query)
            vectors.extend(batch.vectors)
            usage += batch.usage
        self._check_count(len(vectors), len(texts))
        return EmbeddingResult(vectors, usage)

    # --- the description ---

    def embed_request(self, texts: list[str], *, query: bool) -> Request:
        raise NotImplementedError

    def parse_embeddings(self, data: Any, texts: list[str]) -> EmbeddingResult:
        raise NotImplementedError

    def embed_flow(self, texts: list[str], *, query: bool) -> Flow[EmbeddingResult]:
        response = yield from self.fetch(self.embed_request(texts, query=query))
        return self.parse_embeddings(self.json_of(response), texts)

    # --- helpers ---

    def estimate_usage(self, texts: list[str]) -> Usage:
        return Usage(sum(self.count_tokens(text) for text in texts), estimated=True)

    def vectors(self, items: Any) -> list[list[float]]:
        """Lists of numbers as vectors."""
        try:
            return [[float(x) for x in vector] for vector in items]
        except (TypeError, ValueError):
            raise self.malformed("an embedding is not a list of numbers") from None

    def indexed_vectors(self, items: Any) -> list[list[float]]:
        """The vectors of OpenAI-shaped items ([{"index", "embedding"}]) in input order:
        `index` says which input each belongs to; the answer's order is not guaranteed."""
        if not isinstance(items, list):
            raise self.malformed("the embeddings response has no data list")
        try:
            ordered = sorted(items, key=lambda item: item.get("index", 0))
            return [[float(x) for x in item["embedding"]] for item in ordered]
        except (AttributeError, KeyError, TypeError, ValueError):
            raise self.malformed("an embedding is missing or not a list of numbers") from None

    def _check_count(self, got: int, expected: int) -> None:
        if got != expected:
            raise self.malformed(f"{got} vectors for {expected} texts")


class RerankModel(BaseAdapter):
    model_type = ModelType.RERANK

    def similarity(self, query: str, texts: list[str]) -> RerankResult:
        return run(self.rerank_all_flow(query, texts))

    async def asimilarity(self, query: str, texts: list[str]) -> RerankResult:
        return await arun(self.rerank_all_flow(query, texts))

    def rerank_all_flow(self, query: str, texts: list[str]) -> Flow[RerankResult]:
        """One score per text, in input order (none asked: no request)."""
        texts = list(texts)
        if not texts:
            return RerankResult([], Usage.zero())
        result = yield from self.rerank_flow(query, texts)
        if len(result.scores) != len(texts):
            raise self.malformed(f"{len(result.scores)} scores for {len(texts)} texts")
        return result

    # --- the description ---

    def rerank_request(self, query: str, texts: list[str]) -> Request:
        raise NotImplementedError

    def parse_rerank(self, data: Any, query: str, texts: list[str]) -> RerankResult:
        """Scores in input order (providers return them sorted by relevance: re-order)."""
        raise NotImplementedError

    def rerank_flow(self, query: str, texts: list[str]) -> Flow[RerankResult]:
        response = yield from self.fetch(self.rerank_request(query, texts))
        return self.parse_rerank(self.json_of(response), query, texts)

    # --- helpers ---

    def documents_body(self, query: str, texts: list[str]) -> dict[str, Any]:
        """The body most rerank APIs take: Cohere's, which Jina and the servers speaking
        Jina's /rerank copied. Every text is scored (top_n is all of them)."""
        return {
            "model": self.wire_model_name,
            "query": query,
            "documents": texts,
            "top_n": len(texts),
        }

    def estimate_usage(self, query: str, texts: list[str]) -> Usage:
        tokens = self.count_tokens(query) * len(texts) + sum(map(self.count_tokens, texts))
        return Usage(tokens, estimated=True)

    def scores_in_input_order(
        self, results: Any, count: int, score_key: str = "relevance_score"
    ) -> list[float]:
        """Each result's score placed at its input `index` (results come sorted by relevance)."""
        if not isinstance(results, list):
            raise self.malformed("the rerank response has no results list")
        scores: list[float | None] = [None] * count
        for item in results:
            try:
                index, score = item["index"], float(item[score_key])
            except (KeyError, TypeError, ValueError):
                raise self.malformed(f"a rerank result lacks index or {score_key}") from None
            if not isinstance(index, int) or not 0 <= index < count:
                raise self.malformed(f"rerank result index {index!r} is out of range")
            scores[index] = score
        if None in scores:
            raise self.malformed(f"no score for text {scores.index(None)}")
        return [score for score in scores if score is not None]
