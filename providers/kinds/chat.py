"""Chat and vision models: the four calls callers make, and the description a family gives.

A chat family describes its wire protocol once, without I/O:
- `chat_request(request, stream=...)`: the HTTP request of a call (a providers.http.Request);
- `parse_chat(data, request)`: the ChatResult of a JSON answer;
- `stream_step(event)`, or `stream_stepper(request)` for readers that keep state through one
  stream: what one server-sent event of a streamed answer means (a StreamStep).
`chat()` / `achat()` and `chat_streamly()` / `achat_streamly()` run that one description
through providers.runner, in the calling thread or on the event loop. A family whose exchange
is more than one plain request (an access token, a signature per attempt, errors inside 2xx
answers) overrides `BaseAdapter.attempt`; one whose stream is not SSE overrides
`stream_decoder`.

Usage rules every adapter keeps: the provider's reported usage is authoritative; when there is
none, tokens are counted with tiktoken and the Usage says `estimated=True`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, TypedDict, TypeVar, Unpack

import httpx

from ..base import BaseAdapter
from ..errors import InvalidRequestError, ProviderConnectionError, ProviderError
from ..http import Request
from ..media import DEFAULT_DESCRIBE_PROMPT, image_data_url
from ..results import ChatResult, Usage
from ..runner import Decoder, Flow, aiter_body, arun, iter_body, run
from ..sse import SSEEvent, SSEParser
from ..streams import AsyncChatStream, ChatState, ChatStream, StreamDelta
from ..tokens import num_tokens_from_messages
from ..types import ModelType
from ..wire import content_text

History = list[dict[str, Any]]
U = TypeVar("U")


class ChatOptions(TypedDict, total=False):
    system: str | None
    gen_conf: dict[str, Any] | None
    tools: list[dict[str, Any]] | None


@dataclass(frozen=True)
class ChatRequest:
    """One chat call as the caller asked for it, before any wire format."""

    history: History
    system: str | None = None
    gen_conf: dict[str, Any] = field(default_factory=dict)
    tools: list[dict[str, Any]] | None = None

    @classmethod
    def of(
        cls,
        history: History,
        *,
        system: str | None = None,
        gen_conf: dict[str, Any] | None = None,
        tools: list[dict[str, Any]] | None = None,
    ) -> ChatRequest:
        return cls(list(history), system, dict(gen_conf or {}), tools)

    def messages(self) -> list[dict[str, Any]]:
        """OpenAI-style messages: the system prompt first, then the history."""
        messages = [dict(message) for message in self.history]
        if self.system:
            messages.insert(0, {"role": "system", "content": self.system})
        return messages

    def system_and_turns(self) -> tuple[str, list[dict[str, Any]]]:
        """For APIs that take the system prompt apart from the messages: the system prompt
        and the history's system and developer messages, joined by blank lines, and the
        other messages."""
        system = [self.system] if self.system else []
        turns = []
        for message in self.history:
            if message.get("role") in ("system", "developer"):
                system.append(content_text(message.get("content"), text_parts_only=True))
            else:
                turns.append(message)
        return "\n\n".join(text for text in system if text), turns

    def estimate_prompt_tokens(self, encoding: str) -> int:
        return num_tokens_from_messages(self.messages(), encoding)


@dataclass(frozen=True, slots=True)
class StreamStep:
    """What one server-sent event of a chat stream means."""

    deltas: tuple[StreamDelta, ...] = ()
    complete: bool = False  # the provider marked the answer complete
    stop: bool = False  # nothing after this event is part of the answer
    # Raised once `deltas` are out: an event may carry usage and then an error (a refusal).
    error: BaseException | None = None


class EventReader(Protocol):
    """Reads one stream's events, keeping state between them; raises what an event says."""

    complete: bool

    def read(self, event: SSEEvent) -> Iterable[StreamDelta]: ...


def reader_steps(reader: EventReader) -> Callable[[SSEEvent], StreamStep]:
    """The step function of a stateful reader: the deltas an event yields before a failure
    still reach the caller, then the failure is raised."""

    def step(event: SSEEvent) -> StreamStep:
        deltas: list[StreamDelta] = []
        try:
            deltas.extend(reader.read(event))
        except ProviderError as exc:
            return StreamStep(tuple(deltas), error=exc)
        return StreamStep(tuple(deltas), complete=reader.complete)

    return step


class Framer(Protocol[U]):
    """Cuts a streamed body into units (SSE events, NDJSON lines) as bytes arrive."""

    def feed(self, chunk: bytes) -> list[U]: ...

    def close(self) -> list[U]: ...


class StreamSteps(Generic[U]):
    """A chat stream's deltas (a providers.runner Decoder): the framer cuts the body into
    units and `step(unit)` says what each means. A body that ends before the provider marked
    the answer complete (a provider or proxy cut it) raises `cut_off()`."""

    def __init__(
        self,
        framer: Framer[U],
        step: Callable[[U], StreamStep],
        cut_off: Callable[[], ProviderError],
    ) -> None:
        self._framer = framer
        self._step = step
        self._cut_off = cut_off
        self._complete = False
        self.stopped = False

    def feed(self, chunk: bytes) -> Iterator[StreamDelta]:
        return self._read(self._framer.feed(chunk))

    def end(self) -> Iterator[StreamDelta]:
        if not self.stopped:
            yield from self._read(self._framer.close())
        if not self._complete:
            raise self._cut_off()

    def _read(self, units: list[U]) -> Iterator[StreamDelta]:
        for unit in units:
            if self.stopped:
                return
            step = self._step(unit)
            yield from step.deltas
            if step.error is not None:
                raise step.error
            self._complete = self._complete or step.complete
            self.stopped = step.stop


