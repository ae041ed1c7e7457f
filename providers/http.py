"""The one way adapters talk HTTP: pooled clients, timeouts, retries, error mapping, a guard.

Every adapter request goes through `request()` / `open_stream()` (or their async twins), so
policies live in one place:

- one pooled `httpx.Client` per process (rebuilt after fork) and one `httpx.AsyncClient` per
  process and event loop (an AsyncClient's connections belong to the loop that opened them);
- each attempt is bounded by `LLM_TIMEOUT_SECONDS`; retryable failures (rate limit, 5xx,
  timeout, connection) are retried at most `LLM_MAX_RETRIES` times with capped, fully
  jittered exponential backoff from `LLM_BASE_DELAY`, honouring `Retry-After`;
- a streamed request is retried only until its response is handed to the caller: after the
  first body byte reaches the caller, a failure is the caller's to report;
- an optional `guard(url)` runs before every attempt; what it raises propagates unchanged
  and nothing is sent. An address guard against SSRF through user-supplied base URLs plugs
  in there per request, or into every connection with `add_transport_hook()`. Redirects are
  never followed, so the guarded URL is the only one contacted.
"""

from __future__ import annotations

import asyncio
import atexit
import email.utils
import json as jsonlib
import logging
import os
import random
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .classify import ErrorContext
from .errors import InvalidRequestError, MaxRetriesExceededError, ProviderError
from .netguard import BlockedAddressError

logger = logging.getLogger(__name__)

Guard = Callable[[httpx.URL], None]
T = TypeVar("T")

DEFAULT_TIMEOUT_SECONDS = 60.0
DEFAULT_MAX_RETRIES = 3
DEFAULT_BASE_DELAY = 1.0
# RAGFlow slept LLM_BASE_DELAY * uniform(10, 150), i.e. up to five minutes; we never wait
# longer than this between attempts, whatever the backoff or Retry-After says.
MAX_RETRY_DELAY = 30.0
# Error bodies are read for classification only; a proxy's HTML page needs no more than this.
MAX_ERROR_BODY_BYTES = 64 * 1024
USER_AGENT = "ragllm/0.1"


def _setting(name: str, default: float) -> Any:
    # Read at call time so tests and operators can change settings without re-importing;
    # fall back to the default when Django settings are not configured (scripts, REPL).
    try:
        return getattr(settings, name, default)
    except ImproperlyConfigured:
        return default


