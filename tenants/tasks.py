"""Celery tasks of tenants and their beat schedule: interfaces only.

They take ids, never keys, and call services. Services send them by name (see
tenants.services.key_validation), so this module imports services and never the reverse.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.db import OperationalError

from ragllm.beat import BeatJob

from .selectors import tenant_llm_enabled_ids, tenant_llm_get
from .services.key_validation import (
    key_validation_expire_overdue,
    key_validation_prune,
    key_validation_run,
    key_validation_time_limit,
    key_validation_time_out,
    tenant_llm_revalidate,
)

logger = logging.getLogger(__name__)

BEAT_JOBS = (
    BeatJob("Re-validate stored keys", "tenants.tasks.revalidate_all_tenant_llms", cron=("0", "4")),
    BeatJob("Prune old key validations", "tenants.tasks.prune_key_validations", cron=("45", "3")),
    BeatJob(
        "Expire overdue key validations",
        "tenants.tasks.expire_key_validations",
        every=(1, "minutes"),
    ),
)

_LIVE_CALLS = {
    "time_limit": key_validation_time_limit(),
    "soft_time_limit": key_validation_time_limit() * 0.95,
}
_RETRIED = {
    "acks_late": True,
    "autoretry_for": (OperationalError,),
    "retry_backoff": True,
    "max_retries": 5,
}


# acks_late: a message a worker took but never started is delivered again. A run whose worker
# died is not: it cannot be claimed twice, and it ends "expired" at its deadline.
@shared_task(**_RETRIED, **_LIVE_CALLS, reject_on_worker_lost=False)
def validate_credentials(validation_id: str) -> None:
    """Run the live test calls of one KeyValidation row (its key waits encrypted there)."""
    try:
        key_validation_run(validation_id=validation_id)
    except SoftTimeLimitExceeded:
        # Out of time: end it now rather than at its deadline (nothing is saved).
        key_validation_time_out(validation_id=validation_id)


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


@shared_task(ignore_result=True, soft_time_limit=50, time_limit=60)
def expire_key_validations() -> int:
    """Every minute: end validations left pending or running past their deadline."""
    expired = key_validation_expire_overdue()
    if expired:
        logger.info("expired %d overdue key validation(s)", expired)
    return expired
