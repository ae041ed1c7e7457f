"""Validation that cannot hang or rot: no worker means a clear 503 at once, and a validation
not finished by its deadline ends "expired" with its candidate key wiped."""

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.utils import timezone

from providers.models import LLMFactory
from ragllm.celery import app
from tenants.models import KeyValidation, TenantLLM, ValidationState

OLD_KEY = "sk-bundle-key-000000000001"  # chat_config's
NEW_KEY = "sk-new-key-waiting-for-a-worker-2"


@pytest.fixture
def config(chat_config):
    """gpt-4o-mini@OpenAI at the fake provider, proven valid with OLD_KEY."""
    TenantLLM.objects.filter(pk=chat_config.pk).update(validation_status="valid")
    chat_config.refresh_from_db()
    assert chat_config.api_key == OLD_KEY
    return chat_config


def add_llm(api, base, **extra):
    return api.post(
        "/api/v1/llm/add_llm",
        {
            "llm_factory": "OpenAI",
            "llm_name": "gpt-4o-mini",
            "model_type": "chat",
            "api_key": NEW_KEY,
            "api_base": base,
            **extra,
        },
    )


def test_a_waiting_request_with_no_worker_answers_503_at_once(
    api_for, owner, config, fake_provider, stopped_worker
):
    api = api_for(owner)
    for response in (
        api.post(
            "/api/v1/llm/set_api_key",
            {"llm_factory": "OpenAI", "api_key": NEW_KEY, "base_url": config.api_base},
        ),
        add_llm(api, config.api_base),
    ):
        assert response.status_code == 503, response.content
        body = response.json()
        assert "No Celery worker" in body["message"] and "nothing was saved" in body["message"]
        assert NEW_KEY not in response.content.decode()
    # Nothing was recorded or queued: no candidate key waits anywhere.
    assert not KeyValidation.objects.exists()
    assert stopped_worker.take_messages() == []
    config.refresh_from_db()
    assert (config.api_key, config.validation_status) == (OLD_KEY, "valid")
    assert fake_provider.requests == []


def test_a_queued_request_nobody_takes_expires_and_keeps_the_stored_key(
    api_for, owner, config, fake_provider, stopped_worker
):
    api = api_for(owner)
    response = add_llm(api, config.api_base, **{"async": True})
    assert response.status_code == 202, response.content
    task_id = response.json()["data"]["task_id"]
    config.refresh_from_db()
    assert (config.api_key, config.validation_status) == (OLD_KEY, "pending")
    assert KeyValidation.objects.get(pk=task_id).api_key == NEW_KEY  # waiting, encrypted

    KeyValidation.objects.filter(pk=task_id).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    data = api.get(f"/api/v1/llm/tasks/{task_id}").json()["data"]
    assert (data["status"], data["success"]) == ("expired", False)
    assert "no worker took it" in data["message"]
    validation = KeyValidation.objects.get(pk=task_id)
    assert validation.api_key == "" and validation.finished_at is not None
    config.refresh_from_db()
    assert (config.api_key, config.validation_status) == (OLD_KEY, "failed")
    assert "stored ones are still in use" in config.last_error

    # The message reaches a worker at last: the expired request is not run.
    ((name, args),) = stopped_worker.take_messages()
    app.tasks[name](*args)
    assert KeyValidation.objects.get(pk=task_id).state == ValidationState.EXPIRED
    assert fake_provider.requests == []


def test_a_request_too_old_to_finish_in_time_is_not_started(
    api_for, owner, config, fake_provider, stopped_worker
):
    task_id = add_llm(api_for(owner), config.api_base, **{"async": True}).json()["data"]["task_id"]
    # Still before its deadline, but with less time left than a run may take.
    KeyValidation.objects.filter(pk=task_id).update(
        expires_at=timezone.now() + timedelta(seconds=settings.KEY_VALIDATION_TIME_LIMIT / 2)
    )
    ((name, args),) = stopped_worker.take_messages()
    app.tasks[name](*args)
    validation = KeyValidation.objects.get(pk=task_id)
    assert validation.state == ValidationState.EXPIRED and validation.api_key == ""
    assert fake_provider.requests == []


def test_the_beat_job_expires_pending_and_running_validations_past_their_deadline(
    tenant, catalog, config
):
    openai = LLMFactory.objects.get(name="OpenAI")
    past = timezone.now() - timedelta(seconds=1)

    def validation(**fields):
        fields = {"api_key": NEW_KEY, **fields}
        return KeyValidation.objects.create(tenant=tenant, kind="add_llm", factory=openai, **fields)

    stuck_pending = validation(expires_at=past)
    stuck_running = validation(state="running", started_at=past, expires_at=past)
    in_time = validation()
    done = validation(state="succeeded", api_key="", expires_at=past)

    assert app.tasks["tenants.tasks.expire_key_validations"]() == 2
    for stuck in (stuck_pending, stuck_running):
        stuck.refresh_from_db()
        assert (stuck.state, stuck.api_key) == ("expired", "")
    assert "worker may have stopped" in stuck_running.message
    in_time.refresh_from_db()
    done.refresh_from_db()
    assert (in_time.state, in_time.api_key) == ("pending", NEW_KEY)
    assert done.state == "succeeded"


def test_a_run_out_of_time_ends_expired_and_saves_nothing(
    api_for, owner, config, stopped_worker, monkeypatch
):
    task_id = add_llm(api_for(owner), config.api_base, **{"async": True}).json()["data"]["task_id"]

    def out_of_time(**kwargs):
        raise SoftTimeLimitExceeded()  # what Celery raises in a task at its soft time limit

    monkeypatch.setattr("tenants.services.key_validation.probe_model", out_of_time)
    ((name, args),) = stopped_worker.take_messages()
    app.tasks[name](*args)
    validation = KeyValidation.objects.get(pk=task_id)
    assert (validation.state, validation.api_key) == ("expired", "")
    assert "did not finish within" in validation.message
    config.refresh_from_db()
    assert config.api_key == OLD_KEY


def test_celery_is_configured_so_a_killed_validation_cannot_rot():
    code = (
        "import django, json; django.setup();"
        "from ragllm.celery import app; from django.conf import settings;"
        "t = app.tasks['tenants.tasks.validate_credentials'];"
        "print(json.dumps({'visibility': app.conf.broker_transport_options.get("
        "'visibility_timeout'), 'limit': t.time_limit, 'soft': t.soft_time_limit,"
        "'acks_late': t.acks_late, 'default_limit': app.conf.task_time_limit,"
        "'deadline': settings.KEY_VALIDATION_QUEUE_SECONDS + settings.KEY_VALIDATION_TIME_LIMIT}))"
    )
    env = {
        **os.environ,
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/15",
        "LLM_TIMEOUT_SECONDS": "20",
    }
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    conf = json.loads(result.stdout.strip().splitlines()[-1])
    assert conf["limit"] == 120  # 6 x LLM_TIMEOUT_SECONDS
    assert conf["soft"] < conf["limit"] < conf["visibility"] <= conf["limit"] + 300
    assert conf["acks_late"] is True and conf["default_limit"] > 0
    # A validation whose worker died is expired within minutes, not after Redis' default hour.
    assert conf["deadline"] < 3600
