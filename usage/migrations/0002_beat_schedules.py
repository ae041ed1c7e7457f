"""The periodic jobs, created once as django-celery-beat rows (editable in the admin)."""

import json

from django.db import migrations

INTERVALS = [
    # (name, task, every, period)
    ("Drain the usage buffer", "usage.tasks.drain_usage_buffer", 5, "seconds"),
    ("Roll hourly usage into days", "usage.tasks.rollup_usage_daily", 10, "minutes"),
]
CRONTABS = [
    # (name, task, minute, hour)
    ("Prune old usage events", "usage.tasks.prune_usage_events", "30", "3"),
    ("Re-validate stored keys", "tenants.tasks.revalidate_all_tenant_llms", "0", "4"),
]


def create_schedules(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, every, period in INTERVALS:
        schedule, _ = IntervalSchedule.objects.get_or_create(every=every, period=period)
        PeriodicTask.objects.get_or_create(
            name=name, defaults={"task": task, "interval": schedule, "kwargs": json.dumps({})}
        )
    for name, task, minute, hour in CRONTABS:
        schedule, _ = CrontabSchedule.objects.get_or_create(
            minute=minute, hour=hour, day_of_week="*", day_of_month="*", month_of_year="*",
            timezone="UTC",
        )
        PeriodicTask.objects.get_or_create(
            name=name, defaults={"task": task, "crontab": schedule, "kwargs": json.dumps({})}
        )


def remove_schedules(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[n for n, *_ in INTERVALS + CRONTABS]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedules, remove_schedules)]
