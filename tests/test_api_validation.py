"""Key validation over real HTTP: the API enqueues a Celery task (ids only), the task calls the
fake provider, and the route answers as RAGFlow does (or 202 with a task id to poll)."""

import logging
import time
from unittest import mock

import pytest

from providers.models import LLM, LLMFactory
from tenants.models import KeyValidation, TenantLLM, ValidationState

GOOD_KEY = "sk-good-key-for-validation-000001"
BAD_KEY = "sk-invalid"


@pytest.fixture
def owner_api(api_for, owner, tasks, catalog):
    return api_for(owner)


@pytest.fixture
def fake_v1(fake_provider):
    return fake_provider.url("/v1")


def openai_catalog_names():
    return set(
        LLM.objects.filter(factory__name="OpenAI", status="1").values_list("llm_name", flat=True)
    )


def test_set_api_key_validates_then_saves_the_key_for_every_catalog_model(
    owner_api, tenant, fake_provider, fake_v1
):
    response = owner_api.post(
        "/api/v1/llm/set_api_key",
        {"llm_factory": "OpenAI", "api_key": GOOD_KEY, "base_url": fake_v1},
    )
    assert response.status_code == 200, response.content
    assert response.json() == {"code": 0, "message": "success", "data": True}
    rows = TenantLLM.objects.filter(tenant=tenant, factory__name="OpenAI")
    assert set(rows.values_list("llm_name", flat=True)) == openai_catalog_names()
    assert all(row.api_key == GOOD_KEY and row.api_base == fake_v1 for row in rows)
    assert set(rows.values_list("validation_status", flat=True)) == {"valid"}
    # The first success stops the walk: exactly one live call, carrying the key.
    calls = [r for r in fake_provider.requests if r.path.startswith("/v1/")]
    assert len(calls) == 1
    assert calls[0].bearer == GOOD_KEY
    # The candidate key does not linger in the validation row.
    assert KeyValidation.objects.get().api_key == ""


