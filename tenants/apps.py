from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants and model configurations"

    def ready(self) -> None:
        # tasks: registered with Celery, so services can send them by name.
        from . import checks, signals, tasks  # noqa: F401
