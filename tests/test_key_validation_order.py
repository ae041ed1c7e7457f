"""Only the newest request for a configuration is applied, whatever order validations finish in.

The worker is stopped: requests wait in the broker, and each test runs the queued tasks itself
in the worst order (the oldest last), against the fake provider.
"""

import threading

import pytest

from providers.models import LLM, LLMFactory
from ragllm.celery import app
from tenants.models import KeyValidation, TenantLLM, ValidationState
from tenants.services.key_validation import VALIDATE_TASK
from tests.fakeprovider import openai as fake_openai

KEYS = ["sk-rotation-key-000000000001", "sk-rotation-key-000000000002", "sk-rotation-key-03"]


@pytest.fixture
def owner_api(api_for, owner, catalog, stopped_worker):
    return api_for(owner)


def queued_ids(stopped_worker) -> list[str]:
    messages = stopped_worker.take_messages()
    assert {name for name, _ in messages} == {VALIDATE_TASK}
    return [args[0] for _, args in messages]


def run(validation_id: str) -> None:
    app.tasks[VALIDATE_TASK](validation_id)


def test_three_queued_key_rotations_apply_only_the_newest(
    owner_api, tenant, fake_provider, stopped_worker
):
    base = fake_provider.url("/v1")
    ids = []
    for key in KEYS:
        response = owner_api.post(
            "/api/v1/llm/set_api_key",
            {"llm_factory": "OpenAI", "api_key": key, "base_url": base, "async": True},
        )
        assert response.status_code == 202, response.content
        ids.append(response.json()["data"]["task_id"])
    queued = queued_ids(stopped_worker)
    assert sorted(queued) == sorted(ids)
    assert not any(key in repr(queued) for key in KEYS)  # the broker carries ids only

    for validation_id in reversed(ids):  # newest first, oldest last
        run(validation_id)

    oldest, middle, newest = (KeyValidation.objects.get(pk=i) for i in ids)
    assert newest.state == ValidationState.SUCCEEDED
    for superseded in (oldest, middle):
        assert superseded.state == ValidationState.SUPERSEDED
        assert superseded.api_key == ""
        assert str(newest.pk) in superseded.message or str(middle.pk) in superseded.message
    rows = TenantLLM.objects.filter(tenant=tenant, factory__name="OpenAI")
    assert rows.exists()
    assert {row.api_key for row in rows} == {KEYS[2]}
    # Superseded validations never called the provider: only the newest key was sent.
    assert {r.bearer for r in fake_provider.requests} == {KEYS[2]}
    status = owner_api.get(f"/api/v1/llm/tasks/{ids[0]}").json()["data"]
    assert (status["status"], status["success"]) == ("superseded", False)


def test_an_old_key_still_being_validated_does_not_overwrite_a_newer_one(
    owner_api, tenant, fake_provider, stopped_worker
):
    """The slow validation of the old key finishes last, after the new key was saved."""
    base = fake_provider.url("/v1")
    arrived, release = threading.Event(), threading.Event()

    def slow_success(request):
        arrived.set()
        release.wait(30)
        request.path_params = {"root": "/v1", "endpoint": "chat/completions"}
        return fake_openai.handle(request)

    def add(key):
        response = owner_api.post(
            "/api/v1/llm/add_llm",
            {
                "llm_factory": "OpenAI",
                "llm_name": "gpt-4o-mini",
                "model_type": "chat",
                "api_key": key,
                "api_base": base,
                "async": True,
            },
        )
        assert response.status_code == 202, response.content
        return response.json()["data"]["task_id"]

    old_id = add(KEYS[0])
    fake_provider.script("/v1/chat/completions", [slow_success])
    slow = threading.Thread(target=run_closing_connection, args=(old_id,))
    slow.start()
    try:
        assert arrived.wait(30), "the old key's validation never reached the provider"
        assert KeyValidation.objects.get(pk=old_id).state == ValidationState.RUNNING
        new_id = add(KEYS[1])
        run(new_id)
        assert TenantLLM.objects.get(tenant=tenant, llm_name="gpt-4o-mini").api_key == KEYS[1]
    finally:
        release.set()
        slow.join(30)
    queued_ids(stopped_worker)

    old, new = KeyValidation.objects.get(pk=old_id), KeyValidation.objects.get(pk=new_id)
    assert (old.state, new.state) == (ValidationState.SUPERSEDED, ValidationState.SUCCEEDED)
    assert old.api_key == ""
    config = TenantLLM.objects.get(tenant=tenant, llm_name="gpt-4o-mini")
    assert (config.api_key, config.validation_status) == (KEYS[1], "valid")
    # Both keys really were tried: the old one's answer came, and was not applied.
    assert [r.bearer for r in fake_provider.requests_to("/v1/chat/completions")] == KEYS[:2]


def run_closing_connection(validation_id: str) -> None:
    from django.db import connection

    try:
        run(validation_id)
    finally:
        connection.close()


def test_a_newer_model_request_takes_its_model_out_of_an_older_factory_key(
    owner_api, tenant, fake_provider, stopped_worker
):
    base = fake_provider.url("/v1")
    factory_wide = owner_api.post(
        "/api/v1/llm/set_api_key",
        {"llm_factory": "OpenAI", "api_key": KEYS[0], "base_url": base, "async": True},
    ).json()["data"]["task_id"]
    one_model = owner_api.post(
        "/api/v1/llm/add_llm",
        {
            "llm_factory": "OpenAI",
            "llm_name": "gpt-4o-mini",
            "model_type": "chat",
            "api_key": KEYS[1],
            "api_base": base,
            "async": True,
        },
    ).json()["data"]["task_id"]
    run(one_model)
    run(factory_wide)  # the older, factory-wide request finishes last

    assert KeyValidation.objects.get(pk=factory_wide).state == ValidationState.SUCCEEDED
    keys = dict(
        TenantLLM.objects.filter(tenant=tenant, factory__name="OpenAI").values_list(
            "llm_name", "api_key"
        )
    )
    assert keys.pop("gpt-4o-mini") == KEYS[1]
    catalog = set(
        LLM.objects.filter(factory=LLMFactory.objects.get(name="OpenAI"), status="1").values_list(
            "llm_name", flat=True
        )
    )
    assert set(keys) == catalog - {"gpt-4o-mini"}
    assert set(keys.values()) == {KEYS[0]}


def test_a_verify_only_request_supersedes_nothing(owner_api, tenant, fake_provider):
    base = fake_provider.url("/v1")
    saving = owner_api.post(
        "/api/v1/llm/set_api_key",
        {"llm_factory": "OpenAI", "api_key": KEYS[0], "base_url": base, "async": True},
    ).json()["data"]["task_id"]
    checking = owner_api.post(
        "/api/v1/llm/set_api_key",
        {
            "llm_factory": "OpenAI",
            "api_key": KEYS[1],
            "base_url": base,
            "async": True,
            "verify": True,
        },
    ).json()["data"]["task_id"]
    run(checking)
    run(saving)
    assert KeyValidation.objects.get(pk=saving).state == ValidationState.SUCCEEDED
    assert KeyValidation.objects.get(pk=checking).state == ValidationState.SUCCEEDED
    saved = TenantLLM.objects.filter(tenant=tenant, factory__name="OpenAI")
    assert set(saved.values_list("api_key", flat=True)) == {KEYS[0]}
