"""Targets of the gateway benchmarks: OpenAI-compatible endpoints to put the same load on.

A target factory is called as `factory(upstream, workers)` and returns a context manager: on
entry it starts what serves the endpoint (on 127.0.0.1) and gives the `Target` to load; on exit
it stops it. It raises `NotAvailable` (on the call or on entry) when the target cannot run, and
the benchmark prints "not available" with the reason. `upstream` is the fake provider (its own
process): a target forwards to `upstream.base_url` with `upstream.api_key` for the model
`upstream.model`. `workers` is the number of server processes every proxy gets (the same for
all, so that throughput compares like with like).

ragllm's gateway (`ragllm_gateway`): a user whose tenant has the upstream's model as
`<model>@OpenAI` and a token quota too large ever to refuse (so every call reserves and
settles, accounting on), called with that user's API token through the production server
command (`manage.py serve`: granian, `workers` workers, production settings) on the run's
PostgreSQL and Redis. Issue 11 fills `ragllm_gateway_limited_key` the same way, with a key
carrying RPM, TPM and a budget set high enough never to refuse, so that the benchmark
measures their cost alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from decimal import Decimal

from .common import (
    ROOT,
    VAR,
    Context,
    database_url,
    free_port,
    stop_process,
    wait_for_http,
)
from .workload import API_KEY


@dataclass(frozen=True)
class Target:
    name: str
    base_url: str  # the OpenAI-style base, ending in /v1
    api_key: str
    model: str
    pid: int | None = None  # the server process (its tree's CPU time is measured), if ours

    @property
    def chat_url(self) -> str:
        return f"{self.base_url}/chat/completions"


TargetFactory = Callable[[Target, int], AbstractContextManager[Target]]


def upstream(ctx: Context) -> Target:
    """The fake provider, as its OpenAI family answers."""
    return Target("direct (fake provider)", ctx.fake_url + "/v1", API_KEY, "gpt-4o-mini")


@contextmanager
def direct(upstream: Target, workers: int) -> Iterator[Target]:
    """No proxy: the load goes to the upstream itself."""
    yield upstream


def litellm_proxy(upstream: Target, workers: int) -> AbstractContextManager[Target]:
    from .litellm_proxy import litellm_proxy as start

    return start(upstream, workers)


def ragllm_gateway(upstream: Target, workers: int) -> AbstractContextManager[Target]:
    """ragllm's /v1 gateway with accounting and quotas on, served as in production."""
    return _ragllm_gateway(upstream, workers, "ragllm gateway", token_quota=10**15)


def ragllm_gateway_no_quota(upstream: Target, workers: int) -> AbstractContextManager[Target]:
    """The same gateway and accounting (one usage record per call) for a tenant without a
    quota: no reservation, so what the quota path costs shows by difference."""
    return _ragllm_gateway(upstream, workers, "ragllm gateway, no quota", token_quota=None)


@contextmanager
def _ragllm_gateway(
    upstream: Target,
    workers: int,
    name: str,
    *,
    token_quota: int | None,
    key_limits: dict | None = None,
) -> Iterator[Target]:
    from . import adapters

    token = adapters.create_gateway_caller(
        upstream.base_url, upstream.model, token_quota=token_quota, key_limits=key_limits
    )
    port = free_port()
    VAR.mkdir(parents=True, exist_ok=True)
    log = VAR / "ragllm-gateway.log"
    env = dict(
        os.environ,
        DEBUG="False",
        DATABASE_URL=database_url(),
        WEB_WORKERS=str(workers),
        STATIC_ROOT=str(VAR / "static"),
    )
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=env,
        )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/admin/login/", process, 120, log)
        base = f"http://127.0.0.1:{port}/v1"
        yield Target(name, base, token, f"{upstream.model}@OpenAI", process.pid)
    finally:
        stop_process(process)


# Limits far above what the benchmark can reach: checked (and charged) on every call, never
# refusing. A refused call would show as a failure beside the figure.
KEY_LIMITS = {"rpm": 1_000_000_000, "tpm": 2_000_000_000, "budget": Decimal(1_000_000_000)}


def ragllm_gateway_limited_key(upstream: Target, workers: int) -> AbstractContextManager[Target]:
    """The same gateway, called with a key carrying RPM, TPM and a budget (issue 11)."""
    return _ragllm_gateway(
        upstream, workers, "ragllm gateway, key with limits", token_quota=10**15,
        key_limits=KEY_LIMITS,
    )  # fmt: skip


def ragllm_gateway_no_quota_limited_key(
    upstream: Target, workers: int
) -> AbstractContextManager[Target]:
    """The gateway without a tenant quota, called with a key carrying RPM, TPM and a budget:
    the limits' cost where nothing else waits on the database."""
    return _ragllm_gateway(
        upstream, workers, "ragllm gateway, no quota, key with limits", token_quota=None,
        key_limits=KEY_LIMITS,
    )  # fmt: skip
