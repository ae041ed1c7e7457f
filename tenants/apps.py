from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants and model configurations"

    def ready(self) -> None:
        from . import checks, signals  # noqa: F401
