from django.apps import AppConfig


class ProvidersConfig(AppConfig):
    name = "providers"
    verbose_name = "LLM providers and catalog"

    def ready(self) -> None:
        # receivers: the catalog on migrate; checks: system checks of the network settings.
        from . import checks, clients, netguard, receivers  # noqa: F401

        # The connect-time address check goes into every pooled client.
        clients.add_transport_hook(netguard.install_guard)