class ChatModel(BaseAdapter):
    """Chat: a family implements the description (see the module docstring)."""

    model_type = ModelType.CHAT
    # How the provider marks a complete stream, for the error when a stream ends without it.
    stream_end_marker: ClassVar[str] = "its end marker"

    def chat(self, history: History, **options: Unpack[ChatOptions]) -> ChatResult:
        return run(self.chat_flow(ChatRequest.of(history, **options)))

    async def achat(self, history: History, **options: Unpack[ChatOptions]) -> ChatResult:
        return await arun(self.chat_flow(ChatRequest.of(history, **options)))

    def chat_streamly(self, history: History, **options: Unpack[ChatOptions]) -> ChatStream:
        """Opens the stream at once (errors before the first byte raise here)."""
        request = ChatRequest.of(history, **options)
        response = run(self.stream_flow(request))
        deltas = iter_body(response, self.stream_decoder(request))
        return ChatStream(deltas, self.chat_state(request), release=response.close)

    async def achat_streamly(
        self, history: History, **options: Unpack[ChatOptions]
    ) -> AsyncChatStream:
        """The stream, read on this event loop; `aclose()` closes the upstream at once."""
        request = ChatRequest.of(history, **options)
        response = await arun(self.stream_flow(request))
        deltas = aiter_body(response, self.stream_decoder(request))
        return AsyncChatStream(deltas, self.chat_state(request), release=response.aclose)

    # --- the description ---

    def chat_request(self, request: ChatRequest, *, stream: bool) -> Request:
        raise NotImplementedError

    def parse_chat(self, data: Any, request: ChatRequest) -> ChatResult:
        raise NotImplementedError

    def stream_step(self, event: SSEEvent) -> StreamStep:
        raise NotImplementedError

    def stream_stepper(self, request: ChatRequest) -> Callable[[SSEEvent], StreamStep]:
        """The step function of one stream (stream_step, unless the family keeps state)."""
        return self.stream_step

    # --- flows built from it ---

    def chat_flow(self, request: ChatRequest) -> Flow[ChatResult]:
        response = yield from self.fetch(self.chat_request(request, stream=False))
        return self.parse_chat(self.json_of(response), request)

    def stream_flow(self, request: ChatRequest) -> Flow[httpx.Response]:
        return self.open(self.chat_request(request, stream=True))

    def stream_decoder(self, request: ChatRequest) -> Decoder[StreamDelta]:
        return StreamSteps(SSEParser(), self.stream_stepper(request), self.stream_cut_off)

    # --- helpers ---

    def stream_cut_off(self) -> ProviderConnectionError:
        return self.context.error(
            ProviderConnectionError, f"the stream ended before {self.stream_end_marker}"
        )

    def stream_object(self, data: str, what: str = "stream chunk") -> Mapping[str, Any]:
        """The JSON object an event (or a line) of a stream carries, or the error saying the
        provider sent something else."""
        try:
            parsed = json.loads(data)
        except ValueError:
            raise self.malformed(f"{what} is not JSON") from None
        if not isinstance(parsed, Mapping):
            raise self.malformed(f"{what} is not a JSON object")
        return parsed

    def tool_arguments(self, call: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments of an OpenAI-style tool call as an object (the history carries them
        as a JSON string, for APIs that want the object); none given is {}."""
        arguments = _function(call).get("arguments")
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else None
            except ValueError:
                arguments = ""
        if arguments is None:
            return {}
        if not isinstance(arguments, Mapping):
            raise self.context.error(
                InvalidRequestError,
                f"the arguments of tool call {call.get('id')!r} are not a JSON object",
            )
        return dict(arguments)

    def chat_state(self, request: ChatRequest) -> ChatState:
        return ChatState(
            self.context, lambda: request.estimate_prompt_tokens(self.encoding), self.encoding
        )

    def estimate_usage(self, request: ChatRequest, completion: str) -> Usage:
        return Usage(
            request.estimate_prompt_tokens(self.encoding),
            self.count_tokens(completion),
            estimated=True,
        )

    def chat_result(
        self,
        request: ChatRequest,
        text: str,
        usage: Usage | None,
        tool_calls: list[dict[str, Any]] | None = None,
        finish_reason: str | None = None,
    ) -> ChatResult:
        """The result, with the usage estimated (text and tool arguments) when none came."""
        if usage is None:
            arguments = "".join(
                str(_function(call).get("arguments") or "") for call in tool_calls or ()
            )
            usage = self.estimate_usage(request, text + arguments)
        return ChatResult(text, usage, tool_calls or None, finish_reason)


def _function(call: Any) -> Mapping[str, Any]:
    function = call.get("function") if isinstance(call, Mapping) else None
    return function if isinstance(function, Mapping) else {}


class Image2TextModel(ChatModel):
    """Vision models are chat models that accept OpenAI-style image parts in messages
    ({"type": "image_url", "image_url": {"url": "data:..."}}); families translate those parts
    to their own wire format."""

    model_type = ModelType.IMAGE2TEXT

    def describe(self, image: bytes) -> ChatResult:
        return self.describe_with_prompt(image)

    def describe_with_prompt(self, image: bytes, prompt: str | None = None) -> ChatResult:
        content = [
            {"type": "image_url", "image_url": {"url": image_data_url(image)}},
            {"type": "text", "text": prompt or DEFAULT_DESCRIBE_PROMPT},
        ]
        return self.chat([{"role": "user", "content": content}])
