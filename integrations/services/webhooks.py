"""Tenants' webhook endpoints and their signing secrets (Standard Webhooks ``whsec_`` format)."""

from __future__ import annotations

import base64
import secrets

from core.vault import open_secret, seal_secret
from integrations.models import WebhookEndpoint


def webhook_endpoint_secret_rotate(*, endpoint: WebhookEndpoint) -> str:
    """Give the endpoint a new signing secret and return it (the only time it is shown)."""
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    seal_secret(endpoint, {"secret": secret})
    endpoint.save(update_fields=["secret_key_id", "secret_ciphertext"])
    return secret


def webhook_endpoint_secret(*, endpoint: WebhookEndpoint) -> str:
    return open_secret(endpoint)["secret"]
