"""Periodic jobs: declared by the app whose task they run, created by migrate, never doubled."""

from django_celery_beat.models import PeriodicTask

from ragllm.beat import ensure_beat_jobs
from ragllm.celery import app
from tenants.tasks import BEAT_JOBS as TENANT_JOBS
from usage.tasks import BEAT_JOBS as USAGE_JOBS

ALL_JOBS = TENANT_JOBS + USAGE_JOBS


def test_the_beat_schedules_exist_on_a_fresh_install(db):
    tasks = dict(PeriodicTask.objects.values_list("task", "enabled"))
    for task in (
        "usage.tasks.drain_usage_buffer",
        "usage.tasks.rollup_usage_daily",
        "usage.tasks.prune_usage_events",
        "tenants.tasks.revalidate_all_tenant_llms",
        "tenants.tasks.prune_key_validations",
        "tenants.tasks.expire_key_validations",
    ):
        assert tasks.get(task) is True, task


def test_each_app_schedules_only_its_own_tasks():
    assert {job.task.split(".")[0] for job in TENANT_JOBS} == {"tenants"}
    assert {job.task.split(".")[0] for job in USAGE_JOBS} == {"usage"}


def test_every_scheduled_task_exists_and_has_a_time_limit():
    for job in ALL_JOBS:
        task = app.tasks[job.task]
        assert task.time_limit and task.soft_time_limit < task.time_limit, job.task


def test_the_key_validation_tasks_are_killed_at_the_validation_time_limit():
    from tenants.services.key_validation import key_validation_time_limit

    for name in ("tenants.tasks.validate_credentials", "tenants.tasks.revalidate_tenant_llm"):
        assert app.tasks[name].time_limit == key_validation_time_limit()


def test_an_upgraded_database_keeps_its_rows_and_their_edits(db):
    # Rows as the data migrations of earlier versions created them, then edited by an operator.
    drain = PeriodicTask.objects.get(name="Drain the usage buffer")
    drain.enabled = False
    drain.save()
    assert ensure_beat_jobs(ALL_JOBS) == 0
    assert PeriodicTask.objects.filter(name="Drain the usage buffer").count() == 1
    assert PeriodicTask.objects.get(name="Drain the usage buffer").enabled is False
    assert PeriodicTask.objects.count() == len(ALL_JOBS)


def test_a_missing_row_is_created_with_its_schedule(db):
    PeriodicTask.objects.filter(
        name__in=["Prune old usage events", "Drain the usage buffer"]
    ).delete()
    assert ensure_beat_jobs(ALL_JOBS) == 2
    prune = PeriodicTask.objects.get(name="Prune old usage events")
    assert (prune.task, prune.crontab.minute, prune.crontab.hour) == (
        "usage.tasks.prune_usage_events",
        "30",
        "3",
    )
    drain = PeriodicTask.objects.get(name="Drain the usage buffer")
    assert (drain.interval.every, drain.interval.period) == (5, "seconds")


def test_job_names_are_unique():
    names = [job.name for job in ALL_JOBS]
    assert len(names) == len(set(names))
