"""Targets of the gateway benchmarks: OpenAI-compatible endpoints to put the same load on.

A target factory is called as `factory(upstream, workers)` and returns a context manager: on
entry it starts what serves the endpoint (on 127.0.0.1) and gives the `Target` to load; on exit
it stops it. It raises `NotAvailable` (on the call or on entry) when the target cannot run, and
the benchmark prints "not available" with the reason. `upstream` is the fake provider (its own
process): a target forwards to `upstream.base_url` with `upstream.api_key` for the model
`upstream.model`. `workers` is the number of server processes every proxy gets (the same for
all, so that throughput compares like with like).

Adding ragllm's gateway (issue 10): make `ragllm_gateway` a `@contextmanager` that
1. creates a tenant whose OpenAI model points at the upstream (`adapters.create_chat_tenant(
   upstream.base_url, upstream.model)`) and an API token of that tenant with accounting and
   quotas on (a quota large enough never to refuse);
2. starts the production server command (the ASGI server with `workers` workers) on
   `common.free_port()`, with `DATABASE_URL=common.database_url()` and the run's REDIS_URL;
3. waits for it (`common.wait_for_http`), yields `Target("ragllm gateway",
   f"http://127.0.0.1:{port}/v1", token, f"{upstream.model}@OpenAI")`, and stops it.
Issue 11 fills `ragllm_gateway_limited_key` the same way, with a key carrying RPM, TPM and a
budget set high enough never to refuse, so that the benchmark measures their cost alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

from .common import Context, NotAvailable
from .workload import API_KEY


@dataclass(frozen=True)
class Target:
    name: str
    base_url: str  # the OpenAI-style base, ending in /v1
    api_key: str
    model: str

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
    """ragllm's /v1 gateway with accounting and quotas on (issue 10 fills this in)."""
    raise NotAvailable("the gateway is not built yet (issue 10)")


def ragllm_gateway_limited_key(upstream: Target, workers: int) -> AbstractContextManager[Target]:
    """The same gateway, called with a key carrying RPM, TPM and a budget (issue 11)."""
    raise NotAvailable("keys with limits are not built yet (issue 11)")
