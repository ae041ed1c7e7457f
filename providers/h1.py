"""Plain-HTTP (http://) provider calls on a lean HTTP/1.1 client over asyncio's transports.

A call to a model server on the local network (or the benchmarks' fake provider) is answered
in a fraction of a millisecond, and aiohttp's client spends several times that in Python per
call (its request object, a task to write the body, timers, tracing hooks): this path writes
the request in one `write` and parses the answer straight from `data_received`, about a fifth
of the CPU. https:// stays on aiohttp (providers.aiotransport), which owns TLS.

Same guarantees as the aiohttp path it stands in for (providers.aiotransport):
- the connect-time guard: a host name is resolved off the event loop and every address
  checked (`policy.check_host`), each address checked again just before its socket connects
  (`policy.check_address`), names resolved for every new connection (no DNS cache);
- one pool per transport (so per network policy), at most `max_connections` open at once,
  idle ones dropped after `keepalive_expiry`, a connection reused only after its answer was
  read to the end and the server did not ask to close it;
- no proxy, no redirects followed, no cookies kept, bodies handed over undecoded;
- failures raised as the httpx exceptions the aiohttp path raises.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

MAX_HEAD_BYTES = 64 * 1024  # a status line and headers longer than this are not an answer
HIGH_WATER = 256 * 1024  # body bytes buffered before the socket stops being read
NO_BODY_STATUSES = frozenset({204, 304})


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: the bytes received so far and a waiter woken by new ones."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.lost: BaseException | None = None
        self.paused = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future | None = None

    # --- asyncio.Protocol ---

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > HIGH_WATER and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # close the transport

    def connection_lost(self, exc) -> None:
        self.eof = True
        self.lost = exc
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # --- used by the pool and the body ---

    @property
    def usable(self) -> bool:
        return not self.eof and self.transport is not None and not self.transport.is_closing()

    async def more(self, timeout: float | None) -> None:
        """Wait for more bytes (or the end of the connection); TimeoutError after `timeout`."""
        if self.eof:
            return
        if self.paused:
            self.paused = False
            self.transport.resume_reading()
        waiter = self._waiter = self.loop.create_future()
        timer = None if timeout is None else self.loop.call_later(timeout, _expire, waiter)
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()

    def take(self, size: int) -> bytes:
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def close(self) -> None:
        self.eof = True
        if self.transport is not None:
            self.transport.close()


def _expire(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class H1Pool:
    """The http:// connections of one transport (one network policy), on one event loop."""

    def __init__(
        self,
        *,
        max_connections: int | None,
        keepalive_expiry: float,
        policy: Callable[[], Any] | None,
        refusals: tuple[type[BaseException], ...],
    ) -> None:
        self.max_connections = max_connections or 0
        self.keepalive_expiry = keepalive_expiry
        self.policy = policy
        self.refusals = refusals
        self.loop: asyncio.AbstractEventLoop | None = None
        self._idle: dict[tuple[str, int], collections.deque[_Connection]] = {}
        self._open = 0
        self._slots: collections.deque[asyncio.Future] = collections.deque()
        self.closed = False

    # --- connections ---

    async def _acquire(self, host: str, port: int, timeouts: dict) -> tuple[_Connection, bool]:
        """A kept-alive connection to (host, port), else a new one; and whether it is new."""
        idle = self._idle.get((host, port))
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if connection.usable and now - connection.idle_since < self.keepalive_expiry:
                return connection, False
            self._discard(connection)
        await self._slot(timeouts.get("pool"))
        try:
            return await self._connect(host, port, timeouts.get("connect")), True
        except BaseException:
            self._free()
            raise

    async def _slot(self, timeout: float | None) -> None:
        if not self.max_connections or self._open < self.max_connections:
            self._open += 1
            return
        # Every slot taken: an idle connection to another host gives its slot up first.
        for idle in self._idle.values():
            if idle:
                self._discard(idle.popleft())
                self._open += 1
                return
        waiter = self.loop.create_future()
        self._slots.append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self._free()  # handed a slot just as this gave up: pass it on
            if isinstance(exc, TimeoutError):
                raise httpx.PoolTimeout("no connection became free in time") from None
            raise

    def _free(self) -> None:
        while self._slots:
            waiter = self._slots.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes to the waiter: _open unchanged
                return
        self._open -= 1

    def _discard(self, connection: _Connection) -> None:
        connection.close()
        self._free()

    def release(self, key: tuple[str, int], connection: _Connection, reusable: bool) -> None:
        """A connection whose answer is over: kept for the next call, or closed."""
        if reusable and connection.usable and not self.closed:
            connection.idle_since = time.monotonic()
            self._idle.setdefault(key, collections.deque()).append(connection)
        else:
            self._discard(connection)

    async def _connect(self, host: str, port: int, timeout: float | None) -> _Connection:
        try:
            return await asyncio.wait_for(self._open_connection(host, port), timeout)
        except self.refusals:
            raise
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"could not connect to {host}:{port} in time") from exc
        except OSError as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc

    async def _open_connection(self, host: str, port: int) -> _Connection:
        loop = self.loop
        if self.policy is None:
            _, connection = await loop.create_connection(lambda: _Connection(loop), host, port)
            return connection
        policy = self.policy()
        if _is_literal(host):
            addresses = [host]
        else:
            # getaddrinfo blocks: in the loop's executor, as the aiohttp path's resolver.
            addresses = await loop.run_in_executor(None, policy.check_host, host, port)
        error: OSError | None = None
        for address in addresses:
            policy.check_address(address)  # just before this address's socket connects
            try:
                _, connection = await loop.create_connection(
                    lambda: _Connection(loop), address, port
                )
            except OSError as exc:
                error = exc
                continue
            return connection
        raise error or OSError(f"{host} resolved to no address")

    # --- one exchange ---

    async def handle(self, request: httpx.Request, body: bytes) -> httpx.Response:
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        url = request.url
        port = url.port or 80
        key = (url.host, port)
        timeouts = request.extensions.get("timeout") or {}
        read_timeout = timeouts.get("read")
        connection, _ = await self._acquire(url.host, port, timeouts)
        try:
            head = [request.method.encode("ascii"), b" ", url.raw_path, b" HTTP/1.1\r\n"]
            for name, value in request.headers.raw:
                head += (name, b": ", value, b"\r\n")
            head.append(b"\r\n")
            if body and request.headers.get("transfer-encoding", "").lower() == "chunked":
                head += (b"%x\r\n" % len(body), body, b"\r\n0\r\n\r\n")
            elif body:
                head.append(body)
            elif "transfer-encoding" in request.headers:
                head.append(b"0\r\n\r\n")
            connection.transport.write(b"".join(head))
            status, reason, headers, keep_alive = await _read_head(connection, read_timeout)
            stream = _Body(
                self, key, connection, request, headers, status, keep_alive, read_timeout
            )
        except BaseException as exc:
            self._discard(connection)
            if isinstance(exc, TimeoutError):
                message = "no answer within the read timeout"
                raise httpx.ReadTimeout(message, request=request) from exc
            if isinstance(exc, OSError):
                message = str(exc) or type(exc).__name__
                raise httpx.ConnectError(message, request=request) from exc
            raise
        return httpx.Response(
            status,
            headers=headers,
            stream=stream,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason},
        )

    async def aclose(self) -> None:
        self.closed = True
        for idle in self._idle.values():
            while idle:
                self._discard(idle.popleft())


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def _read_head(connection: _Connection, timeout: float | None):
    """(status, reason, raw headers, keep-alive) of the answer; 1xx answers are skipped."""
    while True:
        buffer = connection.buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEAD_BYTES:
                raise httpx.RemoteProtocolError("the answer's head is too long")
            if connection.eof:
                raise httpx.RemoteProtocolError("Server disconnected")
            await connection.more(timeout)
            continue
        lines = connection.take(end + 4)[:-4].split(b"\r\n")
        version, _, rest = lines[0].partition(b" ")
        code, _, reason = rest.partition(b" ")
        if version not in (b"HTTP/1.1", b"HTTP/1.0") or len(code) != 3 or not code.isdigit():
            raise httpx.RemoteProtocolError("not an HTTP answer")
        headers = []
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip():
                raise httpx.RemoteProtocolError("malformed header line")
            headers.append((name, value.strip(b" \t")))
        status = int(code)
        if status >= 200 or status == 101:
            keep_alive = version == b"HTTP/1.1"
            for name, value in headers:
                if name.lower() == b"connection":
                    tokens = {token.strip().lower() for token in value.split(b",")}
                    if version == b"HTTP/1.1":
                        keep_alive = b"close" not in tokens
                    else:
                        keep_alive = b"keep-alive" in tokens
            return status, reason, headers, keep_alive


