from django.apps import AppConfig

from integrations.catalog_changes import connect_catalog_signals


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Apps, flows and webhooks"

    def ready(self) -> None:
        connect_catalog_signals(self)
