"""Fixtures of the modal's server tests: the sandbox provider under live_server."""

from __future__ import annotations

import pytest

from tests.connect.helpers import build_world


@pytest.fixture
def world(live_server, settings, transactional_db):
    """The sandbox at live_server, the portal's base URL pointing there (the OAuth callback)."""
    settings.PORTAL_BASE_URL = live_server.url
    return build_world(live_server.url, allowed_origins=["https://app.acme.test"])


@pytest.fixture
def hx(world):
    """Headers of an htmx request from the modal: the session travels in X-Portal-Session."""
    return {"HTTP_HX_REQUEST": "true", "HTTP_X_PORTAL_SESSION": world.token}
