"""Fixtures of the API tests: tenant keys, clients that send them, and small upstream apps."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from accounts.services.tenants import tenant_api_key_create
from tests import factories


class ApiClient:
    """A Django test client that sends a tenant's secret key, and JSON bodies by default."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.client = Client(headers={"Authorization": f"Bearer {key}"})

    def request(self, method: str, path: str, body: Any = None, **kwargs: Any):
        if body is not None:
            kwargs.setdefault("content_type", "application/json")
            kwargs["data"] = json.dumps(body)
        return getattr(self.client, method.lower())(path, **kwargs)

    def get(self, path: str, **kwargs: Any):
        return self.request("get", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any):
        return self.request("post", path, body, **kwargs)

    def put(self, path: str, body: Any = None, **kwargs: Any):
        return self.request("put", path, body, **kwargs)

    def patch(self, path: str, body: Any = None, **kwargs: Any):
        return self.request("patch", path, body, **kwargs)

    def delete(self, path: str, **kwargs: Any):
        return self.request("delete", path, **kwargs)


def client_for(tenant) -> ApiClient:
    return ApiClient(tenant_api_key_create(tenant=tenant, name="tests").plaintext)


@pytest.fixture
def api(tenant) -> ApiClient:
    return client_for(tenant)


@pytest.fixture
def other_api(other_tenant) -> ApiClient:
    return client_for(other_tenant)


def error_of(response) -> dict[str, Any]:
    """The API error of a response, checking its shape on the way."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"code", "message"} <= set(body["error"]), body
    return body["error"]


def key_app_on(base_url: str, **extra: Any):
    """An API-key app whose API and verification endpoint live at ``base_url``."""
    values = {
        "api_base_url": base_url,
        "fields": [
            {
                "name": "api_key",
                "label": "API key",
                "secret": True,
                "required": True,
                "pattern": r"^key_[a-z0-9]{8,}$",
                "help": "It starts with key_.",
            }
        ],
        "verification": {"path": "/me", "identity": ["email"]},
    }
    values.update(extra)
    return factories.make_api_key_app(**values)
