"""An httpx async transport on aiohttp: the async provider calls' HTTP, about five times less
CPU per call than httpcore's (benchmarks: `gateway`; README, "Benchmarks").

httpx stays the API the adapters and the runner use (requests, responses, timeouts, errors);
only the connection pool and the HTTP/1.1 wire underneath are aiohttp's (its C parser, plain
asyncio transports). Plain http:// requests (self-hosted servers, the benchmarks' fake
provider) take the leaner HTTP/1.1 client of providers.h1 instead, under the same guard and
with the same errors: aiohttp's per-call Python is most of a sub-millisecond call's cost.
The guarantees of the httpcore transport it replaces are kept:

- **Connect-time address guard** (providers.netguard): `policy` is asked about every address a
  new connection may go to, twice. The resolver resolves a host name and checks every address
  it gives, before any socket exists (a name with one refused address is refused, as
  netguard's check_host does), and refuses the cloud metadata names; the socket factory
  checks the address each socket is about to connect to, which covers IP literals (aiohttp
  does not resolve those) and anything the resolver handed over. Names are resolved for every
  new connection (no DNS cache), so DNS rebinding is caught as with httpcore.
- **A pool per key**: one transport per pool key (providers.clients), so a connection opened
  under one network policy is never reused under another.
- **No proxy by surprise, no redirects**: the environment's proxy variables are ignored
  (`trust_env=False`; proxied pools keep httpx's own transports), redirects are never followed
  (the redirect answer is handed back as it is).
- Responses are handed over undecoded (httpx decodes `Content-Encoding` as before); cookies are
  never kept between calls; TLS uses httpx's context (certifi or SSL_CERT_FILE/SSL_CERT_DIR).

aiohttp failures become the httpx exceptions providers.classify already maps (connect errors,
timeouts, protocol errors, broken connections), so callers cannot tell the transports apart.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult
from multidict import CIMultiDict
from yarl import URL

from .h1 import H1Pool


class AddressPolicy(Protocol):
    """What the guard asks (providers.netguard.NetworkPolicy): both raise when refused."""

    def check_host(self, host: str, port: int) -> list[str]: ...

    def check_address(self, address: str) -> None: ...


PolicyOf = Callable[[], AddressPolicy]

KEEPALIVE_SECONDS = 5.0  # httpx's keepalive_expiry


class GuardedResolver(AbstractResolver):
    """Resolves a name off the event loop and checks every address (netguard.check_host)."""

    def __init__(self, policy: PolicyOf) -> None:
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        policy = self._policy()
        loop = asyncio.get_running_loop()
        # getaddrinfo blocks: in the loop's executor, as aiohttp's own resolver does.
        addresses = await loop.run_in_executor(None, policy.check_host, host, port)
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in addresses
        ]

    async def close(self) -> None:
        return None


def guarded_socket_factory(policy: PolicyOf) -> Callable[[Any], socket.socket]:
    """aiohttp's socket factory: the address a socket will connect to is checked first."""

    def make(addr_info) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        policy().check_address(sockaddr[0])
        return socket.socket(family=family, type=type_, proto=proto)

    return make


class AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx's AsyncBaseTransport on one aiohttp session, made on first use on the running
    event loop (a session belongs to its loop, as an httpx AsyncClient's connections do).

    `guard()` (called by providers.netguard.install_guard, through providers.clients'
    transport hooks) makes a policy check every new connection; without it nothing is
    checked, as with httpcore's transport when no hook is installed.
    """

    def __init__(self, *, limits: httpx.Limits | None = None) -> None:
        self.policy: PolicyOf | None = None
        self._refusals: tuple[type[BaseException], ...] = ()
        self._limits = limits or httpx.Limits()
        self._session: aiohttp.ClientSession | None = None
        self._h1: H1Pool | None = None
        self._ssl = None

    def guard(self, policy: PolicyOf, refusals: tuple[type[BaseException], ...]) -> None:
        """Check every new connection with `policy()`; what it raises (`refusals`) reaches
        the caller unchanged, not as a connection error. Before the first request only."""
        self.policy = policy
        self._refusals = refusals

    def _open_session(self) -> aiohttp.ClientSession:
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context()
        options: dict[str, Any] = {}
        if self.policy is not None:
            options["resolver"] = GuardedResolver(self.policy)
            options["socket_factory"] = guarded_socket_factory(self.policy)
        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections or 0,
            limit_per_host=0,
            keepalive_timeout=self._limits.keepalive_expiry or KEEPALIVE_SECONDS,
            ssl=self._ssl,
            use_dns_cache=False,  # resolve (and check) for every new connection
            happy_eyeballs_delay=None,  # addresses one by one: a refusal is never raced
            **options,
        )
        return aiohttp.ClientSession(
            connector=connector,
            trust_env=False,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None),
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            requote_redirect_url=False,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if isinstance(request.stream, httpx.ByteStream):
            body = request.content
        else:  # multipart uploads and other streams: read once, sent with their length
            body = await request.aread()
        if request.url.scheme == "http":
            # Plain HTTP on the lean HTTP/1.1 client (providers.h1), same guard and errors.
            pool = self._h1
            if pool is None:
                pool = self._h1 = H1Pool(
                    max_connections=self._limits.max_connections,
                    keepalive_expiry=self._limits.keepalive_expiry or KEEPALIVE_SECONDS,
                    policy=self.policy,
                    refusals=self._refusals,
                )
            return await pool.handle(request, body)
        session = self._session
        if session is None or session.closed:
            session = self._session = self._open_session()
        timeouts = request.extensions.get("timeout") or {}
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=timeouts.get("pool"),
            sock_connect=timeouts.get("connect"),
            sock_read=timeouts.get("read"),
        )
        headers = CIMultiDict(
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers.raw
        )
        try:
            response = await session.request(
                request.method,
                URL(str(request.url), encoded=True),
                headers=headers,
                data=body or None,
                allow_redirects=False,
                timeout=timeout,
            )
        except Exception as exc:
            raise _httpx_error(exc, request, self._refusals, connecting=True) from exc
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=_ResponseBody(response, request, self._refusals),
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode("latin-1", "replace"),
            },
        )

    async def aclose(self) -> None:
        pool, self._h1 = self._h1, None
        if pool is not None:
            await pool.aclose()
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()


class _ResponseBody(httpx.AsyncByteStream):
    def __init__(
        self,
        response: aiohttp.ClientResponse,
        request: httpx.Request,
        refusals: tuple[type[BaseException], ...],
    ) -> None:
        self._response = response
        self._request = request
        self._refusals = refusals

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except Exception as exc:
            raise _httpx_error(exc, self._request, self._refusals, connecting=False) from exc

    async def aclose(self) -> None:
        response = self._response
        if response.content.is_eof():
            response.release()  # the connection goes back to the pool
        else:
            response.close()  # read partly: the connection cannot be reused


def _httpx_error(
    exc: Exception,
    request: httpx.Request,
    refusals: tuple[type[BaseException], ...],
    *,
    connecting: bool,
) -> BaseException:
    """The httpx exception for an aiohttp failure; the guard's refusals pass unchanged."""
    cause = getattr(exc, "os_error", None) if isinstance(exc, aiohttp.ClientOSError) else None
    for own in (exc, cause, exc.__cause__):
        if refusals and isinstance(own, refusals):
            return own
    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message, request=request)
    if isinstance(exc, asyncio.TimeoutError):  # SocketTimeoutError: no bytes within `read`
        return httpx.ReadTimeout(message, request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message, request=request)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return httpx.RemoteProtocolError(message, request=request)
    if isinstance(exc, aiohttp.ClientResponseError):  # not an HTTP answer (bad status line...)
        return httpx.RemoteProtocolError(message, request=request)
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx.InvalidURL(message)
    if isinstance(exc, aiohttp.ClientError | OSError):
        return (httpx.ConnectError if connecting else httpx.ReadError)(message, request=request)
    return exc
