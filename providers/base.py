"""Adapter base classes, one per model type, and the stream objects chat and TTS return.

A family module subclasses these, declares `model_type` (inherited from the base), the
`factories` it serves and their base URLs, and implements the `_`-prefixed hooks. Declaring
`factories` on a class registers it (see `providers.registry`); intermediate classes that
declare none are not registered.

Usage rules every adapter keeps: the provider's reported usage is authoritative; when there is
none, tokens are counted with tiktoken and the Usage says `estimated=True`.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import httpx

from . import http
from .api_keys import Credentials
from .classify import ErrorContext
from .errors import (
    GenericProviderError,
    InvalidRequestError,
    ProviderConnectionError,
    ProviderError,
)
from .factories import strip_name_suffix
from .registry import register
from .results import (
    ChatResult,
    EmbeddingResult,
    OCRResult,
    RerankResult,
    TranscriptionResult,
    Usage,
)
from .retry import RetryPolicy, with_retries
from .runner import Flow, arun, run
from .streams import (
    AsyncChatStream,
    AudioStream,
    ChatState,
    ChatStream,
    StreamDelta,
)
from .tokens import encoding_for_model, num_tokens_from_messages, num_tokens_from_string
from .types import ModelType

logger = logging.getLogger(__name__)


class BaseAdapter:
    """What every adapter is: a factory's model, its credentials and base URL, and the way to
    send a described request (sans I/O) through the runner."""

    model_type: ClassVar[ModelType]
    factories: ClassVar[tuple[str, ...]] = ()
    default_base_url: ClassVar[str | None] = None
    # Hosted factories' base URLs, when one class serves several factories.
    base_urls: ClassVar[Mapping[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("factories"):
            register(cls)

    def __init__(
        self,
        *,
        factory: str,
        model_name: str,
        credentials: Credentials | str | Mapping[str, Any] | None,
        base_url: str | None = None,
        guard: http.Guard | None = None,
        retry_policy: RetryPolicy | None = None,
        **options: Any,
    ) -> None:
        if factory not in self.factories:
            raise ValueError(f"{type(self).__name__} does not serve factory {factory!r}")
        self.factory = factory
        self.model_name = model_name
        self.credentials = Credentials.parse(credentials)
        self.guard = guard
        # None: read LLM_TIMEOUT_SECONDS / LLM_MAX_RETRIES / LLM_BASE_DELAY at each call.
        self.retry_policy = retry_policy
        self.options = options
        self.context = ErrorContext(factory, model_name, self.credentials.secrets())
        self.base_url = self.resolve_base_url(base_url)

    def resolve_base_url(self, given: str | None) -> str:
        """The user's base URL, else the factory's hosted one; without slash at the end."""
        url = (given or "").strip() or self.base_urls.get(self.factory) or self.default_base_url
        if not url:
            raise self.context.error(
                InvalidRequestError, f"{self.factory} needs a base URL and none was given"
            )
        return url.rstrip("/")

    @property
    def wire_model_name(self) -> str:
        """The model name the provider expects."""
        return strip_name_suffix(self.model_name)

    @property
    def encoding(self) -> str:
        return encoding_for_model(self.wire_model_name)

    def count_tokens(self, text: str | None) -> int:
        return num_tokens_from_string(text, self.encoding)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.factory}/{self.model_name} at {self.base_url} "
            f"{self.credentials!r}>"
        )

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    # --- describing requests (no I/O) ---

    def headers(self) -> dict[str, str]:
        """The authentication headers: `Authorization: Bearer <key>` unless a family says
        otherwise, and none without a key (keyless self-hosted servers)."""
        key = self.credentials.key
        return {"Authorization": f"Bearer {key}"} if key else {}

    def post(self, path: str, **options: Any) -> http.Request:
        """A POST to `path` (relative to the base URL) with the family's headers."""
        return http.Request("POST", path, headers=self.headers(), **options)

    # --- sending them: flows for providers.runner ---

    @property
    def policy(self) -> RetryPolicy:
        return self.retry_policy or RetryPolicy.from_settings()

    def fetch(self, request: http.Request) -> Flow[http.ProviderResponse]:
        """`request` sent with retries: the fully read 2xx answer."""
        return self._retried(request, stream=False)

    def open(self, request: http.Request) -> Flow[httpx.Response]:
        """`request` sent with retries: the open 2xx response, for a stream to read."""
        return self._retried(request, stream=True)

    def _retried(self, request: http.Request, *, stream: bool) -> Flow[Any]:
        secrets = self.context.secrets
        attempt = functools.partial(self.attempt, request, stream=stream)
        return with_retries(attempt, policy=self.policy, secrets=secrets)

    def attempt(self, request: http.Request, *, stream: bool) -> Flow[Any]:
        """One try of `request`; what it raises is retried when retryable. Families that sign
        each try, add an access token or read errors out of 2xx answers override this."""
        return self.send(self.http_call(request), stream=stream)

    def http_call(self, request: http.Request, context: ErrorContext | None = None) -> http.Call:
        """`request` addressed (a relative URL joins the base URL) and guarded."""
        url = str(request.url)
        if not url.startswith(("http://", "https://")):
            request = replace(request, url=self.url(url))
        return http.Call(request, context or self.context, self.policy, self.guard)

    def send(self, call: http.Call, *, stream: bool) -> Flow[Any]:
        """One attempt of `call`; its error refined by refine_error()."""
        try:
            if stream:
                return (yield from http.open_once(call))
            return (yield from http.fetch_once(call))
        except ProviderError as error:
            refined = self.refine_error(error)
            if refined is error:
                raise
            raise refined from error

    def refine_error(self, error: ProviderError) -> ProviderError:
        """A family's better reading of an error status (Cohere's 498 is a bad key...)."""
        return error

    def expect_events(
        self, call: http.Call, response: httpx.Response, check: Callable[[Any], object]
    ) -> Flow[httpx.Response]:
        """`response` if it is an event stream. Providers that report errors in 2xx answers
        send a JSON body instead when a stream fails before it begins: `check(answer)` raises
        the error it holds."""
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            return response
        answer = yield from http.read_answer(call, response)
        check(answer)
        raise self.malformed("a stream answered without events")

    # --- reading answers ---

    def json_of(self, response: http.ProviderResponse) -> Any:
        """The JSON body of a 2xx response, or an error saying the provider sent garbage."""
        try:
            return response.json()
        except ValueError:
            raise self.context.error(
                GenericProviderError,
                f"HTTP {response.status_code} with a body that is not JSON: "
                f"{response.text[:200]!r}",
                status=response.status_code,
            ) from None

    def malformed(self, what: str) -> ProviderError:
        return self.context.error(GenericProviderError, f"unexpected response: {what}")

    # Legacy names, until every family is a description.
    _json = json_of
    _malformed = malformed

    def _request(self, method: str, path: str, **options: Any) -> http.ProviderResponse:
        return run(self.fetch(http.Request(method, path, **options)))

    def _open_stream(self, method: str, path: str, **options: Any) -> httpx.Response:
        return run(self.open(http.Request(method, path, **options)))

    async def _arequest(self, method: str, path: str, **options: Any) -> http.ProviderResponse:
        return await arun(self.fetch(http.Request(method, path, **options)))

    async def _aopen_stream(self, method: str, path: str, **options: Any) -> httpx.Response:
        return await arun(self.open(http.Request(method, path, **options)))