# --- retry policy ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to retry, how long to wait, and how long one attempt may take.

    `sleep`, `async_sleep` and `jitter` are injectable so tests never sleep for real.
    """

    max_retries: int = DEFAULT_MAX_RETRIES
    base_delay: float = DEFAULT_BASE_DELAY
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    max_delay: float = MAX_RETRY_DELAY
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    async_sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, repr=False)
    jitter: Callable[[], float] = field(default=random.random, repr=False)

    @classmethod
    def from_settings(cls, **overrides: Any) -> RetryPolicy:
        policy = cls(
            max_retries=int(_setting("LLM_MAX_RETRIES", DEFAULT_MAX_RETRIES)),
            base_delay=float(_setting("LLM_BASE_DELAY", DEFAULT_BASE_DELAY)),
            timeout=float(_setting("LLM_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS)),
        )
        return replace(policy, **overrides) if overrides else policy

    def delay(self, retry: int, error: ProviderError) -> float:
        """Seconds to wait before retry number `retry` (0-based) after `error`."""
        if error.retry_after is not None:
            return min(max(error.retry_after, 0.0), self.max_delay)
        # "Full jitter": uniform in [0, min(cap, base * 2^n)] spreads retrying clients apart.
        ceiling = min(self.max_delay, self.base_delay * (2**retry))
        return ceiling * self.jitter()


def send_with_retries(
    attempt: Callable[[], T], *, policy: RetryPolicy, secrets: tuple[str, ...] = ()
) -> T:
    """Call `attempt` until it succeeds, fails for good, or the retries run out."""
    retries = 0
    while True:
        try:
            return attempt()
        except ProviderError as error:
            _give_up_or_log(error, retries, policy, secrets)
            policy.sleep(policy.delay(retries, error))
            retries += 1


async def asend_with_retries(
    attempt: Callable[[], Awaitable[T]], *, policy: RetryPolicy, secrets: tuple[str, ...] = ()
) -> T:
    retries = 0
    while True:
        try:
            return await attempt()
        except ProviderError as error:
            _give_up_or_log(error, retries, policy, secrets)
            await policy.async_sleep(policy.delay(retries, error))
            retries += 1


def _give_up_or_log(
    error: ProviderError, retries: int, policy: RetryPolicy, secrets: tuple[str, ...]
) -> None:
    """Raise when `error` is final; otherwise log that a retry follows."""
    if not error.retryable:
        raise error
    if retries >= policy.max_retries:
        if retries == 0:
            raise error  # retries are disabled: report the error itself
        raise MaxRetriesExceededError(last_error=error, retries=retries, secrets=secrets) from error
    logger.warning("retrying after %s (retry %d of %d)", error, retries + 1, policy.max_retries)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from `Retry-After` (delta-seconds or HTTP date) or Azure's `retry-after-ms`."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


# --- pooled clients --------------------------------------------------------------------------

_lock = threading.Lock()
_client: httpx.Client | None = None
_client_pid: int | None = None
# Each loop's client, with the task that closes it when the loop shuts down.
_async_clients: dict[asyncio.AbstractEventLoop, tuple[httpx.AsyncClient, asyncio.Task]] = {}
_async_pid: int | None = None


TransportHook = Callable[[httpx.HTTPTransport | httpx.AsyncHTTPTransport], None]
_transport_hooks: list[TransportHook] = []
_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=50)


def add_transport_hook(hook: TransportHook) -> None:
    """Run `hook(transport)` on the transport of every client built from now on (a
    connect-time address guard installs itself this way). Clients built before are dropped,
    not closed, so requests in flight finish and the next call gets a hooked client."""
    global _client
    with _lock:
        if hook not in _transport_hooks:
            _transport_hooks.append(hook)
        _client = None
        _async_clients.clear()


def _new_client() -> httpx.Client:
    transport = httpx.HTTPTransport(limits=_LIMITS)
    for hook in _transport_hooks:
        hook(transport)
    return httpx.Client(
        transport=transport,
        timeout=httpx.Timeout(DEFAULT_TIMEOUT_SECONDS),
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT},
    )


def _new_async_client() -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(limits=_LIMITS)
    for hook in _transport_hooks:
        hook(transport)
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(DEFAULT_TIMEOUT_SECONDS),
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT},
    )


def get_client() -> httpx.Client:
    """This process's pooled client."""
    global _client, _client_pid
    pid = os.getpid()
    client = _client
    if client is None or _client_pid != pid or client.is_closed:
        with _lock:
            if _client is None or _client_pid != pid or _client.is_closed:
                # After a fork the parent's client shares its sockets with the parent; we
                # drop it without closing, so the parent's connections stay intact.
                _client = _new_client()
                _client_pid = pid
            client = _client
    return client


def get_async_client() -> httpx.AsyncClient:
    """The pooled async client of this process and of the running event loop."""
    global _async_pid
    loop = asyncio.get_running_loop()
    pid = os.getpid()
    with _lock:
        if _async_pid != pid:
            _async_clients.clear()
            _async_pid = pid
        for closed in [other for other in _async_clients if other.is_closed()]:
            del _async_clients[closed]
        entry = _async_clients.get(loop)
        if entry is None or entry[0].is_closed:
            client = _new_async_client()
            closer = loop.create_task(_close_with_loop(client), name="ragllm-http-client-closer")
            entry = _async_clients[loop] = (client, closer)
    return entry[0]


