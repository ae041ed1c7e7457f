"""Key validation: a request is recorded, a Celery task makes the live calls, the key is saved.

The task gets the KeyValidation row's id, never the key: the candidate key waits encrypted in
that row and is wiped when the run ends.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from providers.factories import SELF_HOSTED_FACTORIES, strip_name_suffix
from providers.models import LLM, LLMFactory
from providers.models import Status as CatalogStatus
from providers.registry import supported_factories
from ragllm.celery import app as celery_app
from ragllm.errors import InvalidInput, MissingArguments

from ..models import (
    KeyValidation,
    Tenant,
    TenantLLM,
    ValidationKind,
    ValidationState,
    ValidationStatus,
)
from ..resolution import invalidate as invalidate_resolutions
from ..selectors import key_validation_probe_models
from ..validation import Attempt, probe_model
from .credential_input import check_base_url, credentials_from_input

# The tasks of tenants.tasks, by name: the task module imports these services, not the reverse.
VALIDATE_TASK = "tenants.tasks.validate_credentials"
REVALIDATE_TASK = "tenants.tasks.revalidate_tenant_llm"


def _enqueue_on_commit(task_name: str, *args: object) -> None:
    """Send the task once the caller's transaction commits (the worker must see the rows)."""
    transaction.on_commit(lambda: celery_app.tasks[task_name].delay(*args))


class UnsupportedModelType(InvalidInput):
    """The factory has no adapter for this model type."""

    def __init__(self, *, factory: str, llm_name: str, model_type: str) -> None:
        super().__init__(f"Factory {factory} does not serve {model_type} models.")
        self.factory = factory
        self.llm_name = llm_name
        self.model_type = model_type


def key_validation_request(
    *,
    tenant: Tenant,
    kind: str,
    factory: LLMFactory,
    api_key: str,
    api_base: str = "",
    llm_name: str = "",
    model_type: str = "",
    max_tokens: int | None = None,
    is_tools: bool | None = None,
    verify_only: bool = False,
    user: AbstractBaseUser | None = None,
    enqueue: bool = True,
) -> KeyValidation:
    """Record a validation request and enqueue its task (which gets the row id, not the key).

    With enqueue=False the caller runs it itself (key_validation_run), as commands do.
    """
    validation = KeyValidation.objects.create(
        tenant=tenant,
        kind=kind,
        factory=factory,
        api_key=api_key,
        api_base=api_base,
        llm_name=llm_name,
        model_type=model_type,
        max_tokens=max_tokens,
        is_tools=is_tools,
        verify_only=verify_only,
        requested_by=user if user is not None and user.pk else None,
    )
    if enqueue:
        _enqueue_on_commit(VALIDATE_TASK, str(validation.pk))
    return validation


def tenant_llm_request_key(
    *,
    tenant: Tenant,
    factory: LLMFactory,
    api_key: str | dict[str, Any] | None,
    fields: dict[str, Any],
    base_url: str = "",
    verify: bool = False,
    user: AbstractBaseUser | None = None,
    enqueue: bool = True,
) -> KeyValidation:
    """set_api_key: check the input, then ask for the factory's key to be validated."""
    key = credentials_from_input(factory=factory.name, api_key=api_key, fields=fields)
    if not key:
        raise MissingArguments(["api_key"])
    if not LLM.objects.filter(factory=factory, status=CatalogStatus.VALID).exists():
        # RAGFlow's wording. Self-hosted factories list no models: their models are added
        # one by one (add_llm), each with its own base URL.
        raise InvalidInput(f"No models configured for {factory.name} (source: {factory.name}).")
    check_base_url(factory=factory.name, url=base_url)
    return key_validation_request(
        tenant=tenant,
        kind=ValidationKind.SET_API_KEY,
        factory=factory,
        api_key=key,
        api_base=base_url,
        verify_only=verify,
        user=user,
        enqueue=enqueue,
    )


def tenant_llm_request_model(
    *,
    tenant: Tenant,
    factory: LLMFactory,
    llm_name: str,
    model_type: str,
    api_base: str = "",
    api_key: str | dict[str, Any] | None = None,
    fields: dict[str, Any] | None = None,
    max_tokens: int | None = None,
    is_tools: bool | None = None,
    verify: bool = False,
    user: AbstractBaseUser | None = None,
) -> KeyValidation:
    """add_llm: check the input, then ask for this one model to be validated and saved.

    Without a new credential the stored one is used (editing keeps the key); self-hosted
    factories may have none at all.
    """
    llm_name = strip_name_suffix(llm_name.strip())
    if factory.name not in supported_factories(model_type):
        raise UnsupportedModelType(factory=factory.name, llm_name=llm_name, model_type=model_type)
    check_base_url(factory=factory.name, url=api_base)
    key = credentials_from_input(factory=factory.name, api_key=api_key, fields=fields or {})
    if key is None:
        stored = TenantLLM.objects.filter(tenant=tenant, factory=factory, llm_name=llm_name).first()
        if stored is not None:
            key = stored.api_key
        elif factory.name in SELF_HOSTED_FACTORIES:
            key = ""
        else:
            raise MissingArguments(["api_key"])
    return key_validation_request(
        tenant=tenant,
        kind=ValidationKind.ADD_LLM,
        factory=factory,
        api_key=key,
        api_base=api_base,
        llm_name=llm_name,
        model_type=model_type,
        max_tokens=max_tokens,
        is_tools=is_tools,
        verify_only=verify,
        user=user,
    )


