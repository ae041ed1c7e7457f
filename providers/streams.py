"""Provider streams: one closable base for chat and audio streams, sync and async.

A stream pulls items from a source (StreamDeltas for chat, bytes for audio; the runner reads
them off the response, see providers.runner.iter_body) and keeps what happened in its
StreamState: the text and tool calls so far, the usage (the provider's last report, else an
estimate), whether it ended (`done`), failed (`error`) or was closed.

Closing happens once, whichever comes first: the source ends or fails, the caller calls
close() / aclose() (or leaves a `with` / `async with` block), or the stream is garbage
collected unclosed (a weakref.finalize safety net). Closing stops the source, releases the
upstream (the HTTP response goes back to the pool), then runs every `on_close(callback)` once
with the StreamState. Callbacks receive the state, never the stream: a callback that kept the
stream alive would defeat the safety net.

    stream = adapter.chat_streamly(history)
    stream.on_close(lambda state: record(state.usage, state.error))
    for text in stream:          # async: `async for text in await adapter.achat_streamly(...)`
        ...
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx

from .classify import ErrorContext
from .errors import ProviderError
from .results import ChatResult, Usage
from .tokens import num_tokens_from_string

logger = logging.getLogger(__name__)

S = TypeVar("S", bound="StreamState")
T = TypeVar("T")
OnClose = Callable[["StreamState"], None]


@dataclass(slots=True)
class StreamDelta:
    """One step of a chat stream, in the caller's terms."""

    text: str = ""
    # The provider's usage report, replacing any earlier one (reports are cumulative; summing
    # them, as RAGFlow did, over-counts).
    usage: Usage | None = None
    finish_reason: str | None = None
    # OpenAI-shaped fragments: {"index", "id"?, "type"?, "function": {"name"?, "arguments"?}}.
    tool_calls: list[dict[str, Any]] | None = None


# --- what a stream has done ----------------------------------------------------------------------


class StreamState:
    """What a stream has done so far: what `on_close` callbacks receive."""

    def __init__(self, context: ErrorContext) -> None:
        self.context = context
        self.done = False  # the provider's stream ended normally
        self.error: BaseException | None = None  # what ended it otherwise
        self.closed = False
        self._callbacks: list[OnClose] = []

    @property
    def usage(self) -> Usage:
        raise NotImplementedError

    def take(self, item: Any) -> Any:
        """Apply one item of the source; what the caller gets from it (None: nothing)."""
        raise NotImplementedError

    def stopped(self, exc: BaseException) -> BaseException:
        """Record why the source stopped; returns what to raise to the caller."""
        if isinstance(exc, StopIteration | StopAsyncIteration):
            self.done = True
            return exc
        if isinstance(exc, asyncio.CancelledError | GeneratorExit):
            # The caller stopped reading (a task cancelled when its client hung up): the
            # stream is abandoned, not failed.
            return exc
        if isinstance(exc, ProviderError | httpx.HTTPError):
            exc = self.context.from_transport(exc)  # a ProviderError is kept as it is
        self.error = exc
        return exc

    def add_callback(self, callback: OnClose) -> None:
        if self.closed:
            callback(self)
        else:
            self._callbacks.append(callback)

    def finish(self) -> None:
        """Mark the stream closed and run the callbacks (once)."""
        self.closed = True
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback(self)
            except Exception:
                logger.exception("an on_close callback of a provider stream failed")


