"""The gateway under test: `manage.py serve` (granian, production settings) in a process of its
own on the test database, for the whole session; each test commits its own cast (an owner with
a tenant of models aimed at the fake provider, a member, an outsider) and calls it over HTTP
with the official `openai` SDK or httpx.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import httpx
import pytest
from django.contrib.auth import get_user_model

from providers.models import LLMFactory
from tenants.models import Role, TenantLLM, TenantMember
from tenants.selectors import tenant_owned_by
from tenants.services.tokens import api_token_issue
from tests.test_serving import LiveServer
from usage.models import UsageEvent
from usage.services.events import usage_drain

# (name, factory, model type, fake provider root, key)
MODELS = [
    ("gpt-4o-mini", "OpenAI", "chat", "/v1", "sk-gateway-openai-0001"),
    ("fake-tools", "OpenAI", "chat", "/v1", "sk-gateway-openai-0001"),
    ("fake-429", "OpenAI", "chat", "/v1", "sk-gateway-openai-0001"),
    ("fake-500", "OpenAI", "chat", "/v1", "sk-gateway-openai-0001"),
    ("fake-slow", "OpenAI", "chat", "/v1", "sk-gateway-openai-0001"),
    ("gpt-4o", "OpenAI", "image2text", "/v1", "sk-gateway-openai-0001"),
    ("text-embedding-3-small", "OpenAI", "embedding", "/v1", "sk-gateway-openai-0001"),
    ("gpt-4o-transcribe", "OpenAI", "speech2text", "/v1", "sk-gateway-openai-0001"),
    ("tts-1", "OpenAI", "tts", "/v1", "sk-gateway-openai-0001"),
    ("claude-sonnet-4-5", "Anthropic", "chat", "/anthropic", "sk-ant-gateway-0001"),
    ("gemini-2.5-flash", "Gemini", "chat", "/gemini", "AIza-gateway-0001"),
    ("rerank-v3.5", "Cohere", "rerank", "/cohere", "co-gateway-0001"),
    ("jina-reranker-v2-base-multilingual", "Jina", "rerank", "/jina/v1", "jina_gateway_0001"),
]


@pytest.fixture(scope="session")
def gateway_server(django_db_setup, django_db_blocker, fake_provider, tmp_path_factory):
    server = LiveServer(
        tmp_path_factory.mktemp("gateway"),
        WEB_WORKERS="1",
        WEB_MAX_CONCURRENCY="64",
        DB_POOL_MAX_SIZE="4",
        LLM_MAX_RETRIES="0",
        LLM_TIMEOUT_SECONDS="1",
        GATEWAY_MAX_REQUEST_MB="16",
        # Not the serving tests' name: they count the connections of theirs.
        PGAPPNAME="ragllm-gateway-test",
        # Without Redis there is no stream for the tests to drain: the server's own writer
        # thread puts its usage into the (SQLite) database.
        USAGE_WRITER_THREAD="False" if os.environ.get("REDIS_URL") else "True",
    )
    try:
        server.wait_until_up()
        yield server
    finally:
        server.stop()


@dataclass
class Cast:
    url: str  # the OpenAI base URL, ending in /v1
    token: str  # the owner's
    member_token: str
    outsider_token: str
    tenant: object
    owner: object
    member: object

    def events(self, expected: int, timeout: float = 15.0) -> list[UsageEvent]:
        """The tenant's usage events once `expected` have reached the ledger (the server hands
        them to the Redis stream a few milliseconds after each call)."""
        deadline = time.monotonic() + timeout
        while True:
            usage_drain(claim_idle_ms=0)
            found = list(UsageEvent.objects.filter(tenant=self.tenant).order_by("created_at"))
            if len(found) >= expected or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def post(self, path: str, token: str | None = None, **kwargs) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        headers.setdefault("Authorization", f"Bearer {token or self.token}")
        return httpx.post(f"{self.url}{path}", headers=headers, timeout=30, **kwargs)


def configure(tenant, fake_provider, models=MODELS) -> None:
    """The models on the fake provider (their factories created if the catalog is not there:
    loading the whole catalog after every flush would cost more than the tests)."""
    for name, factory, model_type, root, key in models:
        TenantLLM.objects.create(
            tenant=tenant,
            factory=LLMFactory.objects.get_or_create(name=factory)[0],
            llm_name=name,
            model_type=model_type,
            api_key=key,
            api_base=fake_provider.url(root),
        )
    tenant.llm_id = "gpt-4o-mini@OpenAI"
    tenant.embd_id = "text-embedding-3-small@OpenAI"
    tenant.rerank_id = "rerank-v3.5@Cohere"
    tenant.save()


# Every factory any gateway test configures, created with each cast: the server caches the
# set of factory names (to split `name@factory`) and sees a change made here only within a
# second, so no test may bring a name the server has not seen.
FACTORIES = ("OpenAI", "Anthropic", "Gemini", "Cohere", "Jina", "DeepSeek", "BaiduYiyan")


@pytest.fixture
def cast(transactional_db, gateway_server, fake_provider):
    for name in FACTORIES:
        LLMFactory.objects.get_or_create(name=name)
    users = get_user_model().objects
    # No passwords: they authenticate with API tokens (and hashing one takes a while).
    owner = users.create_user(username="gw-owner@example.com", password=None)
    member = users.create_user(username="gw-member@example.com", password=None)
    outsider = users.create_user(username="gw-outsider@example.com", password=None)
    tenant = tenant_owned_by(user=owner)
    TenantMember.objects.create(user=member, tenant=tenant, role=Role.NORMAL)
    configure(tenant, fake_provider)
    usage_drain(claim_idle_ms=0)  # nothing of an earlier test left in the stream
    return Cast(
        url=f"{gateway_server.url}/v1",
        token=api_token_issue(user=owner, name="gw")[1],
        member_token=api_token_issue(user=member, name="gw")[1],
        outsider_token=api_token_issue(user=outsider, name="gw")[1],
        tenant=tenant,
        owner=owner,
        member=member,
    )


@pytest.fixture
def client(cast):
    from openai import OpenAI

    return OpenAI(base_url=cast.url, api_key=cast.token, max_retries=0, timeout=30)


@pytest.fixture
def aclient(cast):
    from openai import AsyncOpenAI

    return AsyncOpenAI(base_url=cast.url, api_key=cast.token, max_retries=0, timeout=30)
