"""Fixtures for the provider layer: fake sleeps, adapters aimed at the fake provider.

The `fake_provider` session fixture and the reset before each test live in tests/conftest.py.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pytest

from providers.registry import build_adapter
from providers.retry import RetryPolicy
from tests.fakeprovider import FakeProviderServer

KEY = "sk-test-a1b2c3d4e5f6g7h8"


def error_chain(error):
    """An error and every error it was raised from (or while handling)."""
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


class Sleeps(list):
    """Records the delays a RetryPolicy asks for instead of sleeping."""

    def sleep(self, seconds: float) -> None:
        self.append(seconds)

    async def async_sleep(self, seconds: float) -> None:
        self.append(seconds)
        await asyncio.sleep(0)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def policy(sleeps: Sleeps) -> RetryPolicy:
    """Three retries, no real sleeping, jitter pinned to its maximum, a short timeout."""
    return RetryPolicy(
        max_retries=3,
        base_delay=1.0,
        timeout=5.0,
        sleep=sleeps.sleep,
        async_sleep=sleeps.async_sleep,
        jitter=lambda: 1.0,
    )


@pytest.fixture
def make_adapter(fake_provider: FakeProviderServer, policy: RetryPolicy) -> Callable:
    """build_adapter aimed at the fake provider's hosted-OpenAI root by default."""

    def make(
        model_type: str = "chat",
        factory: str = "OpenAI",
        model_name: str = "gpt-4o-mini",
        api_key: object = KEY,
        base_url: str | None = None,
        **options: object,
    ):
        options.setdefault("retry_policy", policy)
        return build_adapter(
            model_type=model_type,
            factory=factory,
            model_name=model_name,
            api_key=api_key,
            base_url=base_url or fake_provider.url("/v1"),
            **options,
        )

    return make


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a network connection fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
