"""A credential that the current CREDENTIALS_ENCRYPTION_KEY cannot decrypt: a clear error that
names the setting and the row, never a signing module's traceback; the row itself survives."""

import pytest
from django.test import override_settings
from django.urls import reverse

from providers.models import LLMFactory
from tenants.fields import CredentialsUnreadable
from tenants.models import TenantLLM

KEY = "sk-saved-under-the-first-key-000111"
OTHER_KEY = override_settings(CREDENTIALS_ENCRYPTION_KEY="a-different-credentials-key-" + "9" * 30)


@pytest.fixture
def config(tenant, catalog):
    return TenantLLM.objects.create(
        tenant=tenant,
        factory=LLMFactory.objects.get(name="OpenAI"),
        llm_name="gpt-4o-mini",
        model_type="chat",
        api_key=KEY,
    )


def test_reading_the_key_names_the_setting_and_the_row(config):
    with OTHER_KEY:
        row = TenantLLM.objects.get(pk=config.pk)  # loading the row still works
        with pytest.raises(CredentialsUnreadable) as info:
            row.api_key  # noqa: B018

    message = str(info.value)
    assert "CREDENTIALS_ENCRYPTION_KEY" in message
    assert f"tenant model config {config.pk}" in message
    assert "gpt-4o-mini" in message
    assert str(config.tenant_id) in message
    # Raised afresh, not chained to the signing module's BadSignature.
    assert info.value.__cause__ is None and info.value.__context__ is None


def test_lists_and_saves_work_and_keep_the_ciphertext(config):
    with OTHER_KEY:
        assert TenantLLM.objects.filter(tenant=config.tenant).count() == 1
        (row,) = TenantLLM.objects.filter(pk=config.pk)
        row.max_tokens = 4096
        row.save()
    # With the right key back, the stored key is intact.
    restored = TenantLLM.objects.get(pk=config.pk)
    assert restored.api_key == KEY
    assert restored.max_tokens == 4096


def test_the_admin_shows_the_problem_instead_of_a_500(client, superuser, config):
    client.force_login(superuser)
    with OTHER_KEY:
        change = client.get(reverse("admin:tenants_tenantllm_change", args=[config.pk]))
        listing = client.get(reverse("admin:tenants_tenantllm_changelist"))
        # Saving with the key left blank keeps the stored (unreadable) ciphertext as it is.
        saved = client.post(
            reverse("admin:tenants_tenantllm_change", args=[config.pk]),
            {
                "tenant": config.tenant_id,
                "factory": config.factory_id,
                "llm_name": config.llm_name,
                "model_type": "chat",
                "status": "1",
                "api_key": "",
                "api_base": "",
                "max_tokens": 8192,
                "token_quota": 0,
                "quota_window": "none",
            },
        )
    assert change.status_code == 200
    assert b"wrong CREDENTIALS_ENCRYPTION_KEY" in change.content
    assert listing.status_code == 200
    assert saved.status_code == 302
    with OTHER_KEY, pytest.raises(CredentialsUnreadable):
        _ = TenantLLM.objects.get(pk=config.pk).api_key
    # Under the key it was saved with, the stored key is still there, unchanged.
    assert TenantLLM.objects.get(pk=config.pk).api_key == config.api_key


def test_the_api_answers_a_clear_error(api_for, owner, config):
    api = api_for(owner)
    with OTHER_KEY:
        response = api.post(
            "/api/v1/llm/add_llm",
            {"llm_factory": "OpenAI", "llm_name": "gpt-4o-mini", "model_type": "chat"},
        )
    body = response.json()
    assert "CREDENTIALS_ENCRYPTION_KEY" in body["message"]
    assert "Signature" not in body["message"]
    assert response.status_code == 500 and body["code"] == 100
