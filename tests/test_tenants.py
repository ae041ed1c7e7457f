import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.test import override_settings

from providers.models import LLM, LLMFactory
from tenants.fields import CredentialsUnreadable
from tenants.masking import mask_credentials, mask_key
from tenants.models import Role, Tenant, TenantLLM, TenantMember

DEFAULTS = {
    "factory": "TestFactory",
    "api_key": "sk-default-factory-key-0001",
    "base_url": "https://llm.example.test/v1",
    "default_models": {
        "chat_model": "test-chat",
        "embedding_model": "test-embed@TestFactory",
        "rerank_model": {
            "name": "rr-1",
            "factory": "OtherFactory",
            "api_key": "rr-key-000000000002",
        },
    },
}


@pytest.fixture
def other_factory(db):
    factory = LLMFactory.objects.create(name="OtherFactory", tags="TEXT RE-RANK")
    LLM.objects.create(
        factory=factory, llm_name="rr-1", model_type="rerank", model_types=["rerank"]
    )
    LLM.objects.create(
        factory=factory, llm_name="rr-2", model_type="rerank", model_types=["rerank"]
    )
    return factory


def test_a_new_user_gets_an_owned_tenant(owner):
    membership = TenantMember.objects.get(user=owner)
    assert membership.role == Role.OWNER
    assert membership.tenant.name == "alice@example.com's tenant"


@pytest.mark.django_db
def test_a_new_tenant_gets_one_row_per_model_of_each_default_factory(test_factory, other_factory):
    with override_settings(USER_DEFAULT_LLM=json.dumps(DEFAULTS)):
        user = get_user_model().objects.create_user(username="u1", email="u1@example.com")
    tenant = Tenant.objects.get(members__user=user)
    rows = {
        (row.factory.name, row.llm_name): row
        for row in TenantLLM.objects.filter(tenant=tenant).select_related("factory")
    }
    assert set(rows) == {
        ("TestFactory", "test-chat"),
        ("TestFactory", "test-embed"),
        ("OtherFactory", "rr-1"),
        ("OtherFactory", "rr-2"),
    }
    # Key and base URL come from the type's own config, else the factory's.
    assert rows[("TestFactory", "test-chat")].api_key == "sk-default-factory-key-0001"
    assert rows[("TestFactory", "test-chat")].api_base == "https://llm.example.test/v1"
    assert rows[("OtherFactory", "rr-2")].api_key == "rr-key-000000000002"
    assert rows[("OtherFactory", "rr-2")].api_base == ""
    assert rows[("TestFactory", "test-embed")].max_tokens == 512
    assert rows[("TestFactory", "test-embed")].model_type == "embedding"
    assert tenant.llm_id == "test-chat@TestFactory"
    assert tenant.embd_id == "test-embed@TestFactory"
    assert tenant.rerank_id == "rr-1@OtherFactory"
    assert tenant.asr_id == ""


@pytest.mark.django_db
def test_a_self_hosted_default_model_gets_its_own_row():
    LLMFactory.objects.get_or_create(name="Ollama")
    config = {
        "factory": "Ollama",
        "base_url": "http://127.0.0.1:11434",
        "default_models": {"chat_model": "llama3.2"},
    }
    with override_settings(USER_DEFAULT_LLM=json.dumps(config)):
        user = get_user_model().objects.create_user(username="u2", email="u2@example.com")
    row = TenantLLM.objects.get(tenant__members__user=user)
    assert (row.llm_name, row.model_type, row.api_base) == (
        "llama3.2",
        "chat",
        "http://127.0.0.1:11434",
    )


@pytest.mark.django_db
def test_create_tenant_command_creates_user_and_tenant_once(capsys):
    call_command("create_tenant", "--email", "carol@example.com", "--name", "Carol Inc")
    out = capsys.readouterr().out
    assert "Created user carol@example.com with tenant 'Carol Inc'" in out
    call_command("create_tenant", "--email", "carol@example.com")
    assert "Found existing user" in capsys.readouterr().out
    assert Tenant.objects.filter(members__user__email="carol@example.com").count() == 1
    assert Tenant.objects.get(members__user__email="carol@example.com").name == "Carol Inc"


@pytest.mark.django_db
def test_create_tenant_command_rejects_a_bad_email():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="not a valid email"):
        call_command("create_tenant", "--email", "nope")


