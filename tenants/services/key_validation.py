"""Key validation: a request is recorded, a Celery task makes the live calls, the key is saved.

The task gets the KeyValidation row's id, never the key: the candidate key waits encrypted in
that row and is wiped when the run ends. In order:

1. `key_validation_request` records the request. It supersedes the older requests still
   waiting or running for the same configurations (only the newest one may be applied) and
   marks the existing configurations it would change as "validating".
2. `key_validation_run` (the task) claims it while it can still finish before its deadline,
   makes the live calls, and ends it: succeeded (the key is saved), failed, superseded (a newer
   request came in meanwhile: nothing is saved) or expired.
3. `key_validation_expire_overdue` (a beat job, and the task route on read) ends requests left
   pending or running past their deadline as expired.

Requests and endings of one tenant are serialized by a lock on the tenant's row, so a request
either supersedes a run before it applies, or comes after it.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from providers.models import LLM, LLMFactory
from providers.models import Status as CatalogStatus
from ragllm.celery import app as celery_app
from ragllm.celery import worker_available
from ragllm.errors import ApplicationError, Conflict, ServiceUnavailable

from ..actors import current_actor
from ..models import (
    ACTIVE_VALIDATION_STATES,
    KeyValidation,
    Tenant,
    TenantLLM,
    ValidationKind,
    ValidationState,
    ValidationStatus,
)
from ..resolution import invalidate as invalidate_resolutions
from ..selectors import key_validation_probe_models
from ..validation import Attempt, probe_model, validation_failure
from .audit import audit_validated_key
from .tenants import tenant_lock

logger = logging.getLogger(__name__)

# The tasks of tenants.tasks, by name: the task module imports these services, not the reverse.
VALIDATE_TASK = "tenants.tasks.validate_credentials"
REVALIDATE_TASK = "tenants.tasks.revalidate_tenant_llm"


def _enqueue_on_commit(task_name: str, *args: object) -> None:
    """Send the task once the caller's transaction commits (the worker must see the rows)."""
    transaction.on_commit(lambda: celery_app.tasks[task_name].delay(*args))


def key_validation_time_limit() -> float:
    """Seconds a validation run may take; its task is killed after this long."""
    return float(settings.KEY_VALIDATION_TIME_LIMIT)


# --- 1. Requests ---------------------------------------------------------------------------


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
    synchronous: bool = False,
) -> KeyValidation:
    """Record a validation request and enqueue its task (which gets the row id, not the key).

    With enqueue=False the caller runs it itself (key_validation_run), as commands do. With
    synchronous=True the caller will wait for the result: if no worker would take the task,
    this refuses at once (ServiceUnavailable) and records nothing.
    """
    if enqueue and synchronous and not worker_available(VALIDATE_TASK):
        raise ServiceUnavailable(
            "No Celery worker is taking key validations, so the key cannot be checked now; "
            "nothing was saved. Start one (celery -A ragllm worker) and try again."
        )
    with transaction.atomic():
        tenant_lock(tenant_id=tenant.pk)
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
            requested_via=current_actor().as_dict(),
        )
        if not verify_only:
            _supersede_older(validation)
            _target_configs(validation).update(validation_status=ValidationStatus.PENDING)
    if enqueue:
        _enqueue_on_commit(VALIDATE_TASK, str(validation.pk))
    return validation


def _catalog_names(factory_id) -> QuerySet:
    return LLM.objects.filter(factory_id=factory_id, status=CatalogStatus.VALID).values("llm_name")


def _supersede_older(new: KeyValidation) -> None:
    """End the older requests that `new` overrides; they save nothing (tenant lock held).

    set_api_key overrides older set_api_key requests of the factory and older add_llm requests
    of its catalog models; add_llm overrides older add_llm requests of the same model, and takes
    that model out of older set_api_key requests, which go on for the factory's other models.
    """
    older = KeyValidation.objects.filter(
        tenant_id=new.tenant_id,
        factory_id=new.factory_id,
        verify_only=False,
        state__in=ACTIVE_VALIDATION_STATES,
    ).exclude(pk=new.pk)
    if new.kind == ValidationKind.SET_API_KEY:
        overridden = older.filter(
            Q(kind=ValidationKind.SET_API_KEY)
            | Q(kind=ValidationKind.ADD_LLM, llm_name__in=_catalog_names(new.factory_id))
        )
    else:
        overridden = older.filter(kind=ValidationKind.ADD_LLM, llm_name=new.llm_name)
        for partial in older.filter(kind=ValidationKind.SET_API_KEY):
            if new.llm_name not in partial.superseded_models:
                partial.superseded_models = [*partial.superseded_models, new.llm_name]
                partial.save(update_fields=["superseded_models"])
    overridden.update(
        state=ValidationState.SUPERSEDED,
        api_key="",
        finished_at=timezone.now(),
        message=f"A newer request ({new.pk}) replaced this one before it was applied; "
        "nothing was saved.",
    )


