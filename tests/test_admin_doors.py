"""The admin goes through the same doors as the API: the forms are posted as a browser would
(a logged-in superuser), and what they save is checked and validated exactly as over the API."""

import time

import pytest
from django.urls import reverse

from providers.models import LLMFactory
from ragllm.celery import app
from tenants.models import KeyValidation, TenantLLM
from tenants.resolution import resolve_model

OLD_KEY = "sk-bundle-key-000000000001"  # chat_config's
GOOD_KEY = "sk-a-new-good-key-0000000000002"
BAD_KEY = "sk-invalid"  # the fake provider answers 401 to it


@pytest.fixture
def admin_client_(client, superuser):
    client.force_login(superuser)
    return client


@pytest.fixture
def config(chat_config):
    """gpt-4o-mini@OpenAI at the fake provider, proven valid with OLD_KEY."""
    TenantLLM.objects.filter(pk=chat_config.pk).update(validation_status="valid")
    chat_config.refresh_from_db()
    assert chat_config.api_key == OLD_KEY
    return chat_config


def change_form(config, **fields):
    return {
        "model_type": config.model_type,
        "status": config.status,
        "api_key": "",
        "api_base": config.api_base,
        "max_tokens": str(config.max_tokens),
        "token_quota": "",
        "quota_window": config.quota_window,
        **fields,
    }


def change(client, config, **fields):
    url = reverse("admin:tenants_tenantllm_change", args=[config.pk])
    return client.post(url, change_form(config, **fields))


def validating_list(client) -> str:
    """The configs list filtered on "Validating"."""
    url = reverse("admin:tenants_tenantllm_changelist")
    return client.get(url, {"validation_status__exact": "pending"}).content.decode()


def form_errors(response) -> dict:
    form = response.context["adminform"].form
    return {name: " ".join(errors) for name, errors in form.errors.items()}


# --- The base URL is checked when saved ---------------------------------------------------------


def test_a_metadata_base_url_is_refused_with_a_form_error(admin_client_, config, settings):
    settings.LLM_HOSTED_ALLOWED_NETWORKS = []
    response = change(
        admin_client_, config, api_key=GOOD_KEY, api_base="http://169.254.169.254/latest"
    )
    assert response.status_code == 200
    assert "base_url is not allowed" in form_errors(response)["api_base"]
    config.refresh_from_db()
    assert (config.api_key, config.api_base) == (OLD_KEY, config.api_base)
    assert not KeyValidation.objects.exists()


def test_the_add_form_refuses_a_metadata_base_url_too(admin_client_, tenant, catalog):
    response = admin_client_.post(
        reverse("admin:tenants_tenantllm_add"),
        {
            "tenant": str(tenant.pk),
            "factory": str(LLMFactory.objects.get(name="OpenAI-API-Compatible").pk),
            "llm_name": "local",
            "model_type": "chat",
            "api_key": GOOD_KEY,
            "api_base": "http://169.254.169.254/latest",
            "max_tokens": "8192",
        },
    )
    assert response.status_code == 200
    # The same uniform words as the API (no port-scan oracle); the reason is in the server log.
    error = form_errors(response)["api_base"]
    assert "base_url is not allowed: could not reach a model server at this address" in error
    assert "metadata" not in error and "link-local" not in error
    assert not TenantLLM.objects.filter(llm_name="local").exists()


def test_a_new_base_url_without_the_key_is_refused(admin_client_, config):
    stored_base = config.api_base
    response = change(admin_client_, config, api_base="http://127.0.0.1:1/v1")
    assert response.status_code == 200
    assert "needs the API key again" in form_errors(response)["api_key"]
    config.refresh_from_db()
    assert (config.api_key, config.api_base) == (OLD_KEY, stored_base)
    assert not KeyValidation.objects.exists()


def test_an_unsendable_key_is_refused_on_its_field(admin_client_, config):
    response = change(admin_client_, config, api_key="sk-ключ-000000000001")
    assert response.status_code == 200
    assert "characters a key cannot have" in form_errors(response)["api_key"]


