from django.apps import AppConfig


class ProvidersConfig(AppConfig):
    name = "providers"
    verbose_name = "LLM providers and catalog"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (post-migrate catalog load)
