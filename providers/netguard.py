"""Outbound address guard against SSRF through user-supplied base URLs.

A tenant chooses `base_url` / `api_base`, so an unchecked URL would let it make the service
call cloud metadata endpoints or internal services. Rules:

- only http and https;
- link-local addresses and cloud metadata endpoints are always refused;
- private, loopback and other non-public addresses are refused unless the call is for a
  self-hosted factory (`allow_private=True`) or the address is in LLM_ALLOWED_NETWORKS.

The URL is checked when it is saved and again when each connection is opened: the connect-time
check sees the address the socket really goes to, so a DNS name that resolves to a public
address when saved and to an internal one later (DNS rebinding) is still refused.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import ipaddress
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import anyio.to_thread
from django.conf import settings

from .errors import InvalidRequestError
from .factories import SELF_HOSTED_FACTORIES

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Metadata services of the major clouds, reachable from inside most VMs.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean...
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
    )
)
METADATA_HOSTNAMES = frozenset({"metadata.google.internal", "metadata", "instance-data"})


class BlockedAddressError(ValueError):
    """The URL or the address it resolves to may not be called. The message says why."""


@dataclass(frozen=True)
class NetworkPolicy:
    allow_private: bool = False


# The policy of the provider call in progress; read when a connection is opened.
_current_policy: contextvars.ContextVar[NetworkPolicy | None] = contextvars.ContextVar(
    "ragllm_network_policy", default=None
)


@contextlib.contextmanager
def network_policy(*, allow_private: bool) -> Iterator[NetworkPolicy]:
    token = _current_policy.set(NetworkPolicy(allow_private=allow_private))
    try:
        yield _current_policy.get()
    finally:
        _current_policy.reset(token)


def current_policy() -> NetworkPolicy:
    # No policy set means a call that did not declare itself self-hosted: the strict rules.
    return _current_policy.get() or NetworkPolicy(allow_private=False)


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [
        ipaddress.ip_network(item, strict=False)
        for item in getattr(settings, "LLM_ALLOWED_NETWORKS", [])
    ]


def check_address(address: IPAddress | str, *, allow_private: bool) -> None:
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in METADATA_ADDRESSES or ip.is_link_local:
        raise BlockedAddressError(
            f"address {ip} is link-local or a cloud metadata endpoint and is never called"
        )
    if any(ip in network for network in _allowed_networks()):
        return
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        raise BlockedAddressError(f"address {ip} is not a unicast address")
    if not ip.is_global and not allow_private:
        raise BlockedAddressError(
            f"address {ip} is private or loopback; only self-hosted factories may use such "
            "addresses (or add it to LLM_ALLOWED_NETWORKS)"
        )


def resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise BlockedAddressError(f"host {host!r} does not resolve ({exc.strerror})") from exc
    return list(dict.fromkeys(info[4][0] for info in infos))


def check_host(host: str, port: int, *, allow_private: bool) -> list[str]:
    """Every address `host` resolves to, all checked; raises if any is refused."""
    if host.lower().rstrip(".") in METADATA_HOSTNAMES:
        raise BlockedAddressError(f"host {host!r} is a cloud metadata endpoint")
    addresses = resolve(host, port)
    for address in addresses:
        check_address(address, allow_private=allow_private)
    return addresses


def check_url(url: str, *, allow_private: bool, resolve_host: bool = True) -> None:
    """Refuse a base URL that is not http(s) or that points where calls may not go."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BlockedAddressError(f"{url!r} is not a valid URL") from exc
    if parts.scheme not in {"http", "https"}:
        raise BlockedAddressError(f"only http and https URLs are allowed, not {parts.scheme!r}")
    if not parts.hostname:
        raise BlockedAddressError(f"{url!r} has no host")
    if parts.username or parts.password:
        raise BlockedAddressError("URLs with embedded credentials are not allowed")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        literal = ipaddress.ip_address(parts.hostname)
    except ValueError:
        literal = None
    if literal is not None:
        check_address(literal, allow_private=allow_private)
    elif resolve_host:
        check_host(parts.hostname, port, allow_private=allow_private)
    elif parts.hostname.lower().rstrip(".") in METADATA_HOSTNAMES:
        raise BlockedAddressError(f"host {parts.hostname!r} is a cloud metadata endpoint")


# --- connect-time enforcement (httpcore network backends) -------------------------------------


class GuardedBackend:
    """Wraps an httpcore NetworkBackend: resolves, checks, then connects to the checked IP.

    TLS still verifies and sends SNI for the original host name, because httpcore passes the
    origin's host to start_tls separately from the address we connect to.
    """

    def __init__(self, inner) -> None:
        self._inner = inner

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        host_text = host.decode() if isinstance(host, bytes) else host
        policy = current_policy()
        last_error: Exception | None = None
        for address in check_host(host_text, port, allow_private=policy.allow_private):
            try:
                return self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except OSError as exc:  # try the next address, as create_connection would
                last_error = exc
            except Exception as exc:  # httpcore.ConnectError and friends
                last_error = exc
        assert last_error is not None
        raise last_error

    def connect_unix_socket(self, *args, **kwargs):
        raise BlockedAddressError("unix sockets are not used for provider calls")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class AsyncGuardedBackend:
    def __init__(self, inner) -> None:
        self._inner = inner

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        host_text = host.decode() if isinstance(host, bytes) else host
        policy = current_policy()
        # getaddrinfo blocks; run it off the event loop.
        addresses = await anyio.to_thread.run_sync(
            lambda: check_host(host_text, port, allow_private=policy.allow_private)
        )
        last_error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except Exception as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(self, *args, **kwargs):
        raise BlockedAddressError("unix sockets are not used for provider calls")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def install_guard(transport) -> None:
    """Put the connect-time guard into an httpx (Async)HTTPTransport's connection pool."""
    # httpx exposes no public hook for the network backend; the pool keeps it here.
    pool = transport._pool
    inner = pool._network_backend
    if isinstance(inner, GuardedBackend | AsyncGuardedBackend):
        return
    is_async = hasattr(inner, "connect_tcp") and _is_coroutine_function(inner.connect_tcp)
    pool._network_backend = AsyncGuardedBackend(inner) if is_async else GuardedBackend(inner)


def _is_coroutine_function(func) -> bool:
    return inspect.iscoroutinefunction(func)


def guard_for(*, factory: str, model: str = "") -> Callable[[object], None]:
    """The per-attempt guard of one adapter (see providers.http `guard`).

    It refuses a URL that may never be called, and sets the policy that the connect-time check
    applies to the addresses the host resolves to when the connection is opened.
    """
    allow_private = factory in SELF_HOSTED_FACTORIES

    def guard(url) -> None:
        _current_policy.set(NetworkPolicy(allow_private=allow_private))
        try:
            check_url(str(url), allow_private=allow_private, resolve_host=False)
        except BlockedAddressError as exc:
            raise InvalidRequestError(
                f"the base URL is not allowed: {exc}", provider=factory, model=model
            ) from None

    return guard
