"""Token-response values in templates (Salesforce's instance_url), kept on the app's hosts."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from core.vault import open_secret
from integrations.models import Event
from integrations.services.auth import TemplateValueMissing, auth_apply
from integrations.services.oauth_clients import oauth_client_set
from integrations.services.refresh import RefreshKind, credential_refresh
from integrations.services.verification import verification_probe
from tests import factories

LOCAL_INSTANCE = {"name": "instance_url", "pattern": r"http://(127\.0\.0\.1|localhost):\d+"}


def instance_app(**extra):
    return factories.make_oauth_app(
        token_response_fields=[LOCAL_INSTANCE],
        api_base_url="{instance_url}/api",
        verification={"path": "/me", "identity": ["email"]},
        **extra,
    )


def secret(instance_url: str) -> dict:
    return {"access_token": "at-1", "extras": {"instance_url": instance_url, "id": "x"}}


def test_a_declared_value_that_matches_its_pattern_becomes_the_base_url(db):
    applied = auth_apply(app=instance_app(), secret=secret("http://127.0.0.1:8123"))
    assert applied.base_url == "http://127.0.0.1:8123/api"
    assert applied.headers["Authorization"] == "Bearer at-1"


@pytest.mark.parametrize(
    "hostile",
    ["https://evil.test", "http://127.0.0.1:8123.evil.test", "http://127.0.0.1:80/../x"],
)
def test_a_value_off_the_apps_hosts_is_dropped_so_nothing_is_sent(db, hostile):
    with pytest.raises(TemplateValueMissing, match="instance_url"):
        auth_apply(app=instance_app(), secret=secret(hostile))


def test_an_undeclared_token_value_cannot_be_used_in_a_template(db):
    with pytest.raises(ValidationError, match="instance_url"):
        factories.make_oauth_app(api_base_url="{instance_url}/api")


def test_a_refresh_that_omits_the_value_keeps_the_one_stored_before(end_user, httpserver):
    httpserver.expect_request("/token", method="POST").respond_with_json(
        {"access_token": "at-2", "refresh_token": "rt-2", "expires_in": 3600}
    )
    app = instance_app(token_url=httpserver.url_for("/token"))
    oauth_client_set(tenant=end_user.tenant, app=app, client_id="cid", client_secret="cs")
    credential = factories.make_credential(
        end_user=end_user,
        app=app,
        secret={**secret("http://127.0.0.1:8123"), "refresh_token": "rt-1"},
        expires_at=timezone.now() + timedelta(minutes=1),
    )

    outcome = credential_refresh(credential_id=credential.pk)

    assert outcome.kind == RefreshKind.REFRESHED
    credential.refresh_from_db()
    stored = open_secret(credential)
    assert (stored["access_token"], stored["refresh_token"]) == ("at-2", "rt-2")
    assert stored["extras"]["instance_url"] == "http://127.0.0.1:8123"
    assert httpserver.log[0][0].form["refresh_token"] == "rt-1"
    assert Event.objects.get().type == "credential.refreshed"
    # The refreshed token still goes to the instance the first token response named.
    assert auth_apply(app=app, secret=stored).base_url == "http://127.0.0.1:8123/api"


def test_a_refresh_that_names_a_new_value_replaces_the_one_stored_before(end_user, httpserver):
    moved = httpserver.url_for("/").rstrip("/")
    httpserver.expect_request("/token", method="POST").respond_with_json(
        {"access_token": "at-2", "expires_in": 3600, "instance_url": moved}
    )
    app = instance_app(token_url=httpserver.url_for("/token"))
    oauth_client_set(tenant=end_user.tenant, app=app, client_id="cid", client_secret="cs")
    credential = factories.make_credential(
        end_user=end_user,
        app=app,
        secret={**secret("http://127.0.0.1:8123"), "refresh_token": "rt-1"},
        expires_at=timezone.now() + timedelta(minutes=1),
    )

    assert credential_refresh(credential_id=credential.pk).kind == RefreshKind.REFRESHED

    credential.refresh_from_db()
    stored = open_secret(credential)
    assert (stored["extras"]["instance_url"], stored["extras"]["id"]) == (moved, "x")
    assert stored["refresh_token"] == "rt-1"  # a refresh answer without one keeps the old one


def test_verification_goes_to_the_instance_the_token_response_named(db, httpserver):
    httpserver.expect_request(
        "/api/me", headers={"Authorization": "Bearer at-1"}
    ).respond_with_json({"email": "owner@org.test"})
    instance = httpserver.url_for("/").rstrip("/")
    result = verification_probe(app=instance_app(), secret=secret(instance))
    assert result.kind == "verified"
    assert result.identity == "owner@org.test"


def test_the_shipped_salesforce_app_keeps_its_instance_on_salesforce_hosts(db):
    from integrations.models import App
    from integrations.services.catalog import catalog_load

    catalog_load()
    salesforce = App.objects.get(slug="salesforce", tenant__isnull=True)
    good = auth_apply(app=salesforce, secret=secret("https://acme.my.salesforce.com"))
    assert good.base_url == "https://acme.my.salesforce.com"
    with pytest.raises(TemplateValueMissing):
        auth_apply(app=salesforce, secret=secret("https://salesforce.com.evil.test"))