def _target_configs(validation: KeyValidation) -> QuerySet[TenantLLM]:
    """The tenant's existing configurations this validation would change if it succeeds."""
    configs = TenantLLM.objects.filter(
        tenant_id=validation.tenant_id, factory_id=validation.factory_id
    )
    if validation.kind == ValidationKind.ADD_LLM:
        return configs.filter(llm_name=validation.llm_name)
    return configs.filter(llm_name__in=_catalog_names(validation.factory_id)).exclude(
        llm_name__in=validation.superseded_models
    )


# --- 2. Runs ---------------------------------------------------------------------------------


def key_validation_run(*, validation_id: str) -> KeyValidation | None:
    """Run one validation: claim it, make the live calls, end it (saving the key if asked).

    Idempotent: a validation already claimed (or ended) is left alone. One that cannot finish
    before its deadline any more is not started: it ends expired.
    """
    now = timezone.now()
    limit = timedelta(seconds=key_validation_time_limit())
    claimed = KeyValidation.objects.filter(
        pk=validation_id, state=ValidationState.PENDING, expires_at__gte=now + limit
    ).update(state=ValidationState.RUNNING, started_at=now)
    if not claimed:
        _end(
            validation_id,
            ValidationState.EXPIRED,
            f"No worker took this validation within {settings.KEY_VALIDATION_QUEUE_SECONDS:g} "
            "seconds; nothing was saved. Try again.",
            only_if=(ValidationState.PENDING,),
        )
        return KeyValidation.objects.filter(pk=validation_id).first()
    validation = KeyValidation.objects.select_related("factory").get(pk=validation_id)
    attempts = _probe(validation)
    succeeded = any(a.ok for a in attempts)
    if not attempts:
        message = f"Factory {validation.factory.name} lists no embedding, chat or rerank model."
    else:
        message = "" if succeeded else "\n".join(a.message for a in attempts if not a.ok)
    state = ValidationState.SUCCEEDED if succeeded else ValidationState.FAILED
    _end(validation_id, state, message, attempts=[a.as_dict() for a in attempts])
    return KeyValidation.objects.get(pk=validation_id)


def _probe(validation: KeyValidation) -> list[Attempt]:
    factory = validation.factory
    if validation.kind == ValidationKind.ADD_LLM:
        models = [(validation.model_type, validation.llm_name)]
    else:
        models = [
            (llm.model_type, llm.llm_name) for llm in key_validation_probe_models(factory=factory)
        ]
    attempts: list[Attempt] = []
    for model_type, llm_name in models:
        attempt = probe_model(
            model_type=model_type,
            factory=factory.name,
            llm_name=llm_name,
            api_key=validation.api_key,
            api_base=validation.api_base,
        )
        attempts.append(attempt)
        if attempt.ok:
            break
    return attempts


def _end(
    validation_id,
    state: str,
    message: str,
    *,
    attempts: list[dict] | None = None,
    only_if: tuple[str, ...] = (ValidationState.RUNNING,),
) -> bool:
    """End a validation still in one of `only_if` states; False if it had already ended.

    A run superseded or expired meanwhile is not in "running" any more: it saves nothing.
    One UPDATE ends the row and wipes the candidate key: the key now lives (encrypted) in
    TenantLLM if it was saved, and nowhere if it was not.
    """
    tenant_id = KeyValidation.objects.filter(pk=validation_id).values_list("tenant_id", flat=True)
    with transaction.atomic():
        tenant_lock(tenant_id=tenant_id.first())
        validation = (
            KeyValidation.objects.select_for_update()
            .filter(pk=validation_id, state__in=only_if)
            .first()
        )
        if validation is None:
            return False
        if not validation.verify_only:
            if state == ValidationState.SUCCEEDED:
                _apply_validated(validation)
            else:
                _target_configs(validation).filter(
                    validation_status=ValidationStatus.PENDING
                ).update(
                    validation_status=ValidationStatus.FAILED,
                    validated_at=timezone.now(),
                    last_error=f"The new credentials were not saved (the stored ones are still "
                    f"in use): {message}"[:4000],
                )
        changes: dict[str, Any] = {"attempts": attempts} if attempts is not None else {}
        KeyValidation.objects.filter(pk=validation.pk).update(
            state=state, message=message, api_key="", finished_at=timezone.now(), **changes
        )
    return True


