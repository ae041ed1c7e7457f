"""Outbound address guard against SSRF through user-supplied base URLs.

A tenant chooses `base_url` / `api_base`, so an unchecked URL would let it make the service
call cloud metadata endpoints, Redis on the same host or anything else inside the network.
Each provider call runs under a `NetworkPolicy`, chosen by its factory:

- hosted factories (OpenAI, Anthropic...) may reach public addresses and the networks in
  LLM_HOSTED_ALLOWED_NETWORKS (an internal gateway, say);
- self-hosted factories (Ollama, VLLM, OpenAI-API-Compatible...) may reach public addresses
  and the networks in LLM_SELF_HOSTED_ALLOWED_NETWORKS (by default loopback and the private
  ranges when DEBUG, none in production unless the operator lists them);
- whatever the settings say: only http and https, no credentials in the URL, and link-local
  addresses, cloud metadata endpoints, multicast, unspecified and reserved addresses are
  never called. An IPv6 form of an IPv4 address (`::ffff:a.b.c.d`, 6to4) is judged as that
  IPv4 address, and `::1` as 127.0.0.1.

The URL is checked when it is saved and before each attempt, and the address each new
connection really goes to is checked again when it is opened: a name that resolved to a public
address when saved and to an internal one later (DNS rebinding) is still refused. The policy
is also the key of the connection pool (providers.clients): a kept-alive connection is only
reused by calls under the policy that opened it, so a hosted call can never ride a loopback
connection a self-hosted call left in the pool.

Refusals are logged with their reason for the operator; callers are only ever told that no
model server could be reached at the address (providers.http), the same words as for a closed
port or a server that is not a model server, so the guard is no port-scan oracle.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import ipaddress
import socket
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from urllib.parse import urlsplit

import anyio.to_thread
from django.conf import settings

from .aiotransport import AiohttpTransport
from .factories import SELF_HOSTED_FACTORIES

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

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

# Words the network settings accept besides CIDRs.
NETWORK_NAMES: dict[str, tuple[str, ...]] = {
    "loopback": ("127.0.0.0/8", "::1/128"),
    "private": ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"),
}

HOSTED = "hosted"
SELF_HOSTED = "self-hosted"
WEBHOOK = "webhook"
_SETTINGS = {
    HOSTED: "LLM_HOSTED_ALLOWED_NETWORKS",
    SELF_HOSTED: "LLM_SELF_HOSTED_ALLOWED_NETWORKS",
    # Tenants' alert webhooks (usage.services.alerts): public addresses and these.
    WEBHOOK: "ALERT_WEBHOOK_ALLOWED_NETWORKS",
}
_IPV4_LOOPBACK = ipaddress.IPv4Address("127.0.0.1")


class BlockedAddressError(ValueError):
    """The URL or the address it resolves to may not be called. The message says why, for
    the operator's logs; callers are told providers.errors.UNREACHABLE."""


class InvalidURLError(BlockedAddressError):
    """The URL's form is refused (scheme, credentials, no host): safe to show as it is."""


class UnresolvedHostError(OSError):
    """The host name does not resolve (now): a network failure, not a refusal."""

    def __init__(self, host: str, reason: str = "") -> None:
        super().__init__(f"could not resolve {host}" + (f" ({reason})" if reason else ""))
        self.host = host