def test_the_key_is_encrypted_in_the_raw_column(tenant, test_factory):
    secret = "sk-proj-THIS-IS-THE-REAL-SECRET-0042"
    row = TenantLLM.objects.create(
        tenant=tenant, factory=test_factory, llm_name="test-chat", model_type="chat", api_key=secret
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM tenants_tenantllm WHERE id = %s", [row.pk])
        raw = bytes(cursor.fetchone()[0])
    assert secret.encode() not in raw
    assert b"REAL-SECRET" not in raw
    assert TenantLLM.objects.get(pk=row.pk).api_key == secret


def test_json_credentials_stay_json_inside_the_encryption(tenant, test_factory):
    creds = {"ark_api_key": "ark-secret-value-123456", "endpoint_id": "ep-2024"}
    row = TenantLLM.objects.create(
        tenant=tenant,
        factory=test_factory,
        llm_name="x",
        model_type="chat",
        api_key=json.dumps(creds),
    )
    assert json.loads(TenantLLM.objects.get(pk=row.pk).api_key) == creds


def test_rotating_secret_key_keeps_stored_keys_readable(tenant, test_factory):
    row = TenantLLM.objects.create(
        tenant=tenant,
        factory=test_factory,
        llm_name="test-chat",
        model_type="chat",
        api_key="sk-survives-rotation-000000",
    )
    with override_settings(SECRET_KEY="a-completely-different-secret-key-after-rotation"):
        assert TenantLLM.objects.get(pk=row.pk).api_key == "sk-survives-rotation-000000"
    # ...whereas a new credentials key cannot read it: the credentials key is what matters.
    other_key = override_settings(CREDENTIALS_ENCRYPTION_KEY="another-credentials-key-0000000")
    with other_key, pytest.raises(CredentialsUnreadable):
        TenantLLM.objects.get(pk=row.pk).api_key  # noqa: B018


def test_masking_never_shows_the_middle_of_a_key():
    assert mask_key("sk-abcdefghijklmnop7f3a") == "sk-...7f3a"
    assert mask_key("short") == "****"
    masked = json.loads(
        mask_credentials(
            json.dumps({"ark_api_key": "ark-secret-value-123456", "endpoint_id": "ep-1"})
        )
    )
    assert masked == {"ark_api_key": "ark...3456", "endpoint_id": "ep-1"}


class TestConstraints:
    def test_a_model_is_unique_per_factory_and_name(self, test_factory):
        with pytest.raises(IntegrityError), transaction.atomic():
            LLM.objects.create(factory=test_factory, llm_name="test-chat", model_type="chat")

    def test_a_factory_name_is_unique(self, test_factory):
        with pytest.raises(IntegrityError), transaction.atomic():
            LLMFactory.objects.create(name="TestFactory")

    def test_a_tenant_config_is_unique_per_tenant_factory_and_name(self, tenant, test_factory):
        TenantLLM.objects.create(
            tenant=tenant, factory=test_factory, llm_name="m", model_type="chat"
        )
        with pytest.raises(IntegrityError), transaction.atomic():
            TenantLLM.objects.create(
                tenant=tenant, factory=test_factory, llm_name="m", model_type="embedding"
            )

    def test_a_user_is_a_member_of_a_tenant_once(self, owner, tenant):
        with pytest.raises(IntegrityError), transaction.atomic():
            TenantMember.objects.create(user=owner, tenant=tenant, role=Role.ADMIN)

    def test_used_tokens_is_64_bit_and_never_negative(self, tenant, test_factory):
        row = TenantLLM.objects.create(
            tenant=tenant,
            factory=test_factory,
            llm_name="m",
            model_type="chat",
            used_tokens=2**62,
        )
        assert TenantLLM.objects.get(pk=row.pk).used_tokens == 2**62
        with pytest.raises(IntegrityError), transaction.atomic():
            TenantLLM.objects.filter(pk=row.pk).update(used_tokens=-1)

    def test_a_quota_cannot_be_negative(self, tenant, test_factory):
        with pytest.raises(IntegrityError), transaction.atomic():
            TenantLLM.objects.create(
                tenant=tenant, factory=test_factory, llm_name="q", model_type="chat", token_quota=-5
            )
