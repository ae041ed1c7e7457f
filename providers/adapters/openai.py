"""The OpenAI wire protocol, and every factory that speaks it.

Endpoints, relative to the factory's base URL:
- POST chat/completions: chat and vision (images as `image_url` data-URL parts); streamed as
  SSE `data: {chunk}` lines ending with `data: [DONE]`; with
  `stream_options: {"include_usage": true}` the last chunk before [DONE] carries the usage of
  the whole request and no choices.
- POST embeddings: {"model", "input": [...]} -> {"data": [{"index", "embedding"}], "usage"}.
- POST audio/transcriptions: multipart (file, model, response_format=json[, language]) ->
  {"text", "usage"?}; gpt-4o-transcribe reports token usage, whisper-1 does not.
- POST audio/speech: {"model", "input", "voice", "response_format"} -> audio bytes, streamed.
Authentication: `Authorization: Bearer <key>`, left out when the key is empty (keyless
self-hosted servers).
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Mapping
from typing import Any

from ..base import BaseAdapter
from ..http import Request
from ..kinds.audio import Speech2TextModel, TTSModel
from ..kinds.chat import ChatModel, ChatRequest, Image2TextModel, StreamStep
from ..kinds.embedding import EmbeddingModel
from ..results import ChatResult, EmbeddingResult, TranscriptionResult, Usage
from ..sse import SSEEvent
from ..streams import StreamDelta
from ..tokens import reported_usage
from ..wire import content_text, dig, mapping

HOSTED_BASE_URLS = {
    "OpenAI": "https://api.openai.com/v1",
    "DeepSeek": "https://api.deepseek.com/v1",
    "Moonshot": "https://api.moonshot.ai/v1",
    "xAI": "https://api.x.ai/v1",
    "Groq": "https://api.groq.com/openai/v1",
    "Mistral": "https://api.mistral.ai/v1",
    "SILICONFLOW": "https://api.siliconflow.cn/v1",
    "OpenRouter": "https://openrouter.ai/api/v1",
    "TogetherAI": "https://api.together.xyz/v1",
    "NVIDIA": "https://integrate.api.nvidia.com/v1",
    "DeepInfra": "https://api.deepinfra.com/v1/openai",
    "Perplexity": "https://api.perplexity.ai",
    "ZHIPU-AI": "https://open.bigmodel.cn/api/paas/v4",
    "Tongyi-Qianwen": "https://dashscope.aliyuncs.com/compatible-mode/v1",
    "VolcEngine": "https://ark.cn-beijing.volces.com/api/v3",
    "StepFun": "https://api.stepfun.com/v1",
    "MiniMax": "https://api.minimax.io/v1",
}

# Self-hosted: the user gives the base URL. These servers answer the OpenAI API under /v1 of
# the address users usually type (http://host:11434), so /v1 is added when missing;
# OpenAI-API-Compatible URLs are taken as given, since its path is whatever the server uses.
# (Ollama is served by its native API, providers/adapters/ollama.py.)
SELF_HOSTED_V1 = ("LocalAI", "VLLM", "LM-Studio", "Xinference", "GPUStack", "HuggingFace")
SELF_HOSTED = (*SELF_HOSTED_V1, "OpenAI-API-Compatible")

CHAT_FACTORIES = (*HOSTED_BASE_URLS, *SELF_HOSTED)
IMAGE2TEXT_FACTORIES = (
    "OpenAI",
    "Moonshot",
    "xAI",
    "Mistral",
    "OpenRouter",
    "ZHIPU-AI",
    "Tongyi-Qianwen",
    "StepFun",
    "VLLM",
    "Xinference",
    "LM-Studio",
    "OpenAI-API-Compatible",
)
EMBEDDING_FACTORIES = (  # NVIDIA has its own class below, HuggingFace embeds with TEI (tei.py)
    "OpenAI",
    "Mistral",
    "SILICONFLOW",
    "TogetherAI",
    "DeepInfra",
    "ZHIPU-AI",
    "Tongyi-Qianwen",
    "VolcEngine",
    *(factory for factory in SELF_HOSTED if factory != "HuggingFace"),
)
SPEECH2TEXT_FACTORIES = ("OpenAI", "Groq", "Xinference", "GPUStack", "OpenAI-API-Compatible")
TTS_FACTORIES = ("OpenAI", "Xinference", "GPUStack", "OpenAI-API-Compatible")

# The generation options the chat API takes. RAGFlow's gen_conf carries others (e.g. its
# own flags), which the API would reject as unknown parameters.
GEN_CONF_KEYS = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "presence_penalty",
        "frequency_penalty",
        "seed",
        "response_format",
        "tool_choice",
        "parallel_tool_calls",
        "logit_bias",
        "user",
        "reasoning_effort",
    }
)
# OpenAI's reasoning models refuse `max_tokens` and sampling options.
_REASONING_MODEL = re.compile(r"^(o\d+|gpt-5)(?!.*-chat)")
_SAMPLING_KEYS = ("temperature", "top_p", "presence_penalty", "frequency_penalty", "logit_bias")


class OpenAIWire(BaseAdapter):
    """Addressing and authentication shared by every OpenAI endpoint. Not registered."""

    base_urls = HOSTED_BASE_URLS

    v1_factories = SELF_HOSTED_V1

    @property
    def api_key(self) -> str:
        if self.factory == "VolcEngine":
            return self.credentials.get("ark_api_key") or self.credentials.key
        return self.credentials.key

    @property
    def wire_model_name(self) -> str:
        # VolcEngine (Ark) calls an inference endpoint, not a model, by its id.
        if self.factory == "VolcEngine":
            endpoint = self.credentials.get("endpoint_id") or self.credentials.get("ep_id")
            if endpoint:
                return endpoint
        return super().wire_model_name

    def headers(self) -> dict[str, str]:
        key = self.api_key
        return {"Authorization": f"Bearer {key}"} if key else {}

    def endpoint_path(self, endpoint: str) -> str:
        return endpoint

    def query_params(self) -> dict[str, str] | None:
        return None

    def body_model(self) -> str | None:
        """The `model` of request bodies (None: the URL selects the model)."""
        return self.wire_model_name

    def post(self, path: str, **options: Any) -> Request:
        return super().post(self.endpoint_path(path), params=self.query_params(), **options)

    def with_model(self, body: dict[str, Any]) -> dict[str, Any]:
        model = self.body_model()
        return {"model": model, **body} if model is not None else body


# --- chat ----------------------------------------------------------------------------------------


class OpenAIChatWire(OpenAIWire):
    """chat/completions, for chat and vision adapters alike. Not registered."""

    # A clean end of the body without [DONE] or a finish reason: the provider (or a proxy)
    # stopped mid-answer.
    stream_end_marker = "[DONE]"

    def stream_usage_supported(self) -> bool:
        return True

    def gen_conf(self, gen_conf: Mapping[str, Any]) -> dict[str, Any]:
        options = {key: value for key, value in gen_conf.items() if key in GEN_CONF_KEYS}
        if self.factory in ("OpenAI", "Azure-OpenAI") and _REASONING_MODEL.match(
            self.wire_model_name.lower()
        ):
            if "max_tokens" in options:
                options.setdefault("max_completion_tokens", options.pop("max_tokens"))
            for key in _SAMPLING_KEYS:
                options.pop(key, None)
        return options

    def extra_body(self) -> dict[str, Any]:
        if self.factory == "OpenRouter":
            # Stored as {"api_key", "provider_order": "a,b" or ["a", "b"]}.
            order = self.credentials.get("provider_order")
            if isinstance(order, str):
                order = [name.strip() for name in order.split(",") if name.strip()]
            if order:
                return {"provider": {"order": list(order)}}
        return {}

    def chat_request(self, request: ChatRequest, *, stream: bool) -> Request:
        body = self.with_model({"messages": request.messages()})
        body.update(self.gen_conf(request.gen_conf))
        if request.tools:
            body["tools"] = request.tools
        body.update(self.extra_body())
        if stream:
            body["stream"] = True
            if self.stream_usage_supported():
                body["stream_options"] = {"include_usage": True}
        return self.post("chat/completions", json=body)

    def parse_chat(self, data: Any, request: ChatRequest) -> ChatResult:
        if not isinstance(data, Mapping):
            raise self.malformed("the completion is not a JSON object")
        if data.get("error"):  # some compatible servers answer 200 with an error body
            raise self.context.classify(None, data)
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
            raise self.malformed("the completion has no choices")
        choice = choices[0]
        message = choice.get("message") or {}
        text = content_text(message.get("content"))
        tool_calls = message.get("tool_calls") or None
        usage = reported_usage(data)
        finish = choice.get("finish_reason")
        return self.chat_result(request, text, usage, tool_calls, finish)

    def stream_step(self, event: SSEEvent) -> StreamStep:
        if event.is_done:
            return StreamStep(complete=True, stop=True)
        delta = self.parse_chunk(event)
        # The finish reason completes the answer; a usage chunk may still follow it.
        return StreamStep((delta,), complete=bool(delta.finish_reason))

    def parse_chunk(self, event: SSEEvent) -> StreamDelta:
        chunk = self.stream_object(event.data)
        if chunk.get("error"):
            raise self.context.classify(None, chunk)
        # Groq reported streamed usage under x_groq before it supported stream_options.
        usage_block = chunk.get("usage") or dig(chunk, "x_groq", "usage")
        choices = chunk.get("choices") or []
        choice = mapping(choices[0]) if choices else {}
        delta = mapping(choice.get("delta"))
        return StreamDelta(
            text=content_text(delta.get("content")),
            usage=reported_usage({"usage": usage_block}) if usage_block else None,
            finish_reason=choice.get("finish_reason"),
            tool_calls=delta.get("tool_calls") or None,
        )


class OpenAIChat(OpenAIChatWire, ChatModel, factories=CHAT_FACTORIES): ...


class OpenAIImage2Text(OpenAIChatWire, Image2TextModel, factories=IMAGE2TEXT_FACTORIES): ...


# --- embeddings ----------------------------------------------------------------------------------


class OpenAIEmbedding(OpenAIWire, EmbeddingModel, factories=EMBEDDING_FACTORIES):
    batch_sizes = {"Tongyi-Qianwen": 10}  # DashScope's compatible mode takes 10 inputs at most
    supports_dimensions = True

    def embedding_options(self, *, query: bool) -> dict[str, Any]:
        return {}

    def embed_request(self, texts: list[str], *, query: bool) -> Request:
        body = self.with_model({"input": texts}) | self.embedding_options(query=query)
        if self.options.get("dimensions") is not None:
            body["dimensions"] = self.options["dimensions"]
        return self.post("embeddings", json=body)

    def parse_embeddings(self, data: Any, texts: list[str]) -> EmbeddingResult:
        vectors = self.indexed_vectors(mapping(data).get("data"))
        return EmbeddingResult(vectors, reported_usage(data) or self.estimate_usage(texts))


class NvidiaEmbedding(OpenAIEmbedding, factories=("NVIDIA",)):
    """NVIDIA's retrieval embedders are asymmetric and require `input_type`."""

    def embedding_options(self, *, query: bool) -> dict[str, Any]:
        return {"input_type": "query" if query else "passage"}


