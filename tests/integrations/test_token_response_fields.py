"""Token-response values in templates (Salesforce's instance_url), kept on the app's hosts."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from core.vault import open_secret
from integrations.services.auth import TemplateValueMissing, auth_apply
from integrations.services.oauth import TokenSet, credential_tokens_store
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


def test_a_refresh_that_omits_the_value_keeps_the_one_stored_before(end_user):
    app = instance_app()
    credential = factories.make_credential(
        end_user=end_user, app=app, secret=secret("http://127.0.0.1:8123")
    )
    previous = open_secret(credential)
    refreshed = TokenSet(
        access_token="at-2",
        refresh_token="rt-2",
        expires_at=timezone.now() + timedelta(hours=1),
        secret={"access_token": "at-2", "refresh_token": "rt-2"},
    )
    credential_tokens_store(credential=credential, tokens=refreshed, previous=previous)
    credential.save()
    stored = open_secret(credential)
    assert stored["access_token"] == "at-2"
    assert stored["extras"]["instance_url"] == "http://127.0.0.1:8123"


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
