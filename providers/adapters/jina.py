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

from ..base import BaseAdapter
from ..http import Request
from ..kinds.embedding import EmbeddingModel, RerankModel
from ..results import EmbeddingResult, RerankResult, Usage
from ..wire import mapping

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

    v1_factories = SELF_HOSTED_V1

    def reported_usage(self, data: Any) -> Usage | None:
        """Input tokens from any of the three shapes; None when absent or zero."""
        data = mapping(data)
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


class JinaEmbedding(JinaWire, EmbeddingModel, factories=("Jina",)):
    def embed_request(self, texts: list[str], *, query: bool) -> Request:
        body: dict[str, Any] = {"model": self.wire_model_name, "input": texts}
        if _TASK_MODEL.search(self.wire_model_name):
            body["task"] = "retrieval.query" if query else "retrieval.passage"
        return self.post("embeddings", json=body)

    def parse_embeddings(self, data: Any, texts: list[str]) -> EmbeddingResult:
        vectors = self.indexed_vectors(mapping(data).get("data"))
        return EmbeddingResult(vectors, self.reported_usage(data) or self.estimate_usage(texts))


class JinaRerank(JinaWire, RerankModel, factories=(*HOSTED_BASE_URLS, *SELF_HOSTED)):
    """Jina's /rerank, and every server that speaks it."""

    def rerank_request(self, query: str, texts: list[str]) -> Request:
        body = self.documents_body(query, texts)
        if self.factory == "Jina":
            body["return_documents"] = False  # Jina echoes every document by default
        elif self.factory == "Xinference":
            body["return_len"] = True  # without it Xinference reports no token counts
        return self.post("rerank", json=body)

    def parse_rerank(self, data: Any, query: str, texts: list[str]) -> RerankResult:
        scores = self.scores_in_input_order(mapping(data).get("results"), len(texts))
        usage = self.reported_usage(data) or self.estimate_usage(query, texts)
        return RerankResult(scores, usage)
