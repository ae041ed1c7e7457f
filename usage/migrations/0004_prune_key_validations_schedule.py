"""One more periodic job: forget finished key validations after 30 days."""

import json

from django.db import migrations

NAME = "Prune old key validations"


def create(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    schedule, _ = CrontabSchedule.objects.get_or_create(
        minute="45", hour="3", day_of_week="*", day_of_month="*", month_of_year="*",
        timezone="UTC",
    )
    PeriodicTask.objects.get_or_create(
        name=NAME,
        defaults={
            "task": "tenants.tasks.prune_key_validations",
            "crontab": schedule,
            "kwargs": json.dumps({}),
        },
    )


def remove(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("usage", "0003_usagehourly_usagehourly_bucket_idx")]

    operations = [migrations.RunPython(create, remove)]