def key_validation_run(*, validation_id: str) -> KeyValidation | None:
    """Run one validation: claim it, make the live calls, save the key if asked, wipe it.

    Idempotent: a validation already claimed by another run (or finished) is left alone, except
    one stuck in "running" for longer than a worker could take, which is taken over.
    """
    now = timezone.now()
    stale = now - timedelta(seconds=key_validation_time_limit())
    claimed = (
        KeyValidation.objects.filter(pk=validation_id)
        .filter(
            Q(state=ValidationState.PENDING)
            | Q(state=ValidationState.RUNNING, started_at__lt=stale)
        )
        .update(state=ValidationState.RUNNING, started_at=now)
    )
    if not claimed:
        return KeyValidation.objects.filter(pk=validation_id).first()
    validation = KeyValidation.objects.select_related("factory").get(pk=validation_id)
    factory = validation.factory
    attempts: list[Attempt] = []
    if validation.kind == ValidationKind.SET_API_KEY:
        for llm in key_validation_probe_models(factory=factory):
            attempt = probe_model(
                model_type=llm.model_type,
                factory=factory.name,
                llm_name=llm.llm_name,
                api_key=validation.api_key,
                api_base=validation.api_base,
            )
            attempts.append(attempt)
            if attempt.ok:
                break
    else:
        attempts.append(
            probe_model(
                model_type=validation.model_type,
                factory=factory.name,
                llm_name=validation.llm_name,
                api_key=validation.api_key,
                api_base=validation.api_base,
            )
        )
    succeeded = any(a.ok for a in attempts)
    if not attempts:
        message = f"Factory {factory.name} lists no embedding, chat or rerank model to test."
    else:
        message = "" if succeeded else "\n".join(a.message for a in attempts if not a.ok)
    if succeeded and not validation.verify_only:
        _apply_validated(validation)
    # One UPDATE finishes the row and wipes the candidate key: it now lives (encrypted) in
    # TenantLLM if it was saved, and nowhere if it was not.
    KeyValidation.objects.filter(pk=validation.pk).update(
        state=ValidationState.SUCCEEDED if succeeded else ValidationState.FAILED,
        message=message,
        attempts=[a.as_dict() for a in attempts],
        api_key="",
        finished_at=timezone.now(),
    )
    return KeyValidation.objects.get(pk=validation.pk)


def key_validation_time_limit() -> float:
    """Seconds a validation run may take (three calls with their timeouts, twice over).

    The task is killed after this long, and a run left "running" longer is taken over.
    """
    return float(settings.LLM_TIMEOUT_SECONDS) * 3 * 2


@transaction.atomic
def _apply_validated(validation: KeyValidation) -> None:
    now = timezone.now()
    common = {
        "api_key": validation.api_key,
        "api_base": validation.api_base,
        "validation_status": ValidationStatus.VALID,
        "validated_at": now,
        "last_error": "",
    }
    if validation.kind == ValidationKind.SET_API_KEY:
        rows = [
            TenantLLM(
                tenant_id=validation.tenant_id,
                factory=validation.factory,
                llm_name=llm.llm_name,
                model_type=llm.model_type,
                max_tokens=llm.max_tokens,
                **common,
            )
            for llm in LLM.objects.filter(factory=validation.factory, status=CatalogStatus.VALID)
        ]
        update_fields = [*common, "max_tokens", "model_type", "updated_at"]
    else:
        rows = [
            TenantLLM(
                tenant_id=validation.tenant_id,
                factory=validation.factory,
                llm_name=validation.llm_name,
                model_type=validation.model_type,
                max_tokens=validation.max_tokens or 8192,
                is_tools=validation.is_tools,
                **common,
            )
        ]
        update_fields = [*common, "max_tokens", "model_type", "updated_at"]
        if validation.is_tools is not None:  # not given: an edited model keeps its flag
            update_fields.append("is_tools")
    for row in rows:
        row.updated_at = now
    TenantLLM.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["tenant", "factory", "llm_name"],
        update_fields=update_fields,
    )
    # bulk writes send no signals: drop cached resolutions holding the old key.
    transaction.on_commit(invalidate_resolutions)


def key_validation_prune(*, older_than_days: int = 30) -> int:
    """Forget finished validations (their keys are already wiped) after a while."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    deleted, _ = KeyValidation.objects.filter(
        state__in=[ValidationState.SUCCEEDED, ValidationState.FAILED], finished_at__lt=cutoff
    ).delete()
    return deleted


def tenant_llm_revalidate(*, config: TenantLLM) -> Attempt:
    """Re-test a stored configuration with its stored key and record the verdict."""
    attempt = probe_model(
        model_type=config.model_type,
        factory=config.factory.name,
        llm_name=config.llm_name,
        api_key=config.api_key,
        api_base=config.api_base,
    )
    TenantLLM.objects.filter(pk=config.pk).update(
        validation_status=ValidationStatus.VALID if attempt.ok else ValidationStatus.FAILED,
        validated_at=timezone.now(),
        last_error="" if attempt.ok else attempt.message[:4000],
    )
    return attempt


def tenant_llm_request_revalidation(*, config_ids: list[int]) -> int:
    """Mark configurations as being validated and queue one live re-test for each."""
    marked = TenantLLM.objects.filter(pk__in=config_ids).update(
        validation_status=ValidationStatus.PENDING
    )
    for config_id in config_ids:
        _enqueue_on_commit(REVALIDATE_TASK, config_id)
    return marked