def _apply_validated(validation: KeyValidation) -> None:
    now = timezone.now()
    common = {
        "api_key": validation.api_key,
        "api_base": validation.api_base,
        "validation_status": ValidationStatus.VALID,
        "validated_at": now,
        "last_error": "",
    }
    update_fields = [*common, "max_tokens", "model_type", "updated_at"]
    if validation.kind == ValidationKind.SET_API_KEY:
        catalog = LLM.objects.filter(factory=validation.factory, status=CatalogStatus.VALID)
        rows = [
            TenantLLM(
                tenant_id=validation.tenant_id,
                factory=validation.factory,
                llm_name=llm.llm_name,
                model_type=llm.model_type,
                max_tokens=llm.max_tokens,
                **common,
            )
            for llm in catalog.exclude(llm_name__in=validation.superseded_models)
        ]
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
        if validation.is_tools is not None:  # not given: an edited model keeps its flag
            update_fields.append("is_tools")
    for row in rows:
        row.updated_at = now
    audit_validated_key(validation=validation, rows=rows)
    TenantLLM.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["tenant", "factory", "llm_name"],
        update_fields=update_fields,
    )
    # bulk writes send no signals: drop cached resolutions holding the old key.
    transaction.on_commit(invalidate_resolutions)


def key_validation_error(*, validation: KeyValidation, data: Any = None) -> ApplicationError:
    """The error a caller waiting for this (ended, unsuccessful) validation gets."""
    if validation.state == ValidationState.SUPERSEDED:
        return Conflict(validation.message, data=data)
    if validation.state == ValidationState.EXPIRED:
        return ServiceUnavailable(validation.message, data=data)
    return validation_failure(message=validation.message, attempts=validation.attempts, data=data)


# --- 3. Deadlines and housekeeping -------------------------------------------------------------


def key_validation_expire_overdue(*, validation_ids: list | None = None) -> int:
    """End the validations still pending or running past their deadline as expired.

    Their candidate keys are wiped and the configurations they marked "validating" are marked
    failed (the stored credentials stay in use). Returns how many were expired.
    """
    overdue = KeyValidation.objects.filter(
        state__in=ACTIVE_VALIDATION_STATES, expires_at__lt=timezone.now()
    )
    if validation_ids is not None:
        overdue = overdue.filter(pk__in=validation_ids)
    expired = 0
    for validation_id, state in overdue.values_list("pk", "state"):
        if state == ValidationState.PENDING:
            why = "no worker took it before its deadline"
        else:
            why = "it did not finish before its deadline (its worker may have stopped)"
        expired += _end(
            validation_id,
            ValidationState.EXPIRED,
            f"The validation expired: {why}; nothing was saved. Try again.",
            only_if=ACTIVE_VALIDATION_STATES,
        )
    return expired


def key_validation_time_out(*, validation_id: str) -> bool:
    """End a run that used up its time limit as expired (its task was about to be killed)."""
    return _end(
        validation_id,
        ValidationState.EXPIRED,
        f"The validation did not finish within {key_validation_time_limit():g} seconds; "
        "nothing was saved. Try again.",
    )


def key_validation_prune(*, older_than_days: int = 30) -> int:
    """Forget ended validations (their keys are already wiped) after a while."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    deleted, _ = (
        KeyValidation.objects.exclude(state__in=ACTIVE_VALIDATION_STATES)
        .filter(finished_at__lt=cutoff)
        .delete()
    )
    return deleted


def tenant_llm_revalidate(*, config: TenantLLM) -> Attempt:
    """Re-test a stored configuration with its stored key and record the verdict.

    The verdict is recorded only if the configuration still holds the key and base URL that
    were tested: a re-test that finishes after new credentials were saved says nothing of them.
    """
    attempt = probe_model(
        model_type=config.model_type,
        factory=config.factory.name,
        llm_name=config.llm_name,
        api_key=config.api_key,
        api_base=config.api_base,
    )
    with transaction.atomic():
        current = TenantLLM.objects.select_for_update().filter(pk=config.pk).first()
        if (
            current is not None
            and current.api_key == config.api_key
            and current.api_base == config.api_base
        ):
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