# --- chat --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatRequest:
    """One chat call as the caller asked for it, before any wire format."""

    history: list[dict[str, Any]]
    system: str | None = None
    gen_conf: dict[str, Any] = field(default_factory=dict)
    tools: list[dict[str, Any]] | None = None

    def messages(self) -> list[dict[str, Any]]:
        """OpenAI-style messages: the system prompt first, then the history."""
        messages = [dict(message) for message in self.history]
        if self.system:
            messages.insert(0, {"role": "system", "content": self.system})
        return messages

    def estimate_prompt_tokens(self, encoding: str) -> int:
        return num_tokens_from_messages(self.messages(), encoding)


@dataclass(frozen=True, slots=True)
class StreamStep:
    """What one server-sent event of a chat stream means (see ChatModel.sse_deltas)."""

    deltas: tuple[StreamDelta, ...] = ()
    complete: bool = False  # the provider marked the answer complete
    stop: bool = False  # nothing after this event is part of the answer
    # Raised once `deltas` are out: an event may carry usage and then an error (a refusal).
    error: BaseException | None = None


class ChatModel(BaseAdapter):
    """Chat. Subclasses implement `_chat` and `_chat_stream`, and ideally the async twins;
    without them, the async methods run the sync ones in a worker thread."""

    model_type = ModelType.CHAT

    def chat(
        self,
        history: list[dict[str, Any]],
        *,
        system: str | None = None,
        gen_conf: dict[str, Any] | None = None,
        tools: list[dict[str, Any]] | None = None,
    ) -> ChatResult:
        return self._chat(ChatRequest(list(history), system, dict(gen_conf or {}), tools))

    def chat_streamly(
        self,
        history: list[dict[str, Any]],
        *,
        system: str | None = None,
        gen_conf: dict[str, Any] | None = None,
        tools: list[dict[str, Any]] | None = None,
    ) -> ChatStream:
        """Opens the stream at once (errors before the first byte raise here)."""
        return self._chat_stream(ChatRequest(list(history), system, dict(gen_conf or {}), tools))

    async def achat(
        self,
        history: list[dict[str, Any]],
        *,
        system: str | None = None,
        gen_conf: dict[str, Any] | None = None,
        tools: list[dict[str, Any]] | None = None,
    ) -> ChatResult:
        return await self._achat(ChatRequest(list(history), system, dict(gen_conf or {}), tools))

    async def achat_streamly(
        self,
        history: list[dict[str, Any]],
        *,
        system: str | None = None,
        gen_conf: dict[str, Any] | None = None,
        tools: list[dict[str, Any]] | None = None,
    ) -> AsyncChatStream:
        request = ChatRequest(list(history), system, dict(gen_conf or {}), tools)
        return await self._achat_stream(request)

    # --- hooks ---

    def _chat(self, request: ChatRequest) -> ChatResult:
        raise NotImplementedError

    def _chat_stream(self, request: ChatRequest) -> ChatStream:
        raise NotImplementedError

    async def _achat(self, request: ChatRequest) -> ChatResult:
        return await asyncio.to_thread(self._chat, request)

    async def _achat_stream(self, request: ChatRequest) -> AsyncChatStream:
        stream = await asyncio.to_thread(self._chat_stream, request)
        return AsyncChatStream(
            _deltas_in_thread(stream),
            self.chat_state(request),
            release=lambda: asyncio.to_thread(stream.close),
        )

    # --- helpers for subclasses ---

    # How the provider marks a complete stream, for the error when a stream ends without it.
    stream_end_marker: ClassVar[str] = "its end marker"

    def sse_deltas(
        self, response: httpx.Response, step: Callable[[Any], StreamStep]
    ) -> Iterator[StreamDelta]:
        """The deltas of an SSE response, `step` reading each event; the response is closed
        at the end. A body that ends before the provider marked the answer complete (a
        provider or proxy cut it) raises a connection error."""
        from .sse import iter_sse

        complete = False
        try:
            for event in iter_sse(response.iter_lines()):
                result = step(event)
                yield from result.deltas
                if result.error is not None:
                    raise result.error
                complete = complete or result.complete
                if result.stop:
                    break
            if not complete:
                raise self.stream_cut_off()
        finally:
            response.close()

    async def asse_deltas(
        self, response: httpx.Response, step: Callable[[Any], StreamStep]
    ) -> AsyncIterator[StreamDelta]:
        from .sse import aiter_sse

        complete = False
        try:
            async for event in aiter_sse(response.aiter_lines()):
                result = step(event)
                for delta in result.deltas:
                    yield delta
                if result.error is not None:
                    raise result.error
                complete = complete or result.complete
                if result.stop:
                    break
            if not complete:
                raise self.stream_cut_off()
        finally:
            await response.aclose()

    def stream_cut_off(self) -> ProviderConnectionError:
        return self.context.error(
            ProviderConnectionError, f"the stream ended before {self.stream_end_marker}"
        )

    def estimate_usage(self, request: ChatRequest, completion: str) -> Usage:
        return Usage(
            request.estimate_prompt_tokens(self.encoding),
            self.count_tokens(completion),
            estimated=True,
        )

    def chat_state(self, request: ChatRequest) -> ChatState:
        return ChatState(
            self.context, lambda: request.estimate_prompt_tokens(self.encoding), self.encoding
        )

    def make_stream(
        self,
        request: ChatRequest,
        deltas: Iterator[StreamDelta],
        on_close: Callable[[], None] | None = None,
    ) -> ChatStream:
        return ChatStream(deltas, self.chat_state(request), release=on_close)

    def make_async_stream(
        self,
        request: ChatRequest,
        deltas: AsyncIterator[StreamDelta],
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> AsyncChatStream:
        return AsyncChatStream(deltas, self.chat_state(request), release=on_close)


async def _deltas_in_thread(stream: ChatStream) -> AsyncIterator[StreamDelta]:
    # Fallback for adapters without native async streaming: one worker-thread hop per delta.
    # The sync stream has already merged usage and tool calls, so re-emit its state.
    iterator = iter(stream)
    while True:
        text = await asyncio.to_thread(next, iterator, None)
        if text is None:
            break
        yield StreamDelta(text=text)
    yield StreamDelta(
        usage=stream.reported_usage,
        finish_reason=stream.finish_reason,
        tool_calls=[dict(call, index=i) for i, call in enumerate(stream.tool_calls or [])],
    )


# --- image to text -------------------------------------------------------------------------------

DEFAULT_DESCRIBE_PROMPT = (
    "Describe this image in detail: what it shows, who and what is in it, where and when it "
    "seems to be, and any text or numbers it contains."
)

_IMAGE_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
)