@functools.lru_cache(maxsize=64)
def parse_networks(items: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    """CIDRs and the words of NETWORK_NAMES as networks; ValueError names a bad item."""
    networks: list[IPNetwork] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        for cidr in NETWORK_NAMES.get(item.lower(), (item,)):
            try:
                networks.append(ipaddress.ip_network(cidr, strict=False))
            except ValueError:
                known = ", ".join(NETWORK_NAMES)
                raise ValueError(f"{item!r} is neither a CIDR nor one of: {known}") from None
    return tuple(networks)


def _effective(ip: IPAddress) -> IPAddress:
    """The address a connection to `ip` really reaches, for judging it."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip.is_loopback:
            return _IPV4_LOOPBACK
    return ip


@dataclass(frozen=True)
class NetworkPolicy:
    """Where the calls of one class of factories may connect. Hashable: it is also the key of
    the connection pool those calls share (see providers.clients)."""

    name: str
    allowed_networks: tuple[IPNetwork, ...] = ()
    # Send calls through the environment's HTTP(S)_PROXY (NO_PROXY honoured). The proxy
    # then resolves names and connects, so the URL check resolves names itself first.
    trust_env: bool = False

    @property
    def setting(self) -> str:
        return _SETTINGS.get(self.name, "LLM_HOSTED_ALLOWED_NETWORKS")

    def check_address(self, address: IPAddress | str) -> None:
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        target = _effective(ip)
        if ip in METADATA_ADDRESSES or target in METADATA_ADDRESSES or target.is_link_local:
            raise BlockedAddressError(
                f"address {ip} is link-local or a cloud metadata endpoint and is never called"
            )
        if target.is_multicast or target.is_unspecified or target.is_reserved:
            raise BlockedAddressError(f"address {ip} is not a unicast address")
        if any(a in network for a in (ip, target) for network in self.allowed_networks):
            return
        if not target.is_global:
            raise BlockedAddressError(
                f"address {ip} is not public and not in {self.setting} ({self.name} factories)"
            )

    def check_host(self, host: str, port: int) -> list[str]:
        """Every address `host` resolves to, all checked; raises if any is refused."""
        if host.lower().rstrip(".") in METADATA_HOSTNAMES:
            raise BlockedAddressError(f"host {host!r} is a cloud metadata endpoint")
        addresses = resolve(host, port)
        for address in addresses:
            self.check_address(address)
        return addresses

    def check_url(self, url: str, *, resolve_host: bool = True) -> None:
        """Refuse a base URL that is not http(s) or that points where calls may not go.

        Without `resolve_host` a host name is only checked against the metadata names (the
        connect-time check sees its addresses). With it, a name that does not resolve raises
        UnresolvedHostError.
        """
        host, port = _split(url)
        if not resolve_host:
            _check_unresolved(self, host)
            return
        literal = _literal(host)
        if literal is not None:
            self.check_address(literal)
        else:
            self.check_host(host, port)


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


@functools.lru_cache(maxsize=1024)
def _check_unresolved(policy: NetworkPolicy, host: str) -> None:
    """check_url() without resolving: a pure function of the (immutable) policy and the host,
    so a host that passed is remembered (a refusal raises, and is never cached)."""
    literal = _literal(host)
    if literal is not None:
        policy.check_address(literal)
    elif host.lower().rstrip(".") in METADATA_HOSTNAMES:
        raise BlockedAddressError(f"host {host!r} is a cloud metadata endpoint")


def _split(url: str) -> tuple[str, int]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidURLError(f"{url!r} is not a valid URL") from exc
    if parts.scheme not in {"http", "https"}:
        raise InvalidURLError(f"only http and https URLs are allowed, not {parts.scheme!r}")
    if not parts.hostname:
        raise InvalidURLError(f"{url!r} has no host")
    if parts.username or parts.password:
        raise InvalidURLError("URLs with embedded credentials are not allowed")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnresolvedHostError(host, exc.strerror or "") from exc
    return list(dict.fromkeys(info[4][0] for info in infos))


# --- the policies, from the settings ----------------------------------------------------------


def _setting(name: str, default):
    return getattr(settings, name, default)


def policy_named(name: str) -> NetworkPolicy:
    """The current policy `name` (HOSTED, SELF_HOSTED or WEBHOOK), read from the settings."""
    networks = parse_networks(tuple(_setting(_SETTINGS[name], ())))
    return _policy(name, networks, bool(_setting("LLM_PROXY_FROM_ENV", False)))


@functools.lru_cache(maxsize=16)
def _policy(name: str, networks: tuple[IPNetwork, ...], trust_env: bool) -> NetworkPolicy:
    # One object per distinct policy, so pool lookups hash and compare it cheaply.
    return NetworkPolicy(name, networks, trust_env)


def policy_for(factory: str) -> NetworkPolicy:
    """The policy the calls of `factory` run under."""
    return policy_named(SELF_HOSTED if factory in SELF_HOSTED_FACTORIES else HOSTED)


def check_base_url(url: str, *, factory: str) -> None:
    """The check when a base URL is saved: BlockedAddressError if it may not be called.

    A name that does not resolve now is let through: it reaches nothing, and the validation
    that follows reports it as the network failure it is (the connect-time check runs again).
    """
    with contextlib.suppress(UnresolvedHostError):
        policy_for(factory).check_url(url, resolve_host=True)


# --- connect-time enforcement (httpcore network backends) -------------------------------------


class GuardedBackend:
    """Wraps an httpcore NetworkBackend: resolves, checks, then connects to the checked IP.

    TLS still verifies and sends SNI for the original host name, because httpcore passes the
    origin's host to start_tls separately from the address we connect to.
    """

    def __init__(self, inner, policy: Callable[[], NetworkPolicy]) -> None:
        self._inner = inner
        self._policy = policy

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        host_text = host.decode() if isinstance(host, bytes) else host
        last_error: Exception | None = None
        for address in self._policy().check_host(host_text, port):
            try:
                return self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except Exception as exc:  # try the next address, as create_connection would
                last_error = exc
        assert last_error is not None
        raise last_error

    def connect_unix_socket(self, *args, **kwargs):
        raise BlockedAddressError("unix sockets are not used for provider calls")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class AsyncGuardedBackend:
    def __init__(self, inner, policy: Callable[[], NetworkPolicy]) -> None:
        self._inner = inner
        self._policy = policy

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        host_text = host.decode() if isinstance(host, bytes) else host
        policy = self._policy()
        # getaddrinfo blocks; run it off the event loop.
        addresses = await anyio.to_thread.run_sync(lambda: policy.check_host(host_text, port))
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


def install_guard(transport, pool: Hashable) -> None:
    """Put the connect-time guard into an httpx (Async)HTTPTransport's connection pool, or into
    an AiohttpTransport's resolver and socket factory.

    A pool keyed by a NetworkPolicy applies that policy to every connection it opens; any
    other pool (direct calls that named none) applies the hosted policy of the moment.
    """
    policy = (lambda: pool) if isinstance(pool, NetworkPolicy) else (lambda: policy_named(HOSTED))
    if isinstance(transport, AiohttpTransport):
        # Its resolver and socket factory ask the policy (providers.aiotransport).
        transport.guard(policy, (BlockedAddressError, UnresolvedHostError))
        return
    # httpx exposes no public hook for the network backend; the pool keeps it here.
    pool_impl = transport._pool
    inner = pool_impl._network_backend
    if isinstance(inner, GuardedBackend | AsyncGuardedBackend):
        return
    if inspect.iscoroutinefunction(getattr(inner, "connect_tcp", None)):
        pool_impl._network_backend = AsyncGuardedBackend(inner, policy)
    else:
        pool_impl._network_backend = GuardedBackend(inner, policy)
