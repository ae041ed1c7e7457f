from django.apps import AppConfig


class ProvidersConfig(AppConfig):
    name = "providers"
    verbose_name = "LLM providers and catalog"

    def ready(self) -> None:
        from . import netguard, signals  # noqa: F401  (signals: post-migrate catalog load)

        netguard.install()
