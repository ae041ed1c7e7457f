"""Celery tasks: interfaces only. They take ids, never keys, and call services."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from .selectors import tenant_llm_enabled_ids, tenant_llm_get
from .services.key_validation import key_validation_prune, key_validation_run, tenant_llm_revalidate


@shared_task(
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def validate_credentials(validation_id: str) -> None:
    """Run the live test calls of one KeyValidation row (its key waits encrypted there)."""
    key_validation_run(validation_id=validation_id)


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def revalidate_tenant_llm(config_id: int) -> None:
    config = tenant_llm_get(config_id=config_id)
    if config is not None:
        tenant_llm_revalidate(config=config)


@shared_task
def revalidate_all_tenant_llms() -> int:
    """Daily beat job: one re-validation task per enabled configuration."""
    ids = tenant_llm_enabled_ids()
    for config_id in ids:
        revalidate_tenant_llm.delay(config_id)
    return len(ids)


@shared_task(ignore_result=True)
def prune_key_validations() -> int:
    """Daily: delete finished key validations older than 30 days."""
    return key_validation_prune(older_than_days=30)
