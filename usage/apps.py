from django.apps import AppConfig


class UsageConfig(AppConfig):
    name = "usage"
    verbose_name = "Usage and quotas"

    def ready(self) -> None:
        from ragllm.beat import install_beat_jobs

        from . import signals, tasks  # noqa: F401

        install_beat_jobs(self, tasks.BEAT_JOBS)
