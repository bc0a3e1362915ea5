"""Fixtures of the sandbox tests: the demo accounts and the portal's OAuth client."""

from __future__ import annotations

import pytest

from sandbox.services import sandbox_application_ensure, sandbox_seed
from tests.sandbox.helpers import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI


# These need the database: tests mark it, with transaction=True when a live server reads it.
@pytest.fixture
def sandbox_accounts():
    return {account.email: account for account in sandbox_seed()}


@pytest.fixture
def oauth_client():
    return sandbox_application_ensure(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uris=[REDIRECT_URI]
    )
