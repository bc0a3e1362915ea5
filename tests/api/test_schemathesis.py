"""A bounded schemathesis run over the whole API schema, in-process, with a real tenant key and
every check enabled: no answer is a 5xx, every answer matches the schema (status, content type,
headers, body), schema-invalid input (NUL and other control characters included) is refused,
and schema-valid input is never refused for its shape: the schema says what the validation does.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings

from accounts.models import TenantApiKey
from core.tokens import hash_token
from tests import factories

MAX_EXAMPLES = 20
STATUSES: dict[str, list[int]] = defaultdict(list)


class InProcessApp:
    """Django's WSGI app for an in-process client inside a test transaction.

    Like Django's test client, it keeps the request signals from closing the test's database
    connection (which would end the transaction the test runs in).
    """

    def __init__(self) -> None:
        self.handler = WSGIHandler()

    def __call__(self, environ, start_response):
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        try:
            response = self.handler(environ, start_response)
            try:
                return [b"".join(response)]
            finally:
                response.close()
        finally:
            request_started.connect(close_old_connections)
            request_finished.connect(close_old_connections)


@pytest.fixture
def api_key(tenant, settings):
    settings.PORTAL_API_RATE_LIMIT = "100000/m"
    # Something to find: a user with an account and an installation.
    app = factories.make_api_key_app(slug="crm", api_base_url="http://127.0.0.1:9/api")
    user = factories.make_end_user(tenant=tenant, external_id="user-1", email="ada@example.com")
    credential = factories.make_credential(end_user=user, app=app)
    flow = factories.make_flow(tenant=tenant, apps=[app])
    factories.make_deployment(tenant=tenant, flows=[flow])
    assert credential.pk
    TenantApiKey.objects.create(
        tenant=tenant, name="schemathesis", prefix=KEY_PREFIX, key_hash=hash_token(KEY)
    )
    return KEY


# Loaded at collection: serving the schema needs no database.
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", InProcessApp())
# Unknown query parameters are ignored by design (as most APIs do), not refused.
schema.config.generation.update(allow_extra_parameters=False)
# Schema-valid input may still be refused for what it names, not for its shape: an unknown app or
# cursor (422), a proxied call's upstream. Never a 5xx (the default would allow one here).
schema.config.checks.positive_data_acceptance.expected_statuses = [
    "2xx",
    "3xx",
    "401",
    "403",
    "404",
    "409",
    "422",
    "429",
]

# The codes that say "the request's shape is wrong": a schema-valid request never gets one.
SHAPE_CODES = frozenset(
    {
        "validation_error",
        "invalid_characters",
        "invalid_json",
        "invalid_proxy_path",
        "invalid_theme",
        "invalid_session_length",
        "session_too_long",
        "invalid_end_user",
        "invalid_user",
        "invalid_redirect_uri",
        "invalid_credential_id",
    }
)


@schemathesis.check
def schema_valid_input_is_never_refused_for_its_shape(ctx, response, case):
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return None
    if 400 <= response.status_code < 500 and response.status_code not in (401, 429):
        try:
            code = response.json()["error"]["code"]
        except (ValueError, KeyError, TypeError):
            code = None
        assert code not in SHAPE_CODES, (
            f"schema-valid input refused for its shape: {response.status_code} {code}: "
            f"{response.text[:500]}"
        )
    return None


# A fixed key: schemathesis prepares some cases when it collects the tests, before any fixture
# runs, so the key must be known then. Each test stores it (hashed) for its own tenant.
KEY_PREFIX = "cp_sk_5c4e3a2b1f00"
KEY = f"{KEY_PREFIX}_schemathesis-fixed-test-key-0123456789abcdef"


@schema.auth()
class TenantKeyAuth:
    def get(self, case, ctx):
        return KEY

    def set(self, case, data, ctx):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_within_its_schema_and_never_with_a_5xx(case, api_key):
    response = case.call_and_validate()
    STATUSES[f"{case.method} {case.path}"].append(response.status_code)


def test_the_run_was_authenticated_and_reached_real_answers():
    """Guards the run above: it must not have passed on 401s alone."""
    if not STATUSES:
        pytest.skip("the schemathesis run did not run in this session")
    statuses = [status for answers in STATUSES.values() for status in answers]
    assert sum(200 <= status < 300 for status in statuses) >= 20, Counter(statuses)
    assert sum(status == 401 for status in statuses) < len(statuses) / 2, Counter(statuses)
    print(Counter(statuses))
