"""Celery beat jobs for usage. Thin: each calls one service."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from .services import usage_drain, usage_prune_events, usage_rollup_daily

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def drain_usage_buffer() -> int:
    """Every few seconds: apply buffered usage events to the database.

    Celery's own lines about this task are filtered out (ragllm.logfilters): it runs every 5 s
    and would bury everything else on the console. This line says when it did something.
    """
    inserted = usage_drain().inserted
    if inserted:
        logger.info("usage drain: %d event(s) applied", inserted)
    return inserted


@shared_task(ignore_result=True)
def rollup_usage_daily() -> int:
    """Roll hourly rows of yesterday and today into daily rows (idempotent)."""
    return usage_rollup_daily()


@shared_task(ignore_result=True)
def prune_usage_events() -> int:
    """Delete raw events older than USAGE_RETENTION_DAYS; rollups stay."""
    return usage_prune_events(older_than_days=settings.USAGE_RETENTION_DAYS)
