from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Tenants, end users and credentials"

    def ready(self) -> None:
        from django.core.signals import request_finished, request_started

        from accounts.services.audit import audit_request_finished, audit_request_started

        request_started.connect(audit_request_started, dispatch_uid="audit_request_started")
        request_finished.connect(audit_request_finished, dispatch_uid="audit_request_finished")
