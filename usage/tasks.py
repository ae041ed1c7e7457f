"""Celery tasks of usage and their beat schedule. Thin: each calls one service.

Every job is idempotent, so a run cut short by its time limit is finished by the next one:
unapplied stream entries stay pending, rollups are recomputed, pruning resumes.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from ragllm.beat import BeatJob

from .services.events import usage_drain
from .services.partitions import usage_partitions_ahead, usage_prune_events
from .services.rollups import usage_rollup_daily

BEAT_JOBS = (
    BeatJob("Drain the usage buffer", "usage.tasks.drain_usage_buffer", every=(5, "seconds")),
    BeatJob("Roll hourly usage into days", "usage.tasks.rollup_usage_daily", every=(10, "minutes")),
    BeatJob("Prune old usage events", "usage.tasks.prune_usage_events", cron=("30", "3")),
    BeatJob(
        "Create usage partitions ahead", "usage.tasks.create_usage_partitions", every=(1, "hours")
    ),
)

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
