"""Celery tasks of tenants and their beat schedule: interfaces only.

They take ids, never keys, and call services. Services send them by name (see
tenants.services.key_validation), so this module imports services and never the reverse.
"""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from ragllm.beat import BeatJob

from .selectors import tenant_llm_enabled_ids, tenant_llm_get
from .services.key_validation import (
    key_validation_prune,
    key_validation_run,
    key_validation_time_limit,
    tenant_llm_revalidate,
)

BEAT_JOBS = (
    BeatJob("Re-validate stored keys", "tenants.tasks.revalidate_all_tenant_llms", cron=("0", "4")),
    BeatJob("Prune old key validations", "tenants.tasks.prune_key_validations", cron=("45", "3")),
)

# A run killed at the hard limit is taken over by the next delivery (key_validation_run).
_LIVE_CALLS = {
    "time_limit": key_validation_time_limit(),
    "soft_time_limit": key_validation_time_limit() * 0.9,
}
_RETRIED = {
    "acks_late": True,
    "autoretry_for": (OperationalError,),
    "retry_backoff": True,
    "max_retries": 5,
}


@shared_task(**_RETRIED, **_LIVE_CALLS)
def validate_credentials(validation_id: str) -> None:
    """Run the live test calls of one KeyValidation row (its key waits encrypted there)."""
    key_validation_run(validation_id=validation_id)


@shared_task(**_RETRIED, **_LIVE_CALLS)
def revalidate_tenant_llm(config_id: int) -> None:
    config = tenant_llm_get(config_id=config_id)
    if config is not None:
        tenant_llm_revalidate(config=config)


@shared_task(soft_time_limit=240, time_limit=300)
def revalidate_all_tenant_llms() -> int:
    """Daily beat job: one re-validation task per enabled configuration."""
    ids = tenant_llm_enabled_ids()
    for config_id in ids:
        revalidate_tenant_llm.delay(config_id)
    return len(ids)


@shared_task(ignore_result=True, soft_time_limit=240, time_limit=300)
def prune_key_validations() -> int:
    """Daily: delete finished key validations older than 30 days."""
    return key_validation_prune(older_than_days=30)