def test_the_stored_key_cannot_be_moved_to_another_tenant_or_factory(
    admin_client_, config, tenant, outsider
):
    from tenants.selectors import tenant_owned_by

    other = tenant_owned_by(user=outsider)
    fields = {"tenant": str(other.pk), "factory": str(LLMFactory.objects.get(name="Groq").pk)}
    response = change(admin_client_, config, **fields, max_tokens="1024")
    assert response.status_code == 302
    config.refresh_from_db()
    assert (config.tenant_id, config.factory.name) == (tenant.pk, "OpenAI")
    assert (config.api_key, config.max_tokens) == (OLD_KEY, 1024)


# --- A changed key is validated before it replaces the stored one -------------------------------


def test_a_new_key_shows_validating_keeps_the_old_key_in_use_then_ends_valid(
    admin_client_, config, fake_provider, stopped_worker
):
    response = change(admin_client_, config, api_key=GOOD_KEY)
    assert response.status_code == 302, form_errors(response)
    config.refresh_from_db()
    assert (config.api_key, config.validation_status) == (OLD_KEY, "pending")
    assert "gpt-4o-mini" in validating_list(admin_client_)
    detail = admin_client_.get(reverse("admin:tenants_tenantllm_change", args=[config.pk]))
    assert "Validating" in detail.content.decode()
    # Calls keep using the stored key until the new one is proven.
    assert resolve_model(config.tenant_id, "chat", "gpt-4o-mini@OpenAI").api_key == OLD_KEY

    ((name, args),) = stopped_worker.take_messages()
    assert GOOD_KEY not in repr(args)
    app.tasks[name](*args)
    config.refresh_from_db()
    assert (config.api_key, config.validation_status) == (GOOD_KEY, "valid")
    assert fake_provider.last_request.bearer == GOOD_KEY
    assert resolve_model(config.tenant_id, "chat", "gpt-4o-mini@OpenAI").api_key == GOOD_KEY
    assert "gpt-4o-mini" not in validating_list(admin_client_)


