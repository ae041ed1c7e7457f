"""OpenAPI docs, management commands and admin actions."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from providers.models import LLMFactory
from tenants.models import APIToken, TenantLLM

GOOD_KEY = "sk-command-key-00000000000001"


def test_the_openapi_schema_documents_every_route_with_examples(client):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    for route in (
        "factories",
        "set_api_key",
        "add_llm",
        "delete_llm",
        "enable_llm",
        "delete_factory",
        "my_llms",
        "list",
        "tasks/{task_id}",
    ):
        assert f"/api/v1/llm/{route}" in paths, route
    assert "/api/v1/tenant/default_models" in paths
    for path, operations in paths.items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in operations.items():
            ok = operation["responses"].get("200") or operation["responses"].get("202")
            assert ok, (path, method)
            examples = ok.get("content", {}).get("application/json", {}).get("examples")
            assert examples, f"{method.upper()} {path} has no response example"
            if method in {"post", "put"}:
                body = operation.get("requestBody", {}).get("content", {})
                assert body, f"{method.upper()} {path} has no request body"
    assert "bearerAuth" in schema["components"]["securitySchemes"]


def test_the_swagger_ui_is_served_without_a_cdn(client):
    import re

    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any("swagger-ui" in asset for asset in assets)
    # Every script, stylesheet and icon comes from our own static files.
    assert [a for a in assets if a.startswith(("http:", "https:", "//"))] == []
    assert all(a.startswith("/static/") for a in assets if a.endswith((".js", ".css")))


@pytest.mark.django_db(transaction=True)
def test_set_api_key_command_validates_and_saves(tenant, owner, catalog, fake_provider, capsys):
    call_command(
        "set_api_key",
        "--tenant",
        owner.email,
        "--factory",
        "OpenAI",
        "--key",
        GOOD_KEY,
        "--base-url",
        fake_provider.url("/v1"),
    )
    out = capsys.readouterr().out
    assert "Key saved for" in out and GOOD_KEY not in out
    rows = TenantLLM.objects.filter(tenant=tenant, factory__name="OpenAI")
    assert rows.exists()
    assert all(row.api_key == GOOD_KEY for row in rows)


@pytest.mark.django_db(transaction=True)
def test_set_api_key_command_reports_a_bad_key_and_saves_nothing(
    tenant, catalog, fake_provider, capsys
):
    with pytest.raises(CommandError, match="rejected the credentials"):
        call_command(
            "set_api_key",
            "--tenant",
            str(tenant.pk),
            "--factory",
            "OpenAI",
            "--key",
            "sk-invalid",
            "--base-url",
            fake_provider.url("/v1"),
            "--verify",
        )
    assert not TenantLLM.objects.filter(tenant=tenant, factory__name="OpenAI").exists()
    with pytest.raises(CommandError, match="No tenant matches"):
        call_command("set_api_key", "--tenant", "nobody", "--factory", "OpenAI", "--key", "k")


@pytest.mark.django_db(transaction=True)
def test_validate_keys_marks_failures_and_prints_a_summary(tenant, catalog, fake_provider, capsys):
    openai = LLMFactory.objects.get(name="OpenAI")
    good = TenantLLM.objects.create(
        tenant=tenant,
        factory=openai,
        llm_name="gpt-4o",
        model_type="chat",
        api_key=GOOD_KEY,
        api_base=fake_provider.url("/v1"),
    )
    bad = TenantLLM.objects.create(
        tenant=tenant,
        factory=openai,
        llm_name="gpt-4o-mini",
        model_type="chat",
        api_key="sk-invalid",
        api_base=fake_provider.url("/v1"),
    )
    with pytest.raises(CommandError, match="1 valid, 1 failed"):
        call_command("validate_keys", "--tenant", str(tenant.pk))
    out, err = capsys.readouterr()
    assert "[" in out  # the progress bar
    assert "gpt-4o-mini" in err
    good.refresh_from_db()
    bad.refresh_from_db()
    assert (good.validation_status, good.last_error) == ("valid", "")
    assert bad.validation_status == "failed" and "rejected the credentials" in bad.last_error
    assert bad.validated_at is not None


def test_create_tenant_issues_a_token_shown_once(capsys, db):
    call_command("create_tenant", "--email", "dora@example.com")
    out = capsys.readouterr().out
    raw = out.split("API token (shown once, store it now): ")[1].strip()
    token = APIToken.objects.get()
    assert raw.startswith(f"rgl_{token.prefix}_") and raw not in token.token_hash


@pytest.mark.django_db(transaction=True)
def test_admin_validate_now_enqueues_the_task(
    client, superuser, tenant, catalog, fake_provider, tasks
):
    config = TenantLLM.objects.create(
        tenant=tenant,
        factory=LLMFactory.objects.get(name="OpenAI"),
        llm_name="gpt-4o",
        model_type="chat",
        api_key=GOOD_KEY,
        api_base=fake_provider.url("/v1"),
    )
    client.force_login(superuser)
    response = client.post(
        reverse("admin:tenants_tenantllm_changelist"),
        {"action": "validate_now", "_selected_action": [config.pk]},
    )
    assert response.status_code == 302
    import time

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        config.refresh_from_db()
        if config.validation_status == "valid":
            break
        time.sleep(0.05)
    assert config.validation_status == "valid"
    assert fake_provider.requests[-1].bearer == GOOD_KEY


def test_admin_issue_api_token_shows_it_once(client, superuser, owner):
    from django.contrib.auth import get_user_model

    client.force_login(superuser)
    url = reverse(f"admin:{get_user_model()._meta.app_label}_user_changelist")
    response = client.post(
        url, {"action": "issue_api_token", "_selected_action": [owner.pk]}, follow=True
    )
    body = response.content.decode()
    token = APIToken.objects.get(user=owner)
    assert f"rgl_{token.prefix}_" in body
    assert client.get(url).content.decode().count(f"rgl_{token.prefix}_") == 0


def test_finished_key_validations_are_pruned_after_30_days(tenant, catalog):
    from datetime import timedelta

    from django.utils import timezone

    from tenants.models import KeyValidation
    from tenants.services.key_validation import key_validation_prune

    openai = LLMFactory.objects.get(name="OpenAI")
    old = KeyValidation.objects.create(
        tenant=tenant,
        kind="set_api_key",
        factory=openai,
        state="failed",
        finished_at=timezone.now() - timedelta(days=31),
    )
    recent = KeyValidation.objects.create(
        tenant=tenant,
        kind="set_api_key",
        factory=openai,
        state="succeeded",
        finished_at=timezone.now() - timedelta(days=2),
    )
    running = KeyValidation.objects.create(tenant=tenant, kind="set_api_key", factory=openai)
    assert key_validation_prune(older_than_days=30) == 1
    assert set(KeyValidation.objects.values_list("pk", flat=True)) == {recent.pk, running.pk}
    assert not KeyValidation.objects.filter(pk=old.pk).exists()
