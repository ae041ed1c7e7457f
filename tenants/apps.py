from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants and model configurations"

    def ready(self) -> None:
        from ragllm.beat import install_beat_jobs

        # tasks: registered with Celery, so services can send them by name.
        from . import checks, signals, tasks  # noqa: F401

        install_beat_jobs(self, tasks.BEAT_JOBS)
