"""The one runner of provider calls: adapters describe, the runner performs, sync or async.

A *flow* is a generator that yields effects (send a request, read a body, sleep, run a
sub-flow under a lock) and receives what each effect produced, or has its failure raised at
the `yield`; what it returns is the call's result. Adapters, the retry loop and the HTTP
exchange write their logic once as flows: `run()` performs the effects in the calling thread
with the pooled `httpx.Client`, `arun()` on the running event loop with its `httpx.AsyncClient`.
A flow that yields nothing (a call answered without I/O) runs the same way.

    def ask(adapter) -> Flow[str]:
        response = yield from http.fetch(call)   # retried, guarded, error-mapped
        return response.json()["answer"]

    run(ask(adapter))            # in a worker thread
    await arun(ask(adapter))     # in an async view

Stream bodies are read the same way: `iter_body()` / `aiter_body()` feed a response's bytes
to a sans-I/O decoder (see providers.streams) and yield what it decodes.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Hashable,
    Iterable,
    Iterator,
)
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import httpx

from . import clients

T = TypeVar("T")
Item = TypeVar("Item", covariant=True)


class Effect:
    """Something a flow asks the runner to do; performed sync or async."""

    def perform(self) -> Any:
        raise NotImplementedError

    async def aperform(self) -> Any:
        raise NotImplementedError


Flow = Generator[Effect, Any, T]


class Buildable(Protocol):
    @property
    def pool(self) -> Hashable:
        """The key of the connection pool the request goes through (its network policy)."""
        ...

    def build(self, client: httpx.Client | httpx.AsyncClient) -> httpx.Request: ...


@dataclass(frozen=True, slots=True)
class Open(Effect):
    """Send `call`'s request; the result is the response with its body not read yet."""

    call: Buildable

    def perform(self) -> httpx.Response:
        client = clients.get_client(self.call.pool)
        return client.send(self.call.build(client), stream=True)

    async def aperform(self) -> httpx.Response:
        client = clients.get_async_client(self.call.pool)
        return await clients.send_async(client, self.call.build(client))


@dataclass(frozen=True, slots=True)
class Read(Effect):
    """Read a response's body, then close the response: all of it, or its first `limit` bytes.
    Past the `deadline` (time.monotonic()) reading stops with TimeoutError, so a provider that
    trickles a body byte by byte cannot hold a worker for ever."""

    response: httpx.Response
    limit: int | None = None
    deadline: float | None = None

    def perform(self) -> bytes:
        body = _Body(self)
        try:
            for chunk in self.response.iter_bytes():
                if body.add(chunk):
                    break
        finally:
            self.response.close()
        return body.content()

    async def aperform(self) -> bytes:
        body = _Body(self)
        try:
            async for chunk in self.response.aiter_bytes():
                if body.add(chunk):
                    break
        finally:
            await self.response.aclose()
        return body.content()


class _Body:
    def __init__(self, read: Read) -> None:
        self._read = read
        self._parts: list[bytes] = []
        self._size = 0

    def add(self, chunk: bytes) -> bool:
        """Keep `chunk`; True once enough has been read."""
        self._parts.append(chunk)
        self._size += len(chunk)
        if self._read.deadline is not None and time.monotonic() > self._read.deadline:
            raise TimeoutError("the body did not arrive in time")
        return self._read.limit is not None and self._size >= self._read.limit

    def content(self) -> bytes:
        return b"".join(self._parts)[: self._read.limit]


@dataclass(frozen=True, slots=True)
class Sleep(Effect):
    """Wait, with the given (injectable) sleep functions."""

    seconds: float
    sleep: Callable[[float], None]
    async_sleep: Callable[[float], Awaitable[None]]

    def perform(self) -> None:
        self.sleep(self.seconds)

    async def aperform(self) -> None:
        await self.async_sleep(self.seconds)


@dataclass(frozen=True, slots=True)
class Exclusive(Effect):
    """Run the sub-flow `flow()` holding `lock`, so that concurrent threads wait for one
    another (one token request per key, say). An async run does without the lock: a thread
    lock held across awaits would stall its event loop."""

    lock: threading.Lock
    flow: Callable[[], Flow[Any]]

    def perform(self) -> Any:
        with self.lock:
            return run(self.flow())

    async def aperform(self) -> Any:
        return await arun(self.flow())


class _Steps:
    """Drives a flow: iterating gives its effects one by one; `outcome()` hands each effect's
    result (or failure) back to the flow at the next step."""

    def __init__(self, flow: Flow[Any]) -> None:
        self._flow = flow
        self.value: Any = None
        self._error: BaseException | None = None
        self.result: Any = None

    def __iter__(self) -> Iterator[Effect]:
        while True:
            error, self._error = self._error, None
            try:
                if error is not None:
                    effect = self._flow.throw(error)
                else:
                    effect = self._flow.send(self.value)
            except StopIteration as stop:
                self.result = stop.value
                return
            self.value = None
            yield effect

    @contextlib.contextmanager
    def outcome(self) -> Iterator[None]:
        try:
            yield
        except BaseException as exc:  # the flow decides what a failure means, cancellation too
            self._error = exc


def run(flow: Flow[T]) -> T:
    """Perform a flow's effects in this thread and return its result."""
    steps = _Steps(flow)
    for effect in steps:
        with steps.outcome():
            steps.value = effect.perform()
    return steps.result


async def arun(flow: Flow[T]) -> T:
    """Perform a flow's effects on the running event loop and return its result."""
    steps = _Steps(flow)
    for effect in steps:
        with steps.outcome():
            steps.value = await effect.aperform()
    return steps.result


# --- stream bodies ---------------------------------------------------------------------------


class Decoder(Protocol[Item]):
    """Sans-I/O reading of a streamed body: bytes in, items out."""

    @property
    def stopped(self) -> bool:
        """Nothing after what was fed so far is part of the answer: stop reading."""
        ...

    def feed(self, chunk: bytes) -> Iterable[Item]:
        """The items `chunk` completes; raises what the body says went wrong."""
        ...

    def end(self) -> Iterable[Item]:
        """No more bytes will come: the last items, or an error if the answer was cut off."""
        ...


def iter_body(response: httpx.Response, decoder: Decoder[T]) -> Iterator[T]:
    """The items of a streamed response; the response is closed when this ends or is closed."""
    try:
        for chunk in response.iter_bytes():
            yield from decoder.feed(chunk)
            if decoder.stopped:
                break
        yield from decoder.end()
    finally:
        response.close()


async def aiter_body(response: httpx.Response, decoder: Decoder[T]) -> AsyncIterator[T]:
    """The async iter_body(): `await items.aclose()` closes the response at once."""
    try:
        async for chunk in response.aiter_bytes():
            for item in decoder.feed(chunk):
                yield item
            if decoder.stopped:
                break
        for item in decoder.end():
            yield item
    finally:
        await response.aclose()