@pytest.mark.django_db(transaction=True)
def test_a_bad_key_ends_failed_never_valid(admin_client_, config, fake_provider, tasks):
    response = change(admin_client_, config, api_key=BAD_KEY)
    assert response.status_code == 302, form_errors(response)
    statuses = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        config.refresh_from_db()
        statuses.append(config.validation_status)
        if config.validation_status != "pending":
            break
        time.sleep(0.05)
    assert config.validation_status == "failed", statuses
    assert "valid" not in statuses
    assert "rejected the credentials" in config.last_error
    assert config.api_key == OLD_KEY  # the bad key was never stored
    assert KeyValidation.objects.get().state == "failed"
    detail = admin_client_.get(reverse("admin:tenants_tenantllm_change", args=[config.pk]))
    assert "Failed" in detail.content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_new_configuration_is_created_once_its_key_is_proven(
    admin_client_, tenant, catalog, fake_provider, tasks
):
    response = admin_client_.post(
        reverse("admin:tenants_tenantllm_add"),
        {
            "tenant": str(tenant.pk),
            "factory": str(LLMFactory.objects.get(name="OpenAI").pk),
            "llm_name": "gpt-4o",
            "model_type": "chat",
            "api_key": GOOD_KEY,
            "api_base": fake_provider.url("/v1"),
            "max_tokens": "4096",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:tenants_keyvalidation_changelist")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not KeyValidation.objects.get().finished:
        time.sleep(0.05)
    assert KeyValidation.objects.get().state == "succeeded"
    created = TenantLLM.objects.get(tenant=tenant, llm_name="gpt-4o")
    assert (created.api_key, created.validation_status, created.max_tokens) == (
        GOOD_KEY,
        "valid",
        4096,
    )


def test_the_inline_on_the_tenant_page_goes_through_the_same_checks(
    admin_client_, config, settings
):
    settings.LLM_HOSTED_ALLOWED_NETWORKS = []
    tenant = config.tenant
    member = tenant.members.get()
    form = {
        "name": tenant.name,
        "status": "1",
        "token_quota": "",
        "quota_window": "monthly",
        **dict.fromkeys(tenant.DEFAULT_FIELDS.values(), ""),
        "members-TOTAL_FORMS": "1",
        "members-INITIAL_FORMS": "1",
        "members-0-id": str(member.pk),
        "members-0-tenant": str(tenant.pk),
        "members-0-user": str(member.user_id),
        "members-0-role": "owner",
        "llms-TOTAL_FORMS": "1",
        "llms-INITIAL_FORMS": "1",
        "llms-0-id": str(config.pk),
        "llms-0-tenant": str(tenant.pk),
        "llms-0-model_type": "chat",
        "llms-0-api_base": "http://169.254.169.254/latest",
        "llms-0-max_tokens": "2048",
        "llms-0-token_quota": "",
        "llms-0-status": "1",
    }
    response = admin_client_.post(reverse("admin:tenants_tenant_change", args=[tenant.pk]), form)
    assert response.status_code == 200
    assert "base_url is not allowed" in response.content.decode()
    config.refresh_from_db()
    assert (config.api_base, config.max_tokens) != ("http://169.254.169.254/latest", 2048)


# --- Default models are chosen among the tenant's enabled models of each type -------------------


@pytest.fixture
def models(tenant, catalog):
    openai = LLMFactory.objects.get(name="OpenAI")
    for name, model_type, status in [
        ("gpt-4o", "chat", "1"),
        ("gpt-4o-mini", "chat", "0"),
        ("text-embedding-3-small", "embedding", "1"),
    ]:
        TenantLLM.objects.create(
            tenant=tenant, factory=openai, llm_name=name, model_type=model_type, status=status
        )
    return tenant


def tenant_form(tenant, **defaults):
    return {
        "name": tenant.name,
        "status": "1",
        "token_quota": "",
        "quota_window": "monthly",
        **dict.fromkeys(tenant.DEFAULT_FIELDS.values(), ""),
        **defaults,
        "members-TOTAL_FORMS": "0",
        "members-INITIAL_FORMS": "0",
        "llms-TOTAL_FORMS": "0",
        "llms-INITIAL_FORMS": "0",
    }


def test_default_models_are_selects_of_enabled_models_of_their_type(admin_client_, models):
    page = admin_client_.get(reverse("admin:tenants_tenant_change", args=[models.pk]))
    form = page.context["adminform"].form
    chat = [value for value, _ in form.fields["llm_id"].choices]
    embedding = [value for value, _ in form.fields["embd_id"].choices]
    assert chat == ["", "gpt-4o@OpenAI"]  # the disabled gpt-4o-mini is not offered
    assert embedding == ["", "text-embedding-3-small@OpenAI"]
    assert '<select name="llm_id"' in page.content.decode()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("llm_id", "nonexistent@Nowhere"),
        ("llm_id", "gpt-4o-mini@OpenAI"),  # disabled
        ("llm_id", "text-embedding-3-small@OpenAI"),  # not a chat model
        ("embd_id", "gpt-4o@OpenAI"),
    ],
)
def test_a_default_that_is_not_an_enabled_model_of_its_type_is_refused(
    admin_client_, models, field, value
):
    url = reverse("admin:tenants_tenant_change", args=[models.pk])
    response = admin_client_.post(url, tenant_form(models, **{field: value}))
    assert response.status_code == 200
    assert field in form_errors(response)
    models.refresh_from_db()
    assert getattr(models, field) != value


def test_a_valid_default_is_saved_through_the_service(admin_client_, models):
    url = reverse("admin:tenants_tenant_change", args=[models.pk])
    response = admin_client_.post(
        url, tenant_form(models, llm_id="gpt-4o@OpenAI", embd_id="text-embedding-3-small@OpenAI")
    )
    assert response.status_code == 302, form_errors(response)
    models.refresh_from_db()
    assert (models.llm_id, models.embd_id) == ("gpt-4o@OpenAI", "text-embedding-3-small@OpenAI")


def test_a_default_model_cannot_be_disabled_from_its_form(admin_client_, models):
    gpt = TenantLLM.objects.get(tenant=models, llm_name="gpt-4o")
    models.llm_id = "gpt-4o@OpenAI"
    models.save()
    response = change(admin_client_, gpt, status="0")
    assert response.status_code == 200
    assert "default chat model" in " ".join(form_errors(response).values())
    gpt.refresh_from_db()
    assert gpt.status == "1"
