"""The fixed cast of the suite: an owner, a member of the owner's tenant, and an outsider."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth import get_user_model

from providers.models import LLM, LLMFactory
from tenants.models import Role, TenantMember
from tenants.selectors import tenant_owned_by


@pytest.fixture
def owner(db):
    return get_user_model().objects.create_user(
        username="alice@example.com", email="alice@example.com", password="pw-alice-123"
    )


@pytest.fixture
def tenant(owner):
    return tenant_owned_by(user=owner)


@pytest.fixture
def member(db, tenant):
    user = get_user_model().objects.create_user(
        username="bob@example.com", email="bob@example.com", password="pw-bob-123"
    )
    TenantMember.objects.create(user=user, tenant=tenant, role=Role.NORMAL)
    return user


@pytest.fixture
def outsider(db):
    return get_user_model().objects.create_user(
        username="mallory@example.com", email="mallory@example.com", password="pw-mallory-123"
    )


@pytest.fixture
def superuser(db):
    return get_user_model().objects.create_superuser(
        username="root", email="root@example.com", password="pw-root-123"
    )


@pytest.fixture
def test_factory(db):
    """A small catalog of our own, independent of the shipped fixture's content."""
    factory = LLMFactory.objects.create(name="TestFactory", tags="LLM,TEXT EMBEDDING", rank=1)
    LLM.objects.create(
        factory=factory, llm_name="test-chat", model_type="chat", model_types=["chat"]
    )
    LLM.objects.create(
        factory=factory,
        llm_name="test-embed",
        model_type="embedding",
        model_types=["embedding"],
        max_tokens=512,
    )
    return factory


class ApiClient:
    """A DRF test client authenticated with a real API token over the Bearer header."""

    def __init__(self, user, tenant_id=None):
        from rest_framework.test import APIClient

        from tenants.services.tokens import api_token_issue

        self.client = APIClient()
        self.user = user
        if user is not None:
            _, raw = api_token_issue(user=user, name="tests")
            self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        self.tenant_id = tenant_id

    def _headers(self, tenant_id):
        tenant_id = tenant_id or self.tenant_id
        return {"HTTP_X_TENANT_ID": str(tenant_id)} if tenant_id else {}

    def get(self, path, params=None, tenant_id=None):
        return self.client.get(path, params or {}, **self._headers(tenant_id))

    def post(self, path, data=None, tenant_id=None):
        return self.client.post(path, data or {}, format="json", **self._headers(tenant_id))

    def put(self, path, data=None, tenant_id=None):
        return self.client.put(path, data or {}, format="json", **self._headers(tenant_id))


@pytest.fixture
def api_for():
    def make(user, tenant_id=None):
        return ApiClient(user, tenant_id)

    return make


@pytest.fixture
def catalog(db):
    """Our shipped catalog, loaded if a transactional test flushed it away."""
    from django.conf import settings

    from providers.services import catalog_load

    if not LLMFactory.objects.filter(name="OpenAI").exists():
        catalog_load(path=settings.LLM_FACTORIES_FILE)


@pytest.fixture(scope="session")
def fake_provider():
    """A real HTTP server on 127.0.0.1 speaking each provider family's wire format."""
    from tests.fakeprovider import start_fake_provider

    server = start_fake_provider()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _empty_usage_queue():
    """No usage record of one test leaks into the next."""
    from usage.buffer import local_buffer

    local_buffer().clear()
    yield
    local_buffer().clear()


@pytest.fixture(autouse=True)
def _reset_fake_provider():
    # Only servers already started: a test that does not use the fake does not start it.
    from tests.fakeprovider import FakeProviderServer

    for server in FakeProviderServer.running():
        server.reset()


@pytest.fixture(scope="session")
def _celery_worker(django_db_setup, django_db_blocker):
    """A real Celery worker (threads) on the Redis broker when REDIS_URL is set, as in CI.

    It consumes a queue of its own, so a developer's worker on the same Redis takes nothing.
    """
    from django.conf import settings

    if not settings.CELERY_BROKER_URL.startswith("redis"):
        yield None
        return
    from celery.contrib.testing.worker import start_worker

    from ragllm.celery import app

    queue = f"ragllm-tests-{uuid.uuid4().hex[:8]}"
    app.conf.task_default_queue = queue
    app.conf.task_always_eager = False
    with start_worker(
        app,
        pool="threads",
        concurrency=4,
        perform_ping_check=False,
        loglevel="WARNING",
        shutdown_timeout=10,
        queues=[queue],
    ) as worker:
        yield worker