# --- audio ---------------------------------------------------------------------------------------


class OpenAISpeech2Text(OpenAIWire, Speech2TextModel, factories=SPEECH2TEXT_FACTORIES):
    def transcription_request(
        self, audio: bytes, *, filename: str, language: str | None
    ) -> Request:
        form = {"model": self.wire_model_name, "response_format": "json"}
        if language:
            form["language"] = language
        mime = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        return self.post("audio/transcriptions", data=form, files={"file": (filename, audio, mime)})

    def parse_transcription(self, data: Any) -> TranscriptionResult:
        text = mapping(data).get("text")
        if not isinstance(text, str):
            raise self.malformed("the transcription has no text")
        # Token usage when the model reports it (gpt-4o-transcribe); whisper-1 reports
        # seconds of audio or nothing, so count the transcript instead.
        usage = reported_usage(data) or Usage(
            completion_tokens=self.count_tokens(text), estimated=True
        )
        return TranscriptionResult(text, usage)


class OpenAITTS(OpenAIWire, TTSModel, factories=TTS_FACTORIES):
    default_voice = "alloy"
    response_format = "mp3"

    def speech_request(self, text: str, *, voice: str | None) -> Request:
        body = {
            "model": self.wire_model_name,
            "input": text,
            "voice": voice or self.options.get("voice") or self.default_voice,
            "response_format": self.options.get("response_format") or self.response_format,
        }
        return self.post("audio/speech", json=body)
