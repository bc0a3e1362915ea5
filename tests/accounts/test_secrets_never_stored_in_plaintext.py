"""A dump of the database (dumpdata and a raw SQL scan) holds none of a set of known secrets:
those stored (sealed by the vault, hashed) and a key the provider refused at entry."""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from accounts.services.audit import Actor
from accounts.services.tenants import tenant_api_key_create, tenant_create
from core.vault import seal_secret
from integrations.models import Credential, TenantOAuthClient, WebhookEndpoint
from integrations.services.connect_sessions import connect_session_create
from integrations.services.credentials import NewSecret
from integrations.services.verification import ConnectKind, credential_connect
from tests import factories

KNOWN = {
    "api_key": "sk_test_PLAINTEXT_api_key_0123456789",
    "access_token": "ya29.PLAINTEXT_access_token_abcdef",
    "refresh_token": "1//PLAINTEXT_refresh_token_ghijkl",
    "client_secret": "PLAINTEXT_client_secret_mnopqr",
    "webhook_secret": "whsec_PLAINTEXTwebhooksecretstu",
    "refused_api_key": "sk_test_PLAINTEXT_refused_key_9876543210",
}


@pytest.fixture
def stored_secrets(db, httpserver):
    httpserver.expect_request("/me", headers={"X-API-Key": KNOWN["api_key"]}).respond_with_json(
        {"email": "dump@provider.test"}
    )
    httpserver.expect_request(
        "/me", headers={"X-API-Key": KNOWN["refused_api_key"]}
    ).respond_with_json({"message": "Unknown key"}, status=401)
    tenant = tenant_create(name="Dump tenant")
    end_user = factories.make_end_user(tenant=tenant)
    key_app = factories.make_api_key_app(api_base_url=httpserver.url_for("/"))
    for key, kind in (
        (KNOWN["api_key"], ConnectKind.CONNECTED),
        (KNOWN["refused_api_key"], ConnectKind.REJECTED),
    ):
        connection = credential_connect(
            end_user=end_user,
            app=key_app,
            new=NewSecret(secret={"api_key": key}),
            actor=Actor.system(),
        )
        assert connection.kind == kind
    oauth_app = factories.make_oauth_app()
    factories.make_credential(
        end_user=end_user,
        app=oauth_app,
        secret={"access_token": KNOWN["access_token"], "refresh_token": KNOWN["refresh_token"]},
    )
    client = TenantOAuthClient(tenant=tenant, app=oauth_app, client_id="public-client-id")
    client.save()
    seal_secret(client, {"client_secret": KNOWN["client_secret"]})
    client.save()
    endpoint = WebhookEndpoint.objects.create(tenant=tenant, url="https://hooks.example.com/in")
    seal_secret(endpoint, {"secret": KNOWN["webhook_secret"]})
    endpoint.save()
    issued_key = tenant_api_key_create(tenant=tenant, name="server")
    issued_session = connect_session_create(tenant=tenant, end_user=end_user)
    return {**KNOWN, "tenant_api_key": issued_key.plaintext, "session_token": issued_session.token}


def test_dumpdata_contains_none_of_the_known_secrets(stored_secrets):
    out = StringIO()
    call_command("dumpdata", stdout=out)
    dump = out.getvalue()
    assert Credential.objects.count() == 2
    assert json.loads(dump)
    for name, secret in stored_secrets.items():
        assert secret not in dump, f"{name} is in the dump"


def test_a_raw_scan_of_every_table_contains_none_of_the_known_secrets(stored_secrets):
    cells_scanned = 0
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                for cell in row:
                    cells_scanned += 1
                    text = (
                        bytes(cell).decode("latin-1")
                        if isinstance(cell, (bytes, memoryview))
                        else str(cell)
                    )
                    for name, secret in stored_secrets.items():
                        assert secret not in text, f"{name} is stored in plaintext in {table}"
    assert cells_scanned > 100