@pytest.fixture
def tasks(_celery_worker, transactional_db):
    """Run Celery tasks for this test: on the real worker in CI, eagerly in a bare local run.

    The worker has its own database connection, so tests using it commit their data.
    """
    from ragllm.celery import app

    if _celery_worker is not None:
        yield "worker"
        return
    app.conf.task_always_eager = True
    try:
        yield "eager"
    finally:
        app.conf.task_always_eager = False


class StoppedWorker:
    """The broker's side of a stopped worker: tasks wait in a queue nobody consumes."""

    def __init__(self, app, queue: str) -> None:
        self.app = app
        self.queue = queue

    def take_messages(self) -> list[tuple[str, list]]:
        """(task name, args) of every message waiting in the queue, taken out of it."""
        taken = []
        with self.app.connection_for_read() as connection:
            queue = connection.SimpleQueue(self.queue, no_ack=True)
            try:
                while True:
                    try:
                        message = queue.get(block=False)
                    except queue.Empty:
                        break
                    args, _kwargs, _embed = message.decode()
                    taken.append((message.headers["task"], args))
            finally:
                queue.close()
        return taken


@pytest.fixture
def stopped_worker(transactional_db):
    """Tasks are sent for real, to a queue no worker consumes (every worker is stopped).

    The test runs them itself afterwards, in the order it chooses.
    """
    from ragllm.celery import app, forget_workers

    saved = (app.conf.task_default_queue, app.conf.task_always_eager)
    worker = StoppedWorker(app, f"ragllm-stopped-{uuid.uuid4().hex[:8]}")
    app.conf.task_default_queue = worker.queue
    app.conf.task_always_eager = False
    forget_workers()
    try:
        yield worker
    finally:
        worker.take_messages()
        app.conf.task_default_queue, app.conf.task_always_eager = saved
        forget_workers()


@pytest.fixture
def private_redis(tmp_path):
    """A Redis server of this test's own, which the test may stop and restart."""
    import shutil

    from tests.usage_helpers import PrivateRedis

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed on this machine")
    server = PrivateRedis(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def usage_redis(private_redis, settings):
    """Point the usage recorder at a private Redis stream for this test."""
    from usage import buffer, recorder

    settings.USAGE_REDIS_URL = private_redis.url
    recorder.reset_redis_state()
    yield private_redis
    buffer._redis = None
    recorder.reset_redis_state()


@pytest.fixture
def no_usage_redis(settings):
    """Record through the in-process writer (no Redis), as a bare `make run` does."""
    from usage import buffer, recorder

    settings.USAGE_REDIS_URL = ""
    buffer._redis = None
    recorder.reset_redis_state()
    yield


@pytest.fixture
def chat_config(db, tenant, catalog, fake_provider):
    """The owner's tenant with gpt-4o-mini@OpenAI aimed at the fake provider, as its default."""
    from tenants.models import TenantLLM
    from tenants.resolution import invalidate

    config = TenantLLM.objects.create(
        tenant=tenant,
        factory=LLMFactory.objects.get(name="OpenAI"),
        llm_name="gpt-4o-mini",
        model_type="chat",
        api_key="sk-bundle-key-000000000001",
        api_base=fake_provider.url("/v1"),
    )
    tenant.llm_id = "gpt-4o-mini@OpenAI"
    tenant.save()
    invalidate()
    return config


@pytest.fixture(scope="session")
def fake_provider_process():
    """The fake provider in its own process, for many-threaded load."""
    from tests.usage_helpers import FakeProviderProcess

    server = FakeProviderProcess()
    yield server
    server.stop()


@pytest.fixture(scope="session", autouse=True)
def _no_stale_quota_counters():
    """Quota counters in Redis outlive the test database: drop the ones of earlier runs
    (their ids come back when the test database is created again)."""
    from django.conf import settings

    url = getattr(settings, "QUOTA_REDIS_URL", "")
    if url:
        import redis

        client = redis.Redis.from_url(url)
        try:
            for key in client.scan_iter(match="rq:*", count=1000):
                client.delete(key)
        except redis.RedisError:
            pass
        client.close()


@pytest.fixture(autouse=True)
def _fresh_quota_store():
    """No test inherits another's quota client or a Redis outage it noted."""
    from usage.services.quota_redis import reset_store

    reset_store()
    yield
    reset_store()
