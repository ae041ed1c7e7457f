"""The HTTP exchange of every provider call, written once as flows (see providers.runner).

- Each call runs under its network policy (providers.netguard): every attempt's URL is checked
  against it before anything is sent, the connection pool is the policy's own and checks each
  address it connects to; redirects are never followed, so the checked URL is the only one
  contacted. An optional `guard(url)` runs first, and what it raises propagates unchanged.
- An error status becomes the ProviderError its status and body mean (providers.classify);
  transport failures become connection errors or timeouts, never authentication errors.
  An address the policy refuses, a port where nothing answers and an answer that is not a
  model server's are all the same ProviderConnectionError, "could not reach a model server
  at this address", and nothing of what such a server sent is repeated (no port-scan oracle,
  no reflected bodies); the reason goes to the log.
- `fetch()` reads the whole body of a 2xx answer within the attempt's timeout; `stream()` hands
  over the open response of a stream. Both retry (providers.retry) only until the answer is
  handed over: once the first body byte reaches the caller, a failure is the caller's.

Adapters describe their requests as `Request`s and call `fetch()` / `stream()` inside their
flows; `request()`, `open_stream()` and their async twins run one such flow directly.
"""

from __future__ import annotations

import json as jsonlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import httpx

from .classify import ErrorContext, url_origin
from .errors import (
    InvalidRequestError,
    ProviderConnectionError,
    ProviderError,
    UnreachableError,
)
from .netguard import (
    HOSTED,
    BlockedAddressError,
    InvalidURLError,
    NetworkPolicy,
    UnresolvedHostError,
    policy_named,
)
from .retry import RetryPolicy, parse_retry_after, with_retries
from .runner import Flow, Open, Read, arun, run

logger = logging.getLogger(__name__)

Guard = Callable[[httpx.URL], None]

