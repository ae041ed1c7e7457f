"""Pooled HTTP clients for provider calls.

One `httpx.Client` per process (rebuilt after a fork) and one `httpx.AsyncClient` per process
and event loop (an AsyncClient's connections belong to the loop that opened them; it is closed
when its loop shuts down). The async clients' transport is aiohttp's (providers.aiotransport:
the same guarantees as httpcore's, a fraction of its CPU per call); the sync ones keep
httpcore's. Redirects are never followed, so the URL the guard checked is the
only one contacted.

Clients are kept per pool key, and a connection is only ever reused by calls of the pool that
opened it: provider calls key their pool on their network policy (providers.netguard), so a
connection opened where one policy allows is never reused under a stricter one. Transport
hooks (the connect-time address guard) get the pool key with the transport.

The environment's proxy variables (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY) are ignored
(the connect-time guard would see the proxy's address, not the provider's) unless the pool key
has a true `trust_env` attribute (LLM_PROXY_FROM_ENV); proxied requests then go out through
transports of httpx's own (httpcore's, async included), and only the direct ones through the
hooked transport.
SSL_CERT_FILE / SSL_CERT_DIR are honoured either way.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
from collections.abc import Callable, Hashable
from typing import TypeVar

import httpx

from .aiotransport import AiohttpTransport

DEFAULT_POOL: Hashable = "default"
DEFAULT_TIMEOUT_SECONDS = 60.0
USER_AGENT = "ragllm/0.1"
LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=50)

TransportHook = Callable[
    [httpx.HTTPTransport | httpx.AsyncHTTPTransport | AiohttpTransport, Hashable], None
]
C = TypeVar("C", httpx.Client, httpx.AsyncClient)

_lock = threading.Lock()
_transport_hooks: list[TransportHook] = []
_clients: dict[Hashable, httpx.Client] = {}
# Each (loop, pool)'s client, with the task that closes it when the loop shuts down.
_async_clients: dict[
    tuple[asyncio.AbstractEventLoop, Hashable], tuple[httpx.AsyncClient, asyncio.Task]
] = {}
_pid: int | None = None


def add_transport_hook(hook: TransportHook) -> None:
    """Run `hook(transport, pool)` on the transport of every client built from now on (the
    connect-time address guard installs itself this way). Clients built before are dropped,
    not closed, so requests in flight finish and the next call gets a hooked client."""
    with _lock:
        if hook not in _transport_hooks:
            _transport_hooks.append(hook)
        _clients.clear()
        _async_clients.clear()


def _build(client_class: type[C], pool: Hashable) -> C:
    options = {
        "timeout": httpx.Timeout(DEFAULT_TIMEOUT_SECONDS),
        "follow_redirects": False,
        "headers": {"User-Agent": USER_AGENT},
    }
    if getattr(pool, "trust_env", False):
        # httpx mounts a proxy transport per proxy variable, and only without a transport of
        # ours: the hooks go into its default (direct) one.
        client = client_class(limits=LIMITS, trust_env=True, **options)
        transport = client._transport
    elif client_class is httpx.AsyncClient:
        transport = AiohttpTransport(limits=LIMITS)
        client = client_class(transport=transport, trust_env=False, **options)
    else:
        transport = httpx.HTTPTransport(limits=LIMITS)
        client = client_class(transport=transport, trust_env=False, **options)
    for hook in _transport_hooks:
        hook(transport, pool)
    return client


def _forget_other_process() -> None:
    # Call with _lock held. After a fork the parent's clients share their sockets with the
    # parent: they are dropped without closing, so the parent's connections stay intact.
    global _pid
    if _pid != os.getpid():
        _clients.clear()
        _async_clients.clear()
        _pid = os.getpid()


def get_client(pool: Hashable = DEFAULT_POOL) -> httpx.Client:
    """This process's pooled client."""
    with _lock:
        _forget_other_process()
        client = _clients.get(pool)
        if client is None or client.is_closed:
            client = _clients[pool] = _build(httpx.Client, pool)
    return client


def get_async_client(pool: Hashable = DEFAULT_POOL) -> httpx.AsyncClient:
    """The pooled async client of this process and of the running event loop."""
    loop = asyncio.get_running_loop()
    with _lock:
        _forget_other_process()
        for closed in [key for key in _async_clients if key[0].is_closed()]:
            del _async_clients[closed]
        entry = _async_clients.get((loop, pool))
        if entry is None or entry[0].is_closed:
            client = _build(httpx.AsyncClient, pool)
            closer = loop.create_task(_close_with_loop(client), name="ragllm-http-client-closer")
            entry = _async_clients[loop, pool] = (client, closer)
    return entry[0]


async def send_async(client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    """`client.send(request, stream=True)`, straight to the transport when it is aiohttp's.

    The client's own layers add nothing there (no auth, no redirects to follow, no proxy
    mounts) but a cookie jar, which a client shared by every tenant must not keep anyway, and
    they cost as much CPU as the transport itself. Proxied pools go through `client.send`.
    """
    transport = client._transport
    if type(transport) is AiohttpTransport and not client._mounts:
        response = await transport.handle_async_request(request)
        response.request = request
        return response
    return await client.send(request, stream=True)


async def _close_with_loop(client: httpx.AsyncClient) -> None:
    # Waits for ever; asyncio.run() (and asgiref) cancel pending tasks before closing the
    # loop, which is when the client's connections must be closed, on the loop they belong to.
    try:
        await asyncio.Event().wait()
    finally:
        await client.aclose()


def close_clients() -> None:
    """Close this process's sync clients (tests, shutdown). Async clients close with their loop."""
    with _lock:
        if _pid == os.getpid():
            for client in _clients.values():
                client.close()
        _clients.clear()


def _after_fork_in_child() -> None:
    global _lock
    # The lock may have been held by another thread at fork time; it would never be released.
    _lock = threading.Lock()
    _clients.clear()
    _async_clients.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(close_clients)