async def _close_with_loop(client: httpx.AsyncClient) -> None:
    # Waits for ever; asyncio.run() (and asgiref) cancel pending tasks before closing the
    # loop, which is when the client's connections must be closed, on the loop they belong to.
    try:
        await asyncio.Event().wait()
    finally:
        await client.aclose()


def close_clients() -> None:
    """Close this process's sync client (tests, shutdown). Async clients close with their loop."""
    global _client
    with _lock:
        if _client is not None and _client_pid == os.getpid():
            _client.close()
        _client = None


def _after_fork_in_child() -> None:
    global _lock, _client, _async_pid
    # The lock may have been held by another thread at fork time; it would never be released.
    _lock = threading.Lock()
    _client = None
    _async_clients.clear()
    _async_pid = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(close_clients)


# --- responses -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderResponse:
    """A fully read, successful (2xx) response."""

    status_code: int
    headers: httpx.Headers
    content: bytes
    url: httpx.URL

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The decoded JSON body; ValueError when it is not JSON."""
        return jsonlib.loads(self.content)


@dataclass(frozen=True)
class _Call:
    """One request, as rebuilt for each attempt."""

    method: str
    url: str | httpx.URL
    context: ErrorContext
    policy: RetryPolicy
    guard: Guard | None
    options: dict[str, Any]

    def build(self, client: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        timeout = httpx.Timeout(self.policy.timeout)
        try:
            request = client.build_request(self.method, self.url, timeout=timeout, **self.options)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise self.context.error(InvalidRequestError, f"bad provider URL: {exc}") from exc
        if self.guard is not None:
            self.guard(request.url)
        return request

    def failure(self, response: httpx.Response, body: bytes) -> ProviderError:
        if 300 <= response.status_code < 400:
            # Redirects are not followed: the target was never checked by the guard.
            return self.context.error(
                InvalidRequestError,
                f"HTTP {response.status_code}: the provider redirected; check the base URL",
                status=response.status_code,
            )
        # AWS names the error in a header ("ThrottlingException:http://internal...").
        aws_type = response.headers.get("x-amzn-errortype", "").split(":", 1)[0]
        return self.context.classify(
            response.status_code,
            body,
            retry_after=parse_retry_after(response.headers),
            signals=[aws_type] if aws_type else (),
        )

    def deadline(self) -> float:
        return time.monotonic() + self.policy.timeout

    def timed_out(self) -> ProviderError:
        return self.context.from_transport(
            httpx.ReadTimeout(f"no complete response within {self.policy.timeout:g}s")
        )


_REQUEST_OPTIONS = frozenset({"headers", "params", "json", "data", "files", "content"})


def _call(
    method: str,
    url: str | httpx.URL,
    *,
    context: ErrorContext,
    policy: RetryPolicy | None,
    guard: Guard | None,
    options: dict[str, Any],
) -> _Call:
    unknown = set(options) - _REQUEST_OPTIONS
    if unknown:
        raise TypeError(f"unexpected request option(s): {', '.join(sorted(unknown))}")
    options = {key: value for key, value in options.items() if value is not None}
    return _Call(method, url, context, policy or RetryPolicy.from_settings(), guard, options)


# --- sync ------------------------------------------------------------------------------------


def request(
    method: str,
    url: str | httpx.URL,
    *,
    context: ErrorContext,
    guard: Guard | None = None,
    policy: RetryPolicy | None = None,
    **options: Any,
) -> ProviderResponse:
    """Send a request with retries and return its fully read 2xx response.

    `options` are httpx's: headers, params, json, data, files, content.
    """
    call = _call(method, url, context=context, policy=policy, guard=guard, options=options)
    return send_with_retries(lambda: _attempt(call), policy=call.policy, secrets=context.secrets)


def open_stream(
    method: str,
    url: str | httpx.URL,
    *,
    context: ErrorContext,
    guard: Guard | None = None,
    policy: RetryPolicy | None = None,
    **options: Any,
) -> httpx.Response:
    """Send a request with retries and return the open 2xx response; the caller closes it.

    Failures before the response is returned (error statuses, connect errors, timeouts
    waiting for headers) are retried; failures while the caller reads the body are not.
    """
    call = _call(method, url, context=context, policy=policy, guard=guard, options=options)
    return send_with_retries(lambda: _send(call), policy=call.policy, secrets=context.secrets)


def _send(call: _Call) -> httpx.Response:
    client = get_client()
    request_ = call.build(client)
    try:
        response = client.send(request_, stream=True)
    except httpx.HTTPError as exc:
        raise call.context.from_transport(exc) from exc
    except BlockedAddressError as exc:
        # The connect-time address guard refused where the host resolved to (not retried).
        raise call.context.error(
            InvalidRequestError, f"the base URL is not allowed: {exc}"
        ) from None
    if response.status_code >= 300:
        try:
            body = _read_limited(response)
        except httpx.HTTPError:
            body = b""
        finally:
            response.close()
        raise call.failure(response, body)
    return response


def _read_limited(response: httpx.Response) -> bytes:
    body = b""
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) >= MAX_ERROR_BODY_BYTES:
            break
    return body[:MAX_ERROR_BODY_BYTES]


def _attempt(call: _Call) -> ProviderResponse:
    deadline = call.deadline()
    response = _send(call)
    try:
        chunks = []
        # httpx bounds each read; the deadline bounds the whole attempt, so a provider that
        # trickles a body byte by byte cannot hold a worker forever.
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            if time.monotonic() > deadline:
                raise call.timed_out()
    except httpx.HTTPError as exc:
        raise call.context.from_transport(exc) from exc
    finally:
        response.close()
    return ProviderResponse(
        response.status_code, response.headers, b"".join(chunks), response.request.url
    )


# --- async -----------------------------------------------------------------------------------


async def arequest(
    method: str,
    url: str | httpx.URL,
    *,
    context: ErrorContext,
    guard: Guard | None = None,
    policy: RetryPolicy | None = None,
    **options: Any,
) -> ProviderResponse:
    """Async `request()`."""
    call = _call(method, url, context=context, policy=policy, guard=guard, options=options)
    return await asend_with_retries(
        lambda: _aattempt(call), policy=call.policy, secrets=context.secrets
    )


async def aopen_stream(
    method: str,
    url: str | httpx.URL,
    *,
    context: ErrorContext,
    guard: Guard | None = None,
    policy: RetryPolicy | None = None,
    **options: Any,
) -> httpx.Response:
    """Async `open_stream()`; the caller must `await response.aclose()`."""
    call = _call(method, url, context=context, policy=policy, guard=guard, options=options)
    return await asend_with_retries(
        lambda: _asend(call), policy=call.policy, secrets=context.secrets
    )


async def _asend(call: _Call) -> httpx.Response:
    client = get_async_client()
    request_ = call.build(client)
    try:
        response = await client.send(request_, stream=True)
    except httpx.HTTPError as exc:
        raise call.context.from_transport(exc) from exc
    except BlockedAddressError as exc:
        # The connect-time address guard refused where the host resolved to (not retried).
        raise call.context.error(
            InvalidRequestError, f"the base URL is not allowed: {exc}"
        ) from None
    if response.status_code >= 300:
        try:
            body = await _aread_limited(response)
        except httpx.HTTPError:
            body = b""
        finally:
            await response.aclose()
        raise call.failure(response, body)
    return response


async def _aread_limited(response: httpx.Response) -> bytes:
    body = b""
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) >= MAX_ERROR_BODY_BYTES:
            break
    return body[:MAX_ERROR_BODY_BYTES]


async def _aattempt(call: _Call) -> ProviderResponse:
    try:
        async with asyncio.timeout(call.policy.timeout):
            response = await _asend(call)
            try:
                content = await response.aread()
            finally:
                await response.aclose()
    except TimeoutError as exc:
        raise call.timed_out() from exc
    except httpx.HTTPError as exc:
        raise call.context.from_transport(exc) from exc
    return ProviderResponse(response.status_code, response.headers, content, response.request.url)
