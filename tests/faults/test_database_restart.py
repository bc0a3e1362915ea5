"""PostgreSQL ends the portal's connections (``pg_terminate_backend``, as in a restart or a
failover), in the middle of a request and between requests: a safe request is retried once on
a new connection and succeeds, an unsafe one answers 503 in the API's error shape, and the
next request succeeds."""

from __future__ import annotations

import time

import psycopg
import pytest
from django.db import connection

from tests.api.conftest import client_for, error_of

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _terminate(pid: int) -> None:
    """End one backend from another connection, and wait until it is gone."""
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"], autocommit=True
    ) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        deadline = time.monotonic() + 10
        while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
            assert time.monotonic() < deadline, "the backend did not end"
            time.sleep(0.02)


class KillOnQuery:
    """Ends the connection's backend just before the ``nth`` query (once), mid-request."""

    def __init__(self, nth: int) -> None:
        self.nth = nth
        self.seen = 0

    def __call__(self, execute, sql, params, many, context):
        self.seen += 1
        if self.seen == self.nth:
            _terminate(context["connection"].connection.info.backend_pid)
        return execute(sql, params, many, context)


@pytest.fixture
def api(tenant):
    client = client_for(tenant)
    assert client.get("/api/v1/credentials").status_code == 200
    return client


def test_a_read_whose_connection_is_killed_mid_request_is_retried_and_succeeds(api, caplog):
    for nth in (1, 2, 3):
        with connection.execute_wrapper(KillOnQuery(nth)):
            response = api.get("/api/v1/credentials")

        assert response.status_code == 200, (nth, response.content)
    assert "retrying once on a new connection" in caplog.text
    assert api.get("/api/v1/users/nobody").status_code == 404


def test_a_write_whose_connection_is_killed_answers_503_in_the_error_shape_then_works(
    api, end_user
):
    body = {"end_user": {"id": end_user.external_id}}
    with connection.execute_wrapper(KillOnQuery(2)):
        refused = api.post("/api/v1/sessions", body)

    assert refused.status_code == 503
    assert error_of(refused)["code"] == "service_unavailable"
    assert refused["Retry-After"]
    assert api.post("/api/v1/sessions", body).status_code == 201


def test_after_the_connections_are_killed_between_requests_the_next_ones_succeed(
    api, client, admin_user
):
    client.force_login(admin_user)
    assert client.get("/admin/").status_code == 200

    _terminate(connection.connection.info.backend_pid)
    assert api.get("/api/v1/credentials").status_code == 200

    _terminate(connection.connection.info.backend_pid)
    assert client.get("/admin/").status_code == 200

    _terminate(connection.connection.info.backend_pid)
    assert client.get("/healthz/ready").status_code == 200


def test_a_proxied_calls_audit_row_is_written_when_its_connection_died_during_the_call(
    api, end_user, httpserver
):
    # The upstream takes its time, and PostgreSQL ends the portal's connection meanwhile (a
    # failover): the answer goes out, and the call's audit row is still written, on a new one.
    from werkzeug import Response

    from accounts.models import AuditLogEntry
    from tests import factories

    app = factories.make_api_key_app(slug="upstream", api_base_url=httpserver.url_for("/base"))
    credential = factories.make_credential(end_user=end_user, app=app, secret={"api_key": "k"})
    pid = connection.connection.info.backend_pid

    def slow_answer(request):
        _terminate(pid)
        return Response('{"ok": true}', content_type="application/json")

    httpserver.expect_request("/base/v1/ping").respond_with_handler(slow_answer)
    response = api.get(
        "/api/v1/proxy/upstream/v1/ping", headers={"X-Portal-Credential": str(credential.pk)}
    )

    assert response.status_code == 200, response.content
    assert connection.connection.info.backend_pid != pid
    entry = AuditLogEntry.objects.get(credential_id=credential.pk)
    assert entry.outcome == "success" and entry.detail