def image_mime_type(image: bytes) -> str:
    if image[:4] == b"RIFF" and image[8:12] == b"WEBP":
        return "image/webp"
    for signature, mime in _IMAGE_SIGNATURES:
        if image.startswith(signature):
            return mime
    return "image/jpeg"


def image_data_url(image: bytes | str) -> str:
    """A data URL for image bytes; URLs and data URLs given as text pass through."""
    if isinstance(image, str):
        if image.startswith(("data:", "http://", "https://")):
            return image
        return f"data:image/jpeg;base64,{image}"  # RAGFlow passes bare base64 JPEGs
    encoded = base64.b64encode(image).decode("ascii")
    return f"data:{image_mime_type(image)};base64,{encoded}"


class Image2TextModel(ChatModel):
    """Vision models are chat models that accept OpenAI-style image parts in messages
    ({"type": "image_url", "image_url": {"url": "data:..."}}); families translate those parts
    to their own wire format in `_chat`."""

    model_type = ModelType.IMAGE2TEXT

    def describe(self, image: bytes) -> ChatResult:
        return self.describe_with_prompt(image)

    def describe_with_prompt(self, image: bytes, prompt: str | None = None) -> ChatResult:
        content = [
            {"type": "image_url", "image_url": {"url": image_data_url(image)}},
            {"type": "text", "text": prompt or DEFAULT_DESCRIBE_PROMPT},
        ]
        return self.chat([{"role": "user", "content": content}])