# Error bodies are read for classification only; a proxy's HTML page needs no more than this.
MAX_ERROR_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class Request:
    """One request as an adapter describes it, before any I/O. `url` may be relative to the
    adapter's base URL; the other fields are httpx's request options."""

    method: str
    url: str | httpx.URL
    headers: Mapping[str, str] | None = None
    params: Mapping[str, Any] | None = None
    json: Any = None
    data: Mapping[str, Any] | None = None
    files: Mapping[str, Any] | None = None
    content: bytes | None = None

    def options(self) -> dict[str, Any]:
        names = (f.name for f in fields(self) if f.name not in ("method", "url"))
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}


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
class Call:
    """A request with whom it is for: the error context, the retry policy, the network policy
    (None: the hosted factories' one) and an optional extra guard."""

    request: Request
    context: ErrorContext
    policy: RetryPolicy
    guard: Guard | None = None
    network: NetworkPolicy | None = None

    @property
    def pool(self) -> NetworkPolicy:
        """The network policy this call runs under, which is also its connection pool's key."""
        return self.network or policy_named(HOSTED)

    def build(self, client: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        request = self.request
        timeout = httpx.Timeout(self.policy.timeout)
        try:
            built = client.build_request(
                request.method, _parsed(request.url), timeout=timeout, **request.options()
            )
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise self.context.error(InvalidRequestError, f"bad provider URL: {exc}") from exc
        if self.guard is not None:
            self.guard(built.url)
        # Behind a proxy, which resolves names itself, the connect-time check never sees the
        # provider's addresses: the name is resolved and checked here instead.
        pool = self.pool
        pool.check_url(str(built.url), resolve_host=pool.trust_env)
        return built

    def failure(self, response: httpx.Response, body: bytes) -> ProviderError:
        if 300 <= response.status_code < 400:
            # Redirects are not followed (their target was never checked), and saying where
            # one pointed would tell what answers at this address.
            logger.info(
                "%s: HTTP %s redirect from %s not followed",
                self.context.provider,
                response.status_code,
                url_origin(response.request.url),
            )
            return self.context.unreachable(UnreachableError, status=response.status_code)
        # AWS names the error in a header ("ThrottlingException:http://internal...").
        aws_type = response.headers.get("x-amzn-errortype", "").split(":", 1)[0]
        return self.context.classify(
            response.status_code,
            body,
            retry_after=parse_retry_after(response.headers),
            signals=[aws_type] if aws_type else (),
        )

    def timed_out(self) -> ProviderError:
        return self.context.from_transport(
            httpx.ReadTimeout(f"no complete response within {self.policy.timeout:g}s")
        )


# httpx.URL is immutable: an adapter's few URLs are parsed once, not on every call (parsing
# is most of what building a request costs). Bounded: cleared when full.
_parsed_urls: dict[str, httpx.URL] = {}
MAX_PARSED_URLS = 1024


def _parsed(url: str | httpx.URL) -> httpx.URL:
    if isinstance(url, httpx.URL):
        return url
    parsed = _parsed_urls.get(url)
    if parsed is None:
        parsed = httpx.URL(url)  # raises InvalidURL for a bad one, which is never kept
        if len(_parsed_urls) >= MAX_PARSED_URLS:
            _parsed_urls.clear()
        _parsed_urls[url] = parsed
    return parsed


# --- one attempt -------------------------------------------------------------------------------


def open_once(call: Call) -> Flow[httpx.Response]:
    """One attempt: the 2xx response with its body unread, or the error its answer means."""
    try:
        response = yield Open(call)
    except httpx.HTTPError as exc:
        raise call.context.from_transport(exc, before_response=True) from exc
    except UnresolvedHostError as exc:
        raise call.context.error(ProviderConnectionError, f"could not resolve {exc.host}") from None
    except InvalidURLError as exc:
        raise call.context.error(InvalidRequestError, f"bad provider URL: {exc}") from None
    except BlockedAddressError as exc:
        # Refused by the network policy, before or when connecting: never retried.
        logger.warning("%s call refused by the network policy: %s", call.context.provider, exc)
        raise call.context.unreachable(UnreachableError) from None
    if response.status_code >= 300:
        try:
            body = yield Read(response, limit=MAX_ERROR_BODY_BYTES)
        except httpx.HTTPError:
            body = b""
        raise call.failure(response, body)
    return response


def read_answer(
    call: Call, response: httpx.Response, deadline: float | None = None
) -> Flow[ProviderResponse]:
    """The whole body of an open response (which is then closed)."""
    try:
        content = yield Read(response, deadline=deadline)
    except TimeoutError:
        raise call.timed_out() from None
    except httpx.HTTPError as exc:
        raise call.context.from_transport(exc) from exc
    return ProviderResponse(response.status_code, response.headers, content, response.request.url)


def fetch_once(call: Call) -> Flow[ProviderResponse]:
    """One attempt, its answer fully read within the policy's timeout."""
    deadline = time.monotonic() + call.policy.timeout
    response = yield from open_once(call)
    return (yield from read_answer(call, response, deadline))


# --- with retries ------------------------------------------------------------------------------


def fetch(call: Call) -> Flow[ProviderResponse]:
    """Send with retries and return the fully read 2xx answer."""
    return with_retries(lambda: fetch_once(call), policy=call.policy, secrets=call.context.secrets)


def stream(call: Call) -> Flow[httpx.Response]:
    """Send with retries and return the open 2xx response; whoever reads it closes it."""
    return with_retries(lambda: open_once(call), policy=call.policy, secrets=call.context.secrets)


def direct_call(
    method: str,
    url: str | httpx.URL,
    *,
    context: ErrorContext,
    guard: Guard | None = None,
    policy: RetryPolicy | None = None,
    network: NetworkPolicy | None = None,
    **options: Any,
) -> Call:
    """A Call from httpx-style arguments: `options` are headers, params, json, data, files,
    content (anything else is a TypeError); no policy means the settings' one, no network
    policy the hosted factories' one."""
    request = Request(method, url, **options)
    return Call(request, context, policy or RetryPolicy.from_settings(), guard, network)


def request(method: str, url: str | httpx.URL, **options: Any) -> ProviderResponse:
    """Send a request with retries and return its fully read 2xx answer (see direct_call)."""
    return run(fetch(direct_call(method, url, **options)))


async def arequest(method: str, url: str | httpx.URL, **options: Any) -> ProviderResponse:
    """Async `request()`."""
    return await arun(fetch(direct_call(method, url, **options)))


def open_stream(method: str, url: str | httpx.URL, **options: Any) -> httpx.Response:
    """Send a request with retries and return the open 2xx response; the caller closes it."""
    return run(stream(direct_call(method, url, **options)))


async def aopen_stream(method: str, url: str | httpx.URL, **options: Any) -> httpx.Response:
    """Async `open_stream()`; the caller must `await response.aclose()`."""
    return await arun(stream(direct_call(method, url, **options)))
