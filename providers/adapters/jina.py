"""The Jina protocol: embeddings and rerank, and the servers that speak Jina's /rerank.

Endpoints, relative to the base URL (https://api.jina.ai/v1 for Jina):
- POST embeddings: {"model", "input": [...], "task"?} -> {"data": [{"index", "embedding"}],
  "usage": {"total_tokens"}}. The v3 and v4 models embed passages and queries differently
  and are told which with `task` (retrieval.passage / retrieval.query); older models refuse it.
- POST rerank: {"model", "query", "documents", "top_n"} -> {"results": [{"index",
  "relevance_score"}] sorted by relevance, and the usage}.
Authentication: `Authorization: Bearer <key>`, left out when the key is empty (keyless
self-hosted servers). Errors: FastAPI's {"detail": "..." or [...]}.

The same /rerank is served by SiliconFlow (hosted) and by the self-hosted servers vLLM,
Xinference, LocalAI and GPUStack, under /v1 of the address users usually type; an
OpenAI-API-Compatible URL is taken as given. They report usage in one of three shapes:
{"usage": {"total_tokens"}} (Jina, vLLM, LocalAI, GPUStack), or Cohere's {"meta":
{"billed_units" | "tokens": {"input_tokens", "output_tokens"}}} (SiliconFlow, Xinference,
which fills `tokens` only when asked with `return_len`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..base import BaseAdapter, EmbeddingModel, RerankModel
from ..results import EmbeddingResult, RerankResult, Usage

HOSTED_BASE_URLS = {
    "Jina": "https://api.jina.ai/v1",
    "SILICONFLOW": "https://api.siliconflow.cn/v1",
}
# Self-hosted servers whose /rerank lives under /v1.
SELF_HOSTED_V1 = ("LocalAI", "VLLM", "Xinference", "GPUStack")
SELF_HOSTED = (*SELF_HOSTED_V1, "OpenAI-API-Compatible")
# Models with task-specific adapters (passage vs query).
_TASK_MODEL = re.compile(r"jina-embeddings-v[34]")


class JinaWire(BaseAdapter):
    """Addressing and authentication. Not registered."""

    base_urls = HOSTED_BASE_URLS

    def resolve_base_url(self, given: str | None) -> str:
        url = super().resolve_base_url(given)
        if self.factory in SELF_HOSTED_V1 and not url.endswith("/v1"):
            url += "/v1"
        return url

    def headers(self) -> dict[str, str]:
        key = self.credentials.key
        return {"Authorization": f"Bearer {key}"} if key else {}

    def post_json(self, path: str, body: dict[str, Any]) -> Any:
        return self._json(self._request("POST", path, headers=self.headers(), json=body))

    def reported_usage(self, data: Mapping[str, Any]) -> Usage | None:
        """Input tokens from any of the three shapes; None when absent or zero."""
        usage = data.get("usage")
        if isinstance(usage, Mapping):
            total = _count(usage.get("total_tokens")) or _count(usage.get("prompt_tokens"))
            if total:
                return Usage(prompt_tokens=total)
        meta = data.get("meta")
        if isinstance(meta, Mapping):
            for key in ("billed_units", "tokens"):
                counts = meta.get(key)
                # Only input tokens: a reranker generates nothing, and Xinference repeats
                # the input count as `output_tokens`.
                inputs = _count(counts.get("input_tokens")) if isinstance(counts, Mapping) else 0
                if inputs:
                    return Usage(prompt_tokens=inputs)
        return None


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return max(int(value), 0)


class JinaEmbedding(JinaWire, EmbeddingModel):
    factories = ("Jina",)

    def _embed(self, texts: list[str], *, query: bool) -> EmbeddingResult:
        body: dict[str, Any] = {"model": self.wire_model_name, "input": texts}
        if _TASK_MODEL.search(self.wire_model_name):
            body["task"] = "retrieval.query" if query else "retrieval.passage"
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


class JinaRerank(JinaWire, RerankModel):
    """Jina's /rerank, and every server that speaks it."""

    factories = (*HOSTED_BASE_URLS, *SELF_HOSTED)

    def rerank_body(self, query: str, texts: list[str]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.wire_model_name,
            "query": query,
            "documents": texts,
            "top_n": len(texts),
        }
        if self.factory == "Jina":
            body["return_documents"] = False  # Jina echoes every document by default
        elif self.factory == "Xinference":
            body["return_len"] = True  # without it Xinference reports no token counts
        return body

    def _rerank(self, query: str, texts: list[str]) -> RerankResult:
        data = self.post_json("rerank", self.rerank_body(query, texts))
        results = data.get("results") if isinstance(data, Mapping) else None
        scores = scores_in_input_order(self, results, len(texts))
        usage = self.reported_usage(data) or self.estimate_usage(query, texts)
        return RerankResult(scores, usage)


def scores_in_input_order(
    adapter: BaseAdapter, results: Any, count: int, score_key: str = "relevance_score"
) -> list[float]:
    """Place each result's score at its input index; results come sorted by relevance."""
    if not isinstance(results, list):
        raise adapter._malformed("the rerank response has no results list")
    scores: list[float | None] = [None] * count
    for item in results:
        try:
            index, score = item["index"], float(item[score_key])
        except (KeyError, TypeError, ValueError):
            raise adapter._malformed(f"a rerank result lacks index or {score_key}") from None
        if not isinstance(index, int) or not 0 <= index < count:
            raise adapter._malformed(f"rerank result index {index!r} is out of range")
        scores[index] = score
    if None in scores:
        raise adapter._malformed(f"no score for text {scores.index(None)}")
    return [score for score in scores if score is not None]
