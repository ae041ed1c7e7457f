"""Celery tasks of usage and their beat schedule. Thin: each calls one service.

Every job is idempotent, so a run cut short by its time limit is finished by the next one:
unapplied stream entries stay pending, rollups are recomputed, pruning resumes.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from ragllm.beat import BeatJob

from .services.alerts import alert_webhook_deliver
from .services.events import usage_drain
from .services.partitions import usage_partitions_ahead, usage_prune_events
from .services.quotas import quota_reconcile
from .services.rollups import usage_rollup_daily

BEAT_JOBS = (
    BeatJob("Drain the usage buffer", "usage.tasks.drain_usage_buffer", every=(5, "seconds")),
    BeatJob("Roll hourly usage into days", "usage.tasks.rollup_usage_daily", every=(10, "minutes")),
    BeatJob("Prune old usage events", "usage.tasks.prune_usage_events", cron=("30", "3")),
    BeatJob("Reconcile quota counters", "usage.tasks.reconcile_quotas", every=(1, "minutes")),
    BeatJob(
        "Create usage partitions ahead", "usage.tasks.create_usage_partitions", every=(1, "hours")
    ),
)

# Retry delays of a failed webhook delivery (s): 6 attempts over about 40 minutes.
WEBHOOK_BACKOFF = (30, 120, 300, 600, 1800)

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True, soft_time_limit=240, time_limit=300)
def drain_usage_buffer() -> int:
    """Every few seconds: apply buffered usage events to the database.

    Celery's own lines about this task are filtered out (ragllm.logfilters): it runs every 5 s
    and would bury everything else on the console. This line says when it did something.
    """
    inserted = usage_drain().inserted
    if inserted:
        logger.info("usage drain: %d event(s) applied", inserted)
    return inserted


@shared_task(ignore_result=True, soft_time_limit=540, time_limit=600)
def rollup_usage_daily() -> int:
    """Recompute the daily rows of yesterday and today from the hourly rows (a repair)."""
    return usage_rollup_daily()


@shared_task(ignore_result=True, soft_time_limit=3300, time_limit=3600)
def prune_usage_events() -> int:
    """Drop raw events older than USAGE_RETENTION_DAYS (whole day partitions on PostgreSQL);
    rollups stay. Returns the partitions dropped plus the rows deleted one by one."""
    result = usage_prune_events(older_than_days=settings.USAGE_RETENTION_DAYS)
    if result.partitions or result.rows:
        logger.info(
            "usage retention: %d day partition(s) dropped, %d row(s) deleted",
            result.partitions,
            result.rows,
        )
    return result.partitions + result.rows


@shared_task(ignore_result=True, soft_time_limit=240, time_limit=300)
def create_usage_partitions() -> int:
    """Every hour: the event table's partitions for today and the next 7 days (PostgreSQL)."""
    return usage_partitions_ahead(days=7)


@shared_task(ignore_result=True, soft_time_limit=50, time_limit=60)
def reconcile_quotas() -> int:
    """Every minute: bring quota counters back to the ledger (usage.services.quotas).

    Quiet like the drain (ragllm.logfilters): it logs only when Redis is down or on errors.
    """
    return quota_reconcile(idle_seconds=settings.QUOTA_RECONCILE_IDLE_SECONDS)


@shared_task(
    bind=True,
    ignore_result=True,
    max_retries=len(WEBHOOK_BACKOFF),
    soft_time_limit=50,
    time_limit=60,
)
def deliver_alert_webhook(self, alert_id: int) -> None:
    """POST one alert (by id) to its tenant's webhook; retried with backoff on failure."""
    attempt = self.request.retries + 1
    delivered = alert_webhook_deliver(alert_id=alert_id, attempt=attempt)
    if delivered is False and self.request.retries < len(WEBHOOK_BACKOFF):
        raise self.retry(countdown=WEBHOOK_BACKOFF[self.request.retries])