class _Body(httpx.AsyncByteStream):
    """The answer's body as it arrives: Content-Length, chunked, or up to the close."""

    def __init__(
        self,
        pool: H1Pool,
        key: tuple[str, int],
        connection: _Connection,
        request: httpx.Request,
        headers: list[tuple[bytes, bytes]],
        status: int,
        keep_alive: bool,
        timeout: float | None,
    ) -> None:
        self._pool = pool
        self._key = key
        self._connection: _Connection | None = connection
        self._request = request
        self._timeout = timeout
        self._keep_alive = keep_alive
        self._done = False
        self._chunked = False
        self._length: int | None = None
        if request.method == "HEAD" or status in NO_BODY_STATUSES or status < 200:
            self._length = 0
        else:
            for name, value in headers:
                lowered = name.lower()
                if lowered == b"transfer-encoding" and b"chunked" in value.lower():
                    self._chunked = True
                elif lowered == b"content-length":
                    if not value.isdigit():
                        raise httpx.RemoteProtocolError("bad Content-Length", request=request)
                    self._length = int(value)
            if self._chunked:
                self._length = None
            elif self._length is None:
                self._keep_alive = False  # the body ends when the server closes
        if self._length == 0:
            self._finish()

    def _finish(self) -> None:
        self._done = True
        connection, self._connection = self._connection, None
        if connection is not None:
            reusable = self._keep_alive and not connection.buffer
            self._pool.release(self._key, connection, reusable)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            if self._chunked:
                async for chunk in self._chunks():
                    yield chunk
            else:
                async for chunk in self._plain():
                    yield chunk
        except TimeoutError as exc:
            message = "the body did not arrive in time"
            raise httpx.ReadTimeout(message, request=self._request) from exc
        except OSError as exc:
            message = str(exc) or type(exc).__name__
            raise httpx.ReadError(message, request=self._request) from exc

    async def _plain(self) -> AsyncIterator[bytes]:
        remaining = self._length
        while not self._done:
            connection = self._connection
            buffer = connection.buffer
            if buffer:
                size = len(buffer) if remaining is None else min(len(buffer), remaining)
                data = connection.take(size)
                if remaining is not None:
                    remaining -= size
                    if remaining == 0:
                        self._finish()
                yield data
            elif connection.eof:
                if remaining is not None:
                    raise httpx.RemoteProtocolError(
                        "the server closed the connection before the body's end",
                        request=self._request,
                    )
                self._finish()
            else:
                await connection.more(self._timeout)

    async def _chunks(self) -> AsyncIterator[bytes]:
        while not self._done:
            line = await self._line()
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise httpx.RemoteProtocolError("bad chunk size", request=self._request) from None
            if size == 0:
                while await self._line():  # trailers, up to the empty line
                    pass
                self._finish()
                return
            remaining = size
            while remaining:
                connection = self._connection
                if not connection.buffer:
                    await self._more()
                    continue
                data = connection.take(min(len(connection.buffer), remaining))
                remaining -= len(data)
                yield data
            if await self._line():
                raise httpx.RemoteProtocolError("bad chunk end", request=self._request)

    async def _line(self) -> bytes:
        while True:
            connection = self._connection
            end = connection.buffer.find(b"\r\n")
            if end >= 0:
                return connection.take(end + 2)[:-2]
            if len(connection.buffer) > MAX_HEAD_BYTES:
                raise httpx.RemoteProtocolError("bad chunked body", request=self._request)
            await self._more()

    async def _more(self) -> None:
        connection = self._connection
        if connection.eof:
            raise httpx.RemoteProtocolError(
                "the server closed the connection before the body's end", request=self._request
            )
        await connection.more(self._timeout)

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:  # read partly: the connection cannot be reused
            self._pool.release(self._key, connection, False)