def test_a_wrong_key_is_refused_with_one_readable_message_per_model_tried(
    owner_api, tenant, fake_provider, fake_v1
):
    openai = LLMFactory.objects.get(name="OpenAI")
    working = TenantLLM.objects.create(
        tenant=tenant, factory=openai, llm_name="gpt-4o", model_type="chat", api_key=GOOD_KEY
    )
    response = owner_api.post(
        "/api/v1/llm/set_api_key",
        {"llm_factory": "OpenAI", "api_key": BAD_KEY, "base_url": fake_v1},
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == 102
    lines = body["message"].splitlines()
    tried = {a["model_type"] for a in body["data"]["attempts"]}
    assert tried == {"chat", "embedding"}  # OpenAI's catalog has no rerank model
    assert len(lines) == 2
    for line in lines:
        assert line.startswith("Fail to access ")
        assert "rejected the credentials (key problem)" in line
    # A failed validation never overwrites a working stored key.
    working.refresh_from_db()
    assert working.api_key == GOOD_KEY
    assert TenantLLM.objects.filter(tenant=tenant, factory=openai).count() == 1


def test_an_unreachable_provider_is_reported_as_a_network_problem_not_a_bad_key(
    owner_api, closed_port
):
    response = owner_api.post(
        "/api/v1/llm/add_llm",
        {
            "llm_factory": "OpenAI-API-Compatible",
            "llm_name": "my-model",
            "model_type": "chat",
            "api_base": f"http://127.0.0.1:{closed_port}/v1",
            "api_key": GOOD_KEY,
        },
    )
    assert response.status_code == 502, response.content
    message = response.json()["message"]
    assert "could not reach a model server at this address (network problem" in message
    assert "key problem" not in message
    assert not TenantLLM.objects.filter(llm_name="my-model").exists()


@pytest.fixture
def closed_port():
    """A port that refuses connections for the whole test: bound, never listening."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_a_rate_limited_validation_answers_429(owner_api, fake_v1, settings):
    settings.LLM_MAX_RETRIES = 0
    response = owner_api.post(
        "/api/v1/llm/add_llm",
        {
            "llm_factory": "OpenAI",
            "llm_name": "fake-429",
            "model_type": "chat",
            "api_key": GOOD_KEY,
            "api_base": fake_v1,
        },
    )
    assert response.status_code == 429, response.content
    assert "rate-limiting" in response.json()["message"]


def test_verify_mode_validates_and_saves_nothing(owner_api, tenant, fake_v1):
    ok = owner_api.post(
        "/api/v1/llm/set_api_key",
        {"llm_factory": "OpenAI", "api_key": GOOD_KEY, "base_url": fake_v1, "verify": True},
    )
    assert ok.json() == {"code": 0, "message": "success", "data": {"message": "", "success": True}}
    bad = owner_api.post(
        "/api/v1/llm/set_api_key",
        {"llm_factory": "OpenAI", "api_key": BAD_KEY, "base_url": fake_v1, "verify": True},
    )
    assert bad.status_code == 200
    assert bad.json()["data"]["success"] is False
    assert "Fail to access" in bad.json()["data"]["message"]
    assert not TenantLLM.objects.filter(tenant=tenant, factory__name="OpenAI").exists()


def test_async_validation_answers_202_and_the_task_can_be_polled(owner_api, tenant, fake_v1):
    response = owner_api.post(
        "/api/v1/llm/set_api_key",
        {"llm_factory": "OpenAI", "api_key": GOOD_KEY, "base_url": fake_v1, "async": True},
    )
    assert response.status_code == 202, response.content
    task_id = response.json()["data"]["task_id"]
    deadline = time.monotonic() + 30
    while True:
        data = owner_api.get(f"/api/v1/llm/tasks/{task_id}").json()["data"]
        if data["status"] in {"succeeded", "failed"} or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert data["status"] == "succeeded" and data["success"] is True
    assert data["attempts"][0]["ok"] is True
    assert TenantLLM.objects.filter(tenant=tenant, factory__name="OpenAI").exists()


def test_the_task_receives_only_the_validation_id(owner_api, fake_v1):
    from tenants import tasks as task_module

    real_delay = task_module.validate_credentials.delay
    with mock.patch.object(
        task_module.validate_credentials, "delay", side_effect=real_delay
    ) as spy:
        owner_api.post(
            "/api/v1/llm/set_api_key",
            {"llm_factory": "OpenAI", "api_key": GOOD_KEY, "base_url": fake_v1},
        )
    ((args, kwargs),) = [(c.args, c.kwargs) for c in spy.call_args_list]
    assert kwargs == {}
    assert args == (str(KeyValidation.objects.get().pk),)
    assert GOOD_KEY not in repr(spy.call_args_list)


def test_custom_self_hosted_models_are_stored_without_ragflows_suffix(
    owner_api, tenant, fake_provider
):
    response = owner_api.post(
        "/api/v1/llm/add_llm",
        {
            "llm_factory": "OpenAI-API-Compatible",
            "llm_name": "qwen2.5-7b___OpenAI-API",
            "model_type": "chat",
            "api_base": fake_provider.url("/keyless/v1"),
            "max_tokens": 32768,
        },
    )
    assert response.status_code == 200, response.content
    row = TenantLLM.objects.get(tenant=tenant, factory__name="OpenAI-API-Compatible")
    assert (row.llm_name, row.max_tokens, row.api_key) == ("qwen2.5-7b", 32768, "")
    assert fake_provider.requests[-1].json["model"] == "qwen2.5-7b"
    listed = owner_api.get("/api/v1/llm/my_llms").json()["data"]["OpenAI-API-Compatible"]["llm"]
    assert [item["name"] for item in listed] == ["qwen2.5-7b"]


def test_editing_without_a_key_keeps_the_stored_key(owner_api, tenant, fake_provider, fake_v1):
    openai = LLMFactory.objects.get(name="OpenAI")
    TenantLLM.objects.create(
        tenant=tenant,
        factory=openai,
        llm_name="gpt-4o-mini",
        model_type="chat",
        api_key=GOOD_KEY,
        api_base=fake_v1,
    )
    response = owner_api.post(
        "/api/v1/llm/add_llm",
        {
            "llm_factory": "OpenAI",
            "llm_name": "gpt-4o-mini",
            "model_type": "chat",
            "api_base": fake_v1,
            "max_tokens": 4096,
        },
    )
    assert response.status_code == 200, response.content
    assert fake_provider.requests[-1].bearer == GOOD_KEY
    row = TenantLLM.objects.get(tenant=tenant, llm_name="gpt-4o-mini")
    assert (row.api_key, row.max_tokens) == (GOOD_KEY, 4096)


def test_keys_never_appear_in_responses_or_logs(owner_api, fake_v1, caplog, closed_port):
    caplog.set_level(logging.DEBUG)
    secret_bad = "sk-invalid"  # the fake provider echoes this key in its 401 body
    bodies = []
    for payload in (
        {"llm_factory": "OpenAI", "api_key": GOOD_KEY, "base_url": fake_v1},
        {"llm_factory": "OpenAI", "api_key": secret_bad, "base_url": fake_v1},
        {"llm_factory": "OpenAI", "api_key": GOOD_KEY, "base_url": fake_v1, "verify": True},
        {"llm_factory": "OpenAI", "api_key": GOOD_KEY, "base_url": fake_v1, "async": True},
    ):
        bodies.append(owner_api.post("/api/v1/llm/set_api_key", payload).content.decode())
    bodies.append(
        owner_api.post(
            "/api/v1/llm/add_llm",
            {
                "llm_factory": "OpenAI-API-Compatible",
                "llm_name": "x",
                "model_type": "chat",
                "api_key": GOOD_KEY,
                "api_base": f"http://127.0.0.1:{closed_port}/v1",
            },
        ).content.decode()
    )
    for path in ("/api/v1/llm/my_llms?include_details=true", "/api/v1/llm/list"):
        bodies.append(owner_api.get(path).content.decode())
    for validation in KeyValidation.objects.all():
        bodies.append(owner_api.get(f"/api/v1/llm/tasks/{validation.pk}").content.decode())
    logs = "\n".join(record.getMessage() for record in caplog.records)
    for text in [*bodies, logs]:
        assert GOOD_KEY not in text
        assert "Incorrect API key provided: sk-invalid" not in text
    assert any("Fail to access" in body for body in bodies)  # the failure was reported
    assert KeyValidation.objects.filter(state=ValidationState.FAILED).exists()
