from django.apps import AppConfig


class ProvidersConfig(AppConfig):
    name = "providers"
    verbose_name = "LLM providers and catalog"

    def ready(self) -> None:
        from . import clients, netguard, receivers  # noqa: F401  (receivers: catalog on migrate)

        # The connect-time address check goes into every pooled client.
        clients.add_transport_hook(netguard.install_guard)