class ChatState(StreamState):
    """A chat stream's text, tool calls, finish reason and usage."""

    def __init__(
        self, context: ErrorContext, estimate_prompt: Callable[[], int], encoding: str
    ) -> None:
        super().__init__(context)
        self._estimate_prompt = estimate_prompt
        self._prompt_tokens: int | None = None
        self._encoding = encoding
        self._parts: list[str] = []
        self._tool_calls: dict[int, dict[str, Any]] = {}
        self.reported_usage: Usage | None = None
        self.finish_reason: str | None = None

    @property
    def text(self) -> str:
        return "".join(self._parts)

    @property
    def tool_calls(self) -> list[dict[str, Any]] | None:
        if not self._tool_calls:
            return None
        return [self._tool_calls[index] for index in sorted(self._tool_calls)]

    @property
    def usage(self) -> Usage:
        if self.reported_usage is not None:
            return self.reported_usage
        if self._prompt_tokens is None:
            self._prompt_tokens = self._estimate_prompt()
        completion = num_tokens_from_string(self.text, self._encoding)
        for call in self._tool_calls.values():
            completion += num_tokens_from_string(call["function"]["arguments"], self._encoding)
        return Usage(self._prompt_tokens, completion, estimated=True)

    def take_delta(self, delta: StreamDelta) -> StreamDelta:
        """Apply `delta` and give it back whole (for callers forwarding every delta)."""
        self.take(delta)
        return delta

    def take(self, delta: StreamDelta) -> str | None:
        if delta.text:
            self._parts.append(delta.text)
        if delta.usage is not None:
            self.reported_usage = delta.usage
        if delta.finish_reason:
            self.finish_reason = delta.finish_reason
        for fragment in delta.tool_calls or ():
            self._merge_tool_call(fragment)
        return delta.text or None

    def _merge_tool_call(self, fragment: Mapping[str, Any]) -> None:
        index = fragment.get("index")
        if not isinstance(index, int):
            index = len(self._tool_calls)
        call = self._tool_calls.setdefault(
            index, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
        )
        if fragment.get("id"):
            call["id"] = fragment["id"]
        if fragment.get("type"):
            call["type"] = fragment["type"]
        function = fragment.get("function") or {}
        # The name arrives once, in the first fragment (some servers repeat it: keep the first).
        if function.get("name") and not call["function"]["name"]:
            call["function"]["name"] = function["name"]
        if function.get("arguments"):
            call["function"]["arguments"] += function["arguments"]

    def result(self) -> ChatResult:
        return ChatResult(self.text, self.usage, self.tool_calls, self.finish_reason)


class AudioState(StreamState):
    """An audio stream's usage (the input text, counted before the call) and content type."""

    def __init__(self, context: ErrorContext, usage: Usage, content_type: str | None) -> None:
        super().__init__(context)
        self._usage = usage
        self.content_type = content_type

    @property
    def usage(self) -> Usage:
        return self._usage

    def take(self, chunk: bytes) -> bytes | None:
        return chunk or None


# --- the streams ---------------------------------------------------------------------------------


class _State(Generic[T]):
    """A read-only attribute of a stream that is its state's."""

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, stream: Any, owner: type | None = None) -> T:
        if stream is None:
            return self  # type: ignore[return-value]  # the class attribute: the descriptor
        return getattr(stream.state, self._name)


class Stream(Generic[S]):
    """The one closable base of provider streams (see the module docstring)."""

    def __init__(self, state: S) -> None:
        self.state = state

    def on_close(self, callback: OnClose) -> None:
        """Run `callback(state)` once when the stream closes; at once if it is closed."""
        self.state.add_callback(callback)

    # What happened so far, read from the state (which on_close callbacks receive).
    usage: _State[Usage] = _State("The last usage report, else an estimate (estimated=True).")
    done: _State[bool] = _State("True once the provider's stream ended normally.")
    error: _State[BaseException | None] = _State("The failure that ended the stream, if any.")
    closed: _State[bool] = _State("True once the stream is closed.")


class SyncStream(Stream[S]):
    """Iterate; close() (or `with`) when stopping early."""

    def __init__(
        self, source: Iterator[Any], state: S, release: Callable[[], object] | None = None
    ) -> None:
        super().__init__(state)
        self._source = source
        self._closer = weakref.finalize(self, _close, source, release, state)

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        return self._next(self.state.take)

    def _next(self, take: Callable[[Any], Any]) -> Any:
        state = self.state
        while not state.closed:
            try:
                item = next(self._source)
            except BaseException as exc:
                error = state.stopped(exc)
                self.close()
                raise error from (None if error is exc else exc)
            out = take(item)
            if out is not None:
                return out
        raise StopIteration

    def close(self) -> None:
        self._closer()

    def __enter__(self) -> SyncStream[S]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _close(source: Iterator[Any], release: Callable[[], object] | None, state: StreamState) -> None:
    try:
        try:
            close = getattr(source, "close", None)  # generators have one, plain iterators not
            if close is not None:
                close()
        finally:
            if release is not None:
                release()
    finally:
        state.finish()


