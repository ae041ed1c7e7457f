"""Management commands: set_api_key, validate_keys, create_tenant."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from providers.models import LLMFactory
from tenants.models import APIToken, KeyValidation, TenantLLM

GOOD_KEY = "sk-command-key-00000000000001"


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


def test_set_api_key_command_refuses_a_key_that_cannot_be_sent(tenant, owner, catalog):
    with pytest.raises(CommandError, match="characters a key cannot have"):
        call_command(
            "set_api_key", "--tenant", owner.email, "--factory", "OpenAI", "--key", "sk-ключ-01"
        )
    assert not KeyValidation.objects.exists()
