"""The Celery application. Broker and schedules come from Django settings (CELERY_*)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragllm.settings")

app = Celery("ragllm")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
