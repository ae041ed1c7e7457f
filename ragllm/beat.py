"""Periodic jobs: each app declares its own next to its tasks; `migrate` creates their rows.

The rows are django-celery-beat's PeriodicTask, read by its DatabaseScheduler and editable in
the admin. After every `migrate`, a job whose name has no row yet gets one; existing rows are
never changed, so an operator's edits (a new time, a disabled job) stay, and rows created by
earlier versions are found by name rather than duplicated. To stop a job, disable it: a
deleted row comes back at the next migrate.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from django.apps import AppConfig
from django.db.models.signals import post_migrate


@dataclass(frozen=True)
class BeatJob:
    name: str  # the row's unique name, shown in the admin
    task: str
    every: tuple[int, str] | None = None  # an interval, e.g. (10, "minutes")...
    cron: tuple[str, str] | None = None  # ...or a daily time in UTC: (minute, hour)


def ensure_beat_jobs(jobs: Iterable[BeatJob], *, apps=None, using: str = "default") -> int:
    """Create the rows of jobs that have none; returns how many were created."""
    if apps is None:
        from django.apps import apps
    try:
        periodic_task = apps.get_model("django_celery_beat", "PeriodicTask")
        interval = apps.get_model("django_celery_beat", "IntervalSchedule")
        crontab = apps.get_model("django_celery_beat", "CrontabSchedule")
    except LookupError:  # django-celery-beat's tables are not migrated (yet)
        return 0
    created = 0
    for job in jobs:
        if periodic_task.objects.using(using).filter(name=job.name).exists():
            continue
        if job.cron is not None:
            minute, hour = job.cron
            schedule, _ = crontab.objects.using(using).get_or_create(
                minute=minute,
                hour=hour,
                day_of_week="*",
                day_of_month="*",
                month_of_year="*",
                timezone="UTC",
            )
            when = {"crontab": schedule}
        else:
            every, period = job.every
            schedule, _ = interval.objects.using(using).get_or_create(every=every, period=period)
            when = {"interval": schedule}
        periodic_task.objects.using(using).create(
            name=job.name, task=job.task, kwargs=json.dumps({}), **when
        )
        created += 1
    return created


def install_beat_jobs(app_config: AppConfig, jobs: Iterable[BeatJob]) -> None:
    """Create the app's job rows after each `migrate` (call from AppConfig.ready)."""
    jobs = tuple(jobs)

    def create(sender, apps=None, using: str = "default", **kwargs) -> None:
        ensure_beat_jobs(jobs, apps=apps, using=using)

    post_migrate.connect(
        create, sender=app_config, weak=False, dispatch_uid=f"{app_config.label}.beat_jobs"
    )