class AsyncStream(Stream[S]):
    """`async for`; `await aclose()` (or `async with`) when stopping early. Must be created
    on the event loop it is read on."""

    def __init__(
        self,
        source: AsyncIterator[Any],
        state: S,
        release: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        super().__init__(state)
        self._source = source
        self._release = release
        loop = asyncio.get_running_loop()
        self._closer = weakref.finalize(self, _abandon, source, release, state, loop)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        return await self._next(self.state.take)

    async def _next(self, take: Callable[[Any], Any]) -> Any:
        state = self.state
        while not state.closed:
            try:
                item = await anext(self._source)
            except BaseException as exc:
                error = state.stopped(exc)
                await self.aclose()
                raise error from (None if error is exc else exc)
            out = take(item)
            if out is not None:
                return out
        raise StopAsyncIteration

    async def aclose(self) -> None:
        if self._closer.detach() is None:
            return  # closed already
        try:
            await _aclose_upstream(self._source, self._release)
        finally:
            self.state.finish()

    async def __aenter__(self) -> AsyncStream[S]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


async def _aclose_upstream(
    source: AsyncIterator[Any], release: Callable[[], Awaitable[object]] | None
) -> None:
    try:
        close = getattr(source, "aclose", None)
        if close is not None:
            await close()
    finally:
        if release is not None:
            await release()


# Close tasks of abandoned async streams, kept until done (the loop holds tasks weakly).
_closing: set[asyncio.Task] = set()


def _abandon(
    source: AsyncIterator[Any],
    release: Callable[[], Awaitable[object]] | None,
    state: StreamState,
    loop: asyncio.AbstractEventLoop,
) -> None:
    # Nothing can be awaited in a finalizer: the upstream is closed by a task on its loop (if
    # that still runs), and the callbacks run now.
    def spawn() -> None:
        task = loop.create_task(_aclose_upstream(source, release))
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    try:
        if not loop.is_closed():
            loop.call_soon_threadsafe(spawn)
    finally:
        state.finish()


class ChatView:
    """What a chat stream received so far (the state is also what on_close callbacks get)."""

    state: ChatState

    text: _State[str] = _State("The text received so far.")
    reported_usage: _State[Usage | None] = _State("The provider's last usage report, if any.")
    tool_calls: _State[list[dict[str, Any]] | None] = _State("Tool calls, fragments merged.")
    finish_reason: _State[str | None] = _State("Why the provider ended the answer.")


class ChatStream(ChatView, SyncStream[ChatState]):
    """Iterate to get text deltas. Afterwards, or after close() or a failure midway, `.usage`,
    `.text`, `.tool_calls`, `.finish_reason`, `.done` and `.error` tell what happened."""

    def deltas(self) -> Iterator[StreamDelta]:
        """Every StreamDelta as the provider sent it (text, tool-call fragments, finish reason,
        usage), for a caller that forwards the stream in a wire shape of its own. The state
        keeps track exactly as when iterating text."""
        take = self.state.take_delta
        while True:
            try:
                yield self._next(take)
            except StopIteration:
                return

    def result(self) -> ChatResult:
        """Read the rest of the stream and return it as one ChatResult."""
        for _ in self:
            pass
        return self.state.result()


class AsyncChatStream(ChatView, AsyncStream[ChatState]):
    """The async ChatStream: `async for text in stream`, `await stream.aclose()`."""

    async def deltas(self) -> AsyncIterator[StreamDelta]:
        """ChatStream.deltas(), on the event loop."""
        take = self.state.take_delta
        while True:
            try:
                yield await self._next(take)
            except StopAsyncIteration:
                return

    async def result(self) -> ChatResult:
        async for _ in self:
            pass
        return self.state.result()


class AudioView:
    state: AudioState

    content_type: _State[str | None] = _State("The audio's MIME type, as the provider said.")


class AudioStream(AudioView, SyncStream[AudioState]):
    """Iterate to get audio bytes as the provider streams them; `.usage` counts the input
    text (estimated unless the provider reported it)."""

    def read(self) -> bytes:
        return b"".join(self)


class AsyncAudioStream(AudioView, AsyncStream[AudioState]):
    """The async AudioStream: `async for chunk in stream`, `await stream.aclose()`."""
