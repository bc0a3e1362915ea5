"""The proxy's hot path: its queries, its pooled upstream connections and its one audit entry.

The upstream is a real local HTTP/1.1 server that counts the TCP connections it accepts and
records each request's headers, so connection reuse and what each call carries are observed,
not assumed.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from accounts.models import AuditLogEntry, TenantApiKey
from integrations.models import App, Credential
from tests import factories
from tests.api.conftest import client_for, error_of

pytestmark = pytest.mark.django_db


class CountingUpstream(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.connections = 0
        self.requests: list[dict[str, str]] = []
        self.set_cookie = False

    def process_request(self, request, client_address):
        self.connections += 1
        super().process_request(request, client_address)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/api"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real APIs answer

    def do_GET(self) -> None:
        self.server.requests.append({k.lower(): v for k, v in self.headers.items()})
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.server.set_cookie:
            self.send_header("Set-Cookie", "upstream_session=tenant-a; Path=/")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def upstream():
    server = CountingUpstream()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def app(upstream):
    # A fresh slug per test: the pooled transport outlives tests, the app table does not.
    return factories.make_api_key_app(api_base_url=upstream.base_url)


def _account(tenant, app, key: str):
    end_user = factories.make_end_user(tenant=tenant)
    return factories.make_credential(end_user=end_user, app=app, secret={"api_key": key})


def _call(api, app, credential, path: str = "me"):
    return api.get(
        f"/api/v1/proxy/{app.slug}/{path}", headers={"X-Portal-Credential": str(credential.pk)}
    )


@pytest.mark.postgres  # the audit row's one round trip is PostgreSQL's (SQLite: a transaction)
def test_a_proxied_call_reads_key_app_and_credential_in_one_query_and_inserts_once(
    api, tenant, app, django_assert_num_queries
):
    credential = _account(tenant, app, "k" * 20)
    assert _call(api, app, credential).status_code == 200  # the key's last use is now recorded

    with django_assert_num_queries(2) as captured:
        response = _call(api, app, credential)
        response.close()  # as the WSGI server does once the answer is sent

    assert response.status_code == 200
    read, audit = (query["sql"] for query in captured.captured_queries)
    assert read.lstrip().startswith("SELECT")
    for table in ("accounts_tenantapikey", "integrations_credential", "integrations_app"):
        assert table in read
    assert '."icon_file",' not in read  # the app's icon blob is not read
    # One round trip for the audit row, no BEGIN/COMMIT of its own, no wait for the WAL flush.
    assert audit.startswith("SET LOCAL synchronous_commit TO OFF; INSERT INTO")
    assert "accounts_auditlogentry" in audit


def test_a_revoked_key_is_refused_at_once_with_its_credential_named(api, tenant, app):
    credential = _account(tenant, app, "k" * 20)
    assert _call(api, app, credential).status_code == 200
    TenantApiKey.objects.filter(tenant=tenant).update(revoked_at=timezone.now())

    response = _call(api, app, credential)

    assert response.status_code == 401
    assert AuditLogEntry.objects.filter(credential=credential).count() == 1


@pytest.mark.parametrize(
    "change",
    ["status", "other_user", "app_disabled", "shadowed", "other_app"],
)
def test_a_credential_read_with_the_key_follows_every_change_at_once(
    api, tenant, app, upstream, change
):
    """Nothing is cached between calls: each change shows on the very next call."""
    credential = _account(tenant, app, "k" * 20)
    assert _call(api, app, credential).status_code == 200
    expected = {"status": 422, "other_user": 404, "app_disabled": 404, "shadowed": 422}
    if change == "status":
        Credential.objects.filter(pk=credential.pk).update(status=Credential.Status.INVALID)
    elif change == "other_user":
        response = api.get(
            f"/api/v1/proxy/{app.slug}/me",
            headers={"X-Portal-Credential": str(credential.pk), "X-Portal-User": "someone-else"},
        )
        assert response.status_code == 404
        assert error_of(response)["code"] == "credential_not_found"
        return
    elif change == "app_disabled":
        App.objects.filter(pk=app.pk).update(is_enabled=False)
    elif change == "shadowed":
        # The tenant's own app of the same slug: the slug now means it, not the catalog app.
        factories.make_api_key_app(slug=app.slug, tenant=tenant, api_base_url=upstream.base_url)
    elif change == "other_app":
        other = factories.make_api_key_app(api_base_url=upstream.base_url)
        response = api.get(
            f"/api/v1/proxy/{other.slug}/me", headers={"X-Portal-Credential": str(credential.pk)}
        )
        assert response.status_code == 422
        assert error_of(response)["code"] == "credential_app_mismatch"
        return

    response = _call(api, app, credential)

    assert response.status_code == expected[change], response.content
    assert len(upstream.requests) == 1


def test_another_tenants_credential_is_a_404_through_the_one_query(
    tenant, other_tenant, app, upstream
):
    theirs = _account(other_tenant, app, "their-key-0123456789")

    response = _call(client_for(tenant), app, theirs)

    assert response.status_code == 404
    assert error_of(response)["code"] == "credential_not_found"
    assert upstream.requests == []


def test_each_proxied_call_writes_exactly_one_audit_entry_with_its_result(api, tenant, app):
    credential = _account(tenant, app, "k" * 20)

    for path in ("me", "items", "missing/../x"):
        _call(api, app, credential, path)

    entries = AuditLogEntry.objects.filter(credential=credential).order_by("pk")
    # The refused path never opened the secret: two calls, two entries.
    assert [(e.action, e.detail["path"], e.detail["status_code"]) for e in entries] == [
        ("credential.use.proxy", "/me", 200),
        ("credential.use.proxy", "/items", 200),
    ]


def test_calls_to_one_upstream_reuse_one_pooled_connection(api, tenant, app, upstream):
    credential = _account(tenant, app, "k" * 20)

    for _ in range(5):
        assert _call(api, app, credential).status_code == 200

    assert len(upstream.requests) == 5
    assert upstream.connections == 1


def test_a_pooled_connection_carries_no_auth_or_cookie_from_one_tenant_to_another(
    tenant, other_tenant, app, upstream
):
    upstream.set_cookie = True
    first = _account(tenant, app, "first-tenant-key-000")
    second = _account(other_tenant, app, "second-tenant-key-00")

    assert _call(client_for(tenant), app, first).status_code == 200
    assert _call(client_for(other_tenant), app, second).status_code == 200

    assert upstream.connections == 1  # the same connection served both tenants
    first_request, second_request = upstream.requests
    assert first_request["x-api-key"] == "first-tenant-key-000"
    assert second_request["x-api-key"] == "second-tenant-key-00"
    assert "cookie" not in second_request
    assert "authorization" not in second_request


def test_with_private_networks_disallowed_a_pooled_transport_still_refuses_a_private_address(
    api, tenant, app, upstream, settings
):
    credential = _account(tenant, app, "k" * 20)
    assert _call(api, app, credential).status_code == 200  # a live pooled connection now
    settings.PORTAL_ALLOW_PRIVATE_NETWORK = False

    for _ in range(2):
        response = _call(api, app, credential)
        assert response.status_code == 502
        assert error_of(response)["code"] == "destination_not_allowed"

    assert len(upstream.requests) == 1
    entries = AuditLogEntry.objects.filter(credential=credential).order_by("pk")
    refused = "destination_not_allowed"
    assert [e.detail["error"] for e in entries] == ["", refused, refused]