# --- embedding and rerank ------------------------------------------------------------------------


class EmbeddingModel(BaseAdapter):
    model_type = ModelType.EMBEDDING
    # Texts per request; providers cap it (DashScope at 10, for one).
    batch_size: ClassVar[int] = 16
    batch_sizes: ClassVar[Mapping[str, int]] = {}

    def encode(self, texts: list[str]) -> EmbeddingResult:
        if isinstance(texts, str):
            raise TypeError("encode() takes a list of texts; use encode_queries() for one query")
        texts = list(texts)
        size = self.batch_sizes.get(self.factory, self.batch_size)
        vectors: list[list[float]] = []
        usage = Usage.zero()
        for start in range(0, len(texts), size):
            batch = self._embed(texts[start : start + size], query=False)
            vectors.extend(batch.vectors)
            usage += batch.usage
        self._check_count(len(vectors), len(texts))
        return EmbeddingResult(vectors, usage)

    def encode_queries(self, text: str) -> EmbeddingResult:
        result = self._embed([text], query=True)
        self._check_count(len(result.vectors), 1)
        return result

    def _embed(self, texts: list[str], *, query: bool) -> EmbeddingResult:
        raise NotImplementedError

    def estimate_usage(self, texts: list[str]) -> Usage:
        return Usage(sum(self.count_tokens(text) for text in texts), estimated=True)

    def _check_count(self, got: int, expected: int) -> None:
        if got != expected:
            raise self._malformed(f"{got} vectors for {expected} texts")


class RerankModel(BaseAdapter):
    model_type = ModelType.RERANK

    def similarity(self, query: str, texts: list[str]) -> RerankResult:
        texts = list(texts)
        if not texts:
            return RerankResult([], Usage.zero())
        result = self._rerank(query, texts)
        if len(result.scores) != len(texts):
            raise self._malformed(f"{len(result.scores)} scores for {len(texts)} texts")
        return result

    def _rerank(self, query: str, texts: list[str]) -> RerankResult:
        """Scores in input order (providers return them sorted by relevance: re-order)."""
        raise NotImplementedError

    def estimate_usage(self, query: str, texts: list[str]) -> Usage:
        tokens = self.count_tokens(query) * len(texts) + sum(map(self.count_tokens, texts))
        return Usage(tokens, estimated=True)


# --- audio and documents -------------------------------------------------------------------------


class Speech2TextModel(BaseAdapter):
    model_type = ModelType.SPEECH2TEXT

    def transcription(
        self, audio: bytes, *, filename: str = "audio.wav", language: str | None = None
    ) -> TranscriptionResult:
        raise NotImplementedError


class TTSModel(BaseAdapter):
    model_type = ModelType.TTS

    def tts(self, text: str, *, voice: str | None = None) -> AudioStream:
        raise NotImplementedError


class OCRModel(BaseAdapter):
    model_type = ModelType.OCR

    def ocr(self, document: bytes, *, mime_type: str = "application/pdf") -> OCRResult:
        raise NotImplementedError
