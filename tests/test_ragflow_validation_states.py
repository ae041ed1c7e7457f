"""The RAGFlow-compatible routes and the key validation states that are no verdict on the key:
no worker, a request replaced by a newer one, a request that expired. RAGFlow's app reads the
answer's body only on HTTP 200, so each is a code in the body: 100 where /api/v1 answers 503,
102 where it answers 409.

The worker is stopped: requests wait in the broker. The mount waits for its verdict, so it is
called in a thread while the test changes what happens to its validation.
"""

import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from ragllm.celery import app as celery_app
from tenants.models import KeyValidation, TenantLLM, ValidationState
from tenants.services.key_validation import key_validation_expire_overdue
from tests.ragflow_client import RAGFlowClient, body, token_for

OLD_KEY = "sk-mount-older-key-0000000000001"
NEW_KEY = "sk-mount-newer-key-0000000000002"


@pytest.fixture
def app(owner, catalog, stopped_worker):
    return RAGFlowClient(token_for(owner))


@pytest.fixture
def waiting(settings):
    """The mount waits long enough for the test to act, and does not ask for workers first."""
    settings.RAGFLOW_COMPAT_WAIT_SECONDS = 60
    settings.KEY_VALIDATION_WORKER_CHECK_SECONDS = 0


def answer_while(
    app: RAGFlowClient, path: str, payload: dict, meanwhile: Callable[[str], None]
) -> tuple[dict, str]:
    """Post to the mount in a thread and, once its validation is recorded, call `meanwhile`
    with its id; (the mount's answer, the validation id)."""
    result = {}

    def post() -> None:
        try:
            result["response"] = app.post(path, payload)
        finally:
            connection.close()

    thread = threading.Thread(target=post)
    thread.start()
    try:
        for _ in range(3000):  # the request is recorded (committed) almost at once
            validation = KeyValidation.objects.order_by("created_at").first()
            if validation is not None:
                break
            time.sleep(0.01)
        assert validation is not None, "the mount never recorded its validation"
        meanwhile(str(validation.pk))
    finally:
        thread.join(60)
    assert not thread.is_alive()
    return body(result["response"]), str(validation.pk)


def test_with_no_worker_it_refuses_at_once_with_code_100(app, tenant, stopped_worker):
    for path, payload in (
        ("llm/set_api_key", {"llm_factory": "OpenAI", "api_key": NEW_KEY}),
        # "async" is ignored here: the mount always waits, so it always asks for a worker.
        ("llm/set_api_key", {"llm_factory": "OpenAI", "api_key": NEW_KEY, "async": True}),
        (
            "llm/add_llm",
            {
                "llm_factory": "OpenAI",
                "llm_name": "gpt-4o-mini",
                "model_type": "chat",
                "api_key": NEW_KEY,
            },
        ),
    ):
        answer = body(app.post(path, payload))
        assert answer["code"] == 100, answer
        assert "No Celery worker" in answer["message"]
        assert "nothing was saved" in answer["message"]
        assert NEW_KEY not in str(answer)
    assert not KeyValidation.objects.exists()
    assert stopped_worker.take_messages() == []


def test_a_request_replaced_while_it_waits_is_code_102_and_saves_nothing(
    app, api_for, owner, tenant, fake_provider, stopped_worker, waiting
):
    base = fake_provider.url("/v1")

    def newer_request(validation_id: str) -> None:
        response = api_for(owner).post(
            "/api/v1/llm/set_api_key",
            {"llm_factory": "OpenAI", "api_key": NEW_KEY, "base_url": base, "async": True},
        )
        assert response.status_code == 202, response.content

    answer, older_id = answer_while(
        app,
        "llm/set_api_key",
        {"llm_factory": "OpenAI", "api_key": OLD_KEY, "base_url": base},
        newer_request,
    )
    assert answer["code"] == 102, answer
    assert "replaced this one" in answer["message"] and "nothing was saved" in answer["message"]
    assert OLD_KEY not in str(answer)
    older = KeyValidation.objects.get(pk=older_id)
    assert (older.state, older.api_key) == (ValidationState.SUPERSEDED, "")

    # The queued tasks run at last, the older one last: only the newer key is tried and saved.
    messages = stopped_worker.take_messages()
    for name, args in sorted(messages, key=lambda m: m[1][0] == older_id):
        celery_app.tasks[name](*args)
    assert {row.api_key for row in TenantLLM.objects.filter(tenant=tenant)} == {NEW_KEY}
    assert {r.bearer for r in fake_provider.requests} == {NEW_KEY}


def test_a_request_that_expires_while_it_waits_is_code_100_and_saves_nothing(
    app, tenant, fake_provider, stopped_worker, waiting
):
    def deadline_passes(validation_id: str) -> None:
        KeyValidation.objects.filter(pk=validation_id).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
        assert key_validation_expire_overdue() == 1  # the beat job

    answer, validation_id = answer_while(
        app,
        "llm/add_llm",
        {
            "llm_factory": "OpenAI",
            "llm_name": "gpt-4o-mini",
            "model_type": "chat",
            "api_key": NEW_KEY,
            "api_base": fake_provider.url("/v1"),
        },
        deadline_passes,
    )
    assert answer["code"] == 100, answer
    assert "expired" in answer["message"] and "nothing was saved" in answer["message"]
    assert NEW_KEY not in str(answer)
    validation = KeyValidation.objects.get(pk=validation_id)
    assert (validation.state, validation.api_key) == (ValidationState.EXPIRED, "")
    assert not TenantLLM.objects.filter(tenant=tenant).exists()
    assert fake_provider.requests == []
